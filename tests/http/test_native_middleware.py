"""The built-in middleware run in Rust: compression of streamed and native responses,
no double compression, CORS on native routes and around Python middleware, request
ids, the HTTPS redirect of WebSocket upgrades, and apps keeping their fast paths.
(Starlette's behaviour itself is compared in ``tests/compat/apps/mw_*.py``.)"""

from __future__ import annotations

import asyncio
import gzip
import re
import threading
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware as StarletteCORS

from data_bridge import App, PlainTextResponse, Request, Response, StreamingResponse
from data_bridge.middleware import (
    BrotliMiddleware,
    CallNext,
    CORSMiddleware,
    GZipMiddleware,
    HTTPSRedirectMiddleware,
    RequestIDMiddleware,
    TrustedHostMiddleware,
)

from .conftest import raw_request, run_server, run_server_info, status_of

ORIGIN = "https://a.example"
TEXT = "data-bridge " * 200


def test_a_streamed_body_is_compressed_chunk_by_chunk() -> None:
    release = threading.Event()
    app = App()
    app.add_middleware(GZipMiddleware)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            yield "first chunk\n"
            while not release.is_set():
                await asyncio.sleep(0.01)
            yield "second chunk\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    with (
        run_server(app) as url,
        httpx.Client(base_url=url, timeout=5) as client,
        client.stream("GET", "/stream", headers={"accept-encoding": "gzip"}) as resp,
    ):
        assert resp.headers["content-encoding"] == "gzip"
        assert "content-length" not in resp.headers
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = resp.iter_raw()
        seen = b""
        # The first chunk is readable while the handler still holds the second.
        while b"first chunk\n" not in seen:
            seen += decoder.decompress(next(raw))
        release.set()
        for chunk in raw:
            seen += decoder.decompress(chunk)
        assert seen == b"first chunk\nsecond chunk\n"
        assert decoder.eof


def test_native_routes_and_server_errors_go_through_the_layers(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_text(TEXT)
    app = App()
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN])
    app.constant("/constant", {"text": TEXT})
    app.static("/files", tmp_path)
    headers = {"origin": ORIGIN, "accept-encoding": "gzip"}
    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        for path in ("/constant", "/files/page.txt"):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 200, path
            assert resp.headers["content-encoding"] == "gzip", path
            assert resp.headers["access-control-allow-origin"] == ORIGIN, path
            assert resp.headers["vary"] == "Accept-Encoding, Origin", path
            assert TEXT in resp.text, path
        missing = client.get("/nowhere", headers=headers)
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == ORIGIN
        health = client.get("/health", headers=headers)
        assert health.json() == {"status": "ok"}
        assert "content-encoding" not in health.headers


def test_a_body_is_compressed_once() -> None:
    app = App()
    app.add_middleware(GZipMiddleware)
    app.add_middleware(BrotliMiddleware)

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse(TEXT)

    @app.get("/zipped")
    def zipped() -> Response:
        return Response(
            gzip.compress(TEXT.encode()),
            media_type="text/plain",
            headers={"content-encoding": "gzip"},
        )

    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        # The inner gzip layer encodes; the outer Brotli layer sees an encoded body.
        resp = client.get("/text", headers={"accept-encoding": "gzip, br"})
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.headers["vary"] == "Accept-Encoding"
        assert resp.text == TEXT
        resp = client.get("/zipped", headers={"accept-encoding": "gzip, br"})
        assert resp.headers["content-encoding"] == "gzip"
        assert "vary" not in resp.headers
        assert resp.text == TEXT


def test_brotli_is_preferred_when_accepted_with_gzip_as_fallback() -> None:
    app = App()
    app.add_middleware(BrotliMiddleware, quality=5)

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse(TEXT)

    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        with client.stream("GET", "/text", headers={"accept-encoding": "gzip, br"}) as resp:
            assert resp.headers["content-encoding"] == "br"
            body = b"".join(resp.iter_raw())
            assert int(resp.headers["content-length"]) == len(body) < len(TEXT)
        resp = client.get("/text", headers={"accept-encoding": "gzip, br;q=0"})
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.text == TEXT


def test_native_layers_wrap_python_middleware() -> None:
    app = App()
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN])

    # Added last, yet inside the native layer: its answer still gets CORS headers.
    @app.middleware("http")
    async def gate(request: Request, call_next: CallNext) -> Response:
        if "x-block" in request.headers:
            return PlainTextResponse("blocked", status_code=401)
        return await call_next(request)

    @app.get("/items")
    def items() -> list[int]:
        return [1]

    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        resp = client.get("/items", headers={"origin": ORIGIN, "x-block": "1"})
        assert resp.status_code == 401
        assert resp.headers["access-control-allow-origin"] == ORIGIN


