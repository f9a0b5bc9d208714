"""Servers for the compatibility corpus: the FastAPI flavour of an app on uvicorn, the
data-bridge flavour on the data-bridge server, both on 127.0.0.1 in background threads."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from tests.http.conftest import run_server

START_TIMEOUT = 10.0


@contextlib.contextmanager
def run_uvicorn(app: Any) -> Iterator[str]:
    """Serves an ASGI app with uvicorn in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="on", ws="none", http="h11", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-compat", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.contextmanager
def run_flavor(flavor: str, app: Any) -> Iterator[str]:
    if flavor == "fastapi":
        with run_uvicorn(app) as url:
            yield url
    else:
        # As uvicorn by default: X-Forwarded-* from 127.0.0.1 are applied.
        with run_server(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as url:
            yield url
