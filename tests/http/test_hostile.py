"""Hostile HTTP/1.1 input over raw sockets: request smuggling shapes, oversized and
malformed heads, bad encodings, and traversal against static files. Every case must
be refused (or answered safely) and leave the server answering normal requests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_bridge import App, Request

from .conftest import Running, raw_request, run_server_info, status_of


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("hostile")
    public = root / "public"
    public.mkdir()
    (public / "index.txt").write_text("public")
    (public / ".env").write_text("SECRET=1")
    (public / ".well-known" / "acme-challenge").mkdir(parents=True)
    (public / ".well-known" / "acme-challenge" / "token").write_text("token")
    (root / "secret.txt").write_text("secret")
    os.symlink(root / "secret.txt", public / "link.txt")
    app = App()
    app.static("/static", public)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"len": len(body), "body": body.decode("latin-1")}

    @app.get("/q")
    async def q(request: Request) -> dict[str, Any]:
        return {"q": dict(request.query_params), "path": request.url.path}

    with run_server_info(app) as running:
        yield running


def assert_serving(running: Running) -> None:
    response = httpx.post(running.base_url + "/echo", content=b"ok", timeout=5)
    assert response.json() == {"len": 2, "body": "ok"}


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


SMUGGLING = {
    "cl-and-te": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
    b"transfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /q HTTP/1.1\r\nhost: x\r\n\r\n",
    "duplicate-cl": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
    b"content-length: 30\r\n\r\nabc",
    "te-chunked-identity": b"POST /echo HTTP/1.1\r\nhost: x\r\n"
    b"transfer-encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "obs-fold": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
    b"x-folded: a\r\n b\r\n\r\nabc",
    "te-with-space-before-colon": b"POST /echo HTTP/1.1\r\nhost: x\r\n"
    b"transfer-encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "bad-chunk-size": b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    "negative-cl": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
    "cl-with-plus": b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\nabc",
}


@pytest.mark.parametrize("data", list(SMUGGLING.values()), ids=list(SMUGGLING))
def test_smuggling_shapes_are_refused(hostile: Running, data: bytes) -> None:
    response = raw_request(hostile.address, data)
    # No second, smuggled response follows the first: the request is refused, or (for
    # both Content-Length and chunked, RFC 9112 §6.3) read as chunked and the
    # connection closed after the answer.
    assert response.count(b"HTTP/1.1 ") == 1
    if status_of(response) != 400:
        assert b"connection: close" in response.lower()
        assert json.loads(body_of(response)) == {"len": 0, "body": ""}
    assert_serving(hostile)


def test_bare_lf_line_endings_are_not_a_smuggling_channel(hostile: Running) -> None:
    # Hyper accepts bare LF as a line ending (as RFC 9112 §2.2 allows): then the
    # request must be read exactly as a CRLF one would, with nothing left over.
    data = b"POST /echo HTTP/1.1\nhost: x\ncontent-length: 3\nconnection: close\n\nabc"
    response = raw_request(hostile.address, data)
    assert response.count(b"HTTP/1.1 ") == 1
    if status_of(response) == 200:
        assert json.loads(body_of(response)) == {"len": 3, "body": "abc"}
    else:
        assert status_of(response) == 400
    assert_serving(hostile)


def test_too_many_headers(hostile: Running) -> None:
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    response = raw_request(hostile.address, b"GET /q HTTP/1.1\r\nhost: x\r\n" + headers + b"\r\n")
    assert status_of(response) in (400, 431)
    assert_serving(hostile)


def test_very_long_request_line(hostile: Running) -> None:
    response = raw_request(
        hostile.address, b"GET /q?" + b"a" * 100_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    assert status_of(response) in (400, 414, 431)
    assert_serving(hostile)


@pytest.mark.parametrize(
    "target",
    [b"/q?x=%ff%fe", b"/q?x=%zz&y=%", b"/%ff/q", b"/q?x=\xc3\x28"],
    ids=["invalid-utf8-query", "bad-percent-query", "invalid-utf8-path", "raw-bytes-query"],
)
def test_bad_encodings_never_500(hostile: Running, target: bytes) -> None:
    response = raw_request(
        hostile.address, b"GET " + target + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    assert status_of(response) in (200, 400, 404)
    if status_of(response) != 200:
        # Hyper's own 400 for an unparsable target has no body (see the spec).
        assert body_of(response) == b"" or "detail" in json.loads(body_of(response))
    assert_serving(hostile)


def test_invalid_utf8_header_values_are_served(hostile: Running) -> None:
    response = raw_request(
        hostile.address,
        b"GET /q HTTP/1.1\r\nhost: x\r\nx-bin: \xff\xfe\r\nconnection: close\r\n\r\n",
    )
    assert status_of(response) == 200
    assert_serving(hostile)


@pytest.mark.parametrize(
    "target",
    [
        b"/static/../secret.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/%2e%2e%2fsecret.txt",
        b"/static/..%2f..%2fsecret.txt",
        b"/static/%252e%252e/secret.txt",
        b"/static/..\\secret.txt",
        b"/static/..%5csecret.txt",
        b"/static/index.txt%00.png",
        b"/static/link.txt",
        b"/static/.env",
        b"/static//etc/passwd",
    ],
)
def test_static_traversal_is_refused(hostile: Running, target: bytes) -> None:
    response = raw_request(
        hostile.address, b"GET " + target + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    assert status_of(response) in (400, 403, 404)
    assert b"secret" not in body_of(response).lower()
    assert b"SECRET" not in body_of(response)
    assert httpx.get(hostile.base_url + "/static/index.txt").text == "public"


def test_well_known_is_the_one_dot_directory_served(hostile: Running) -> None:
    response = httpx.get(hostile.base_url + "/static/.well-known/acme-challenge/token")
    assert response.status_code == 200
    assert response.text == "token"