def test_request_ids_without_the_access_log() -> None:
    app = App()
    app.add_middleware(RequestIDMiddleware, header_name="X-Correlation-ID")

    @app.get("/id")
    def seen(request: Request) -> dict[str, str]:
        return {"id": request.headers["x-correlation-id"]}

    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        resp = client.get("/id")
        assert len(resp.headers["x-correlation-id"]) == 32
        assert resp.json() == {"id": resp.headers["x-correlation-id"]}
        assert "x-request-id" not in resp.headers
        resp = client.get("/id", headers={"x-correlation-id": "abc-123"})
        assert resp.headers["x-correlation-id"] == "abc-123"
        assert resp.json() == {"id": "abc-123"}


def test_websocket_upgrades_are_redirected_to_wss() -> None:
    app = App()
    app.add_middleware(HTTPSRedirectMiddleware)
    with run_server_info(app) as running:
        reply = raw_request(
            running.address,
            b"GET /ws?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, close\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
    assert status_of(reply) == 307
    assert b"\r\nlocation: wss://example.com/ws?x=1\r\n" in reply.lower()


def test_native_middleware_keeps_the_fast_paths() -> None:
    app = App()
    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    app.add_middleware(GZipMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1"])

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    assert [r.mode for r in app.routes] == ["path"]
    assert app.user_middleware == []
    assert [type(m).__name__ for m in app.native_middleware] == [
        "TrustedHostMiddleware",
        "GZipMiddleware",
        "CORSMiddleware",
    ]


def test_starlette_classes_stand_for_the_built_in_ones() -> None:
    app = App()
    app.add_middleware(StarletteCORS, allow_origins=[ORIGIN])
    assert isinstance(app.native_middleware[0], CORSMiddleware)
    assert app.user_middleware == []


@pytest.mark.parametrize(
    ("cls", "options", "error"),
    [
        (TrustedHostMiddleware, {"allowed_hosts": ["a.*.com"]}, ValueError),
        (TrustedHostMiddleware, {"allowed_hosts": ["*example.com"]}, ValueError),
        (BrotliMiddleware, {"quality": 12}, ValueError),
        (CORSMiddleware, {"allow_origin_regex": "("}, re.error),
    ],
)
def test_bad_options_fail_when_added(cls: Any, options: dict[str, Any], error: Any) -> None:
    with pytest.raises(error):
        App().add_middleware(cls, **options)


@pytest.mark.parametrize("cls", [CORSMiddleware, StarletteCORS], ids=["data_bridge", "starlette"])
@pytest.mark.parametrize("origins", [["*"], [ORIGIN, "*"]], ids=["any", "listed-and-any"])
def test_any_origin_with_credentials_is_refused(cls: Any, origins: list[str]) -> None:
    app = App()
    with pytest.raises(
        ValueError, match="list the allowed origins explicitly or use allow_origin_regex"
    ):
        app.add_middleware(cls, allow_origins=origins, allow_credentials=True)
    # Nothing half-added: no origin, ``null`` included, is granted credentialed access.
    with run_server(app) as url:
        resp = httpx.get(url + "/health", headers={"origin": "null"}, timeout=5)
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers
    assert "access-control-allow-credentials" not in resp.headers


@pytest.mark.parametrize(
    "options",
    [
        {"allow_origins": [ORIGIN]},
        {"allow_origin_regex": r"https://[a-z]+\.example"},
    ],
    ids=["listed", "regex"],
)
def test_credentials_with_listed_or_matching_origins(options: dict[str, Any]) -> None:
    app = App()
    app.add_middleware(CORSMiddleware, allow_credentials=True, **options)

    @app.get("/me")
    def me() -> dict[str, str]:
        return {"user": "someone"}

    preflight = {"access-control-request-method": "GET"}
    with run_server(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        resp = client.get("/me", headers={"origin": ORIGIN})
        assert resp.headers["access-control-allow-origin"] == ORIGIN
        assert resp.headers["access-control-allow-credentials"] == "true"
        resp = client.options("/me", headers={"origin": ORIGIN, **preflight})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == ORIGIN
        for other in ("null", "https://evil.test"):
            resp = client.get("/me", headers={"origin": other})
            assert resp.status_code == 200
            assert "access-control-allow-origin" not in resp.headers, other
            resp = client.options("/me", headers={"origin": other, **preflight})
            assert resp.status_code == 400, other
            assert "access-control-allow-origin" not in resp.headers, other
