"""The layer benchmark's app: ``python -m benchmarks.layers.app``.

``BENCH_LAYERS`` (comma-separated) turns optional layers on; with none, every optional
layer is off. ``access_log`` is the one ``serve()`` turns on by default.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from benchmarks.http.apps.common import HELLO, port
from data_bridge import App, Request, Response, serve
from data_bridge.middleware import (
    CORSMiddleware,
    GZipMiddleware,
    RequestIDMiddleware,
    TrustedHostMiddleware,
)

LAYERS = frozenset(filter(None, os.environ.get("BENCH_LAYERS", "").split(",")))
KNOWN = frozenset(
    {"access_log", "metrics", "request_id", "cors", "gzip", "trusted_host", "python_middleware"}
)
if unknown := LAYERS - KNOWN:
    raise SystemExit(f"unknown layers {sorted(unknown)}; known: {sorted(KNOWN)}")

app = App(metrics="metrics" in LAYERS)
app.constant("/native", HELLO)


@app.get("/json")
async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


if "request_id" in LAYERS:
    app.add_middleware(RequestIDMiddleware)
if "cors" in LAYERS:
    app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])
if "gzip" in LAYERS:
    # The hello is below the minimum size: the layer looks and passes, as for most
    # small API responses.
    app.add_middleware(GZipMiddleware)
if "trusted_host" in LAYERS:
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
if "python_middleware" in LAYERS:

    @app.middleware("http")
    async def passthrough(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        return await call_next(request)


if __name__ == "__main__":
    serve(app, host="127.0.0.1", port=port(), access_log="access_log" in LAYERS)
