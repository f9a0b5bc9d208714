"""``GZipMiddleware``: large and small bodies, streamed bodies, bodies already encoded
or of an excluded type, clients that do not accept gzip, and error replies."""

from collections.abc import Iterator
from typing import Any

from tests.compat.corpus import Call

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def build(api: Any) -> Any:
    app = api.App()
    app.add_middleware(api.GZipMiddleware, minimum_size=500, compresslevel=6)

    @app.get("/big")
    def big() -> dict[str, str]:
        return {"text": "data-bridge " * 100}

    @app.get("/small")
    def small() -> dict[str, str]:
        return {"text": "tiny"}

    @app.get("/exact/{size}")
    def exact(size: int) -> Any:
        return api.PlainTextResponse("x" * size)

    @app.get("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[str]:
            for i in range(20):
                yield f"line {i}\n"

        return api.StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/events")
    def events() -> Any:
        return api.StreamingResponse(iter(["data: 1\n\n" * 100]), media_type="text/event-stream")

    @app.get("/encoded")
    def encoded() -> Any:
        return api.Response(
            b"z" * 1000, media_type="text/plain", headers={"Content-Encoding": "identity"}
        )

    @app.get("/vary")
    def vary() -> Any:
        return api.PlainTextResponse("v" * 1000, headers={"Vary": "Cookie"})

    @app.get("/missing-big")
    def missing_big() -> None:
        raise api.HTTPException(404, "gone " * 200)

    return app


REQUESTS = [
    Call("GET", "/big", headers=GZIP),
    Call("GET", "/big", headers=IDENTITY),
    Call("GET", "/big", headers={"Accept-Encoding": "br, gzip;q=0.5"}),
    Call("GET", "/small", headers=GZIP),
    Call("GET", "/exact/499", headers=GZIP),
    Call("GET", "/exact/500", headers=GZIP),
    Call("GET", "/exact/500", headers=IDENTITY),
    Call("GET", "/stream", headers=GZIP),
    Call("GET", "/stream", headers=IDENTITY),
    Call("GET", "/events", headers=GZIP),
    Call("GET", "/encoded", headers=GZIP),
    Call("GET", "/vary", headers=GZIP),
    Call("GET", "/missing-big", headers=GZIP),
    Call("GET", "/nowhere", headers=GZIP),
    Call("GET", "/openapi.json", headers=GZIP),
]
