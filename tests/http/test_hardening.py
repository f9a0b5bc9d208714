"""Answers an attacker could use: response framing that contradicts the body, a host
checked in one place and reported from another, error bodies that are not JSON.
Each case talks to a real server over loopback, most over raw sockets read by h11 (a
strict HTTP/1.1 parser), and the server must keep answering normal requests after."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import h11
import httpx
import pytest

from data_bridge import App, FileResponse, Request, Response, StreamingResponse
from data_bridge.middleware.trustedhost import TrustedHostMiddleware

from .conftest import connect, raw_request, run_server_info, status_of

BODY = b"hello world, this is longer"


def request(method: str, target: str, host: str = "x") -> h11.Request:
    return h11.Request(method=method, target=target, headers=[("host", host)])


def get(target: str, host: str = "x") -> h11.Request:
    return request("GET", target, host)


def exchange(
    address: tuple[str, int], requests: list[h11.Request], timeout: float = 5.0
) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends ``requests`` pipelined on one connection and reads one response per
    request with h11, which refuses any byte that is not part of a well-framed
    response. Returns ``(status, headers, body)`` for each."""
    wire = b""
    for req in requests:
        writer = h11.Connection(h11.CLIENT)
        wire += writer.send(req) + writer.send(h11.EndOfMessage())
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict[str, str], bytes]] = []
    with connect(address, timeout) as sock:
        sock.sendall(wire)
        for req in requests:
            # What h11 must know of the request to frame its response (HEAD: no body).
            conn.send(req)
            conn.send(h11.EndOfMessage())
            status, headers, body = 0, {}, b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = sock.recv(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise AssertionError("the server closed the connection early")
            out.append((status, headers, body))
            # A pipelined client may send its next request once a response is done.
            conn.start_next_cycle()
    return out


@pytest.fixture(scope="module")
def framing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    static = tmp_path_factory.mktemp("framing") / "file.txt"
    static.write_bytes(BODY)
    app = App()

    @app.get("/short-length")
    async def short_length() -> Response:
        return Response(BODY, headers={"content-length": "5"})

    @app.get("/long-length")
    async def long_length() -> Response:
        return Response(BODY, headers={"Content-Length": "9999"})

    @app.get("/chunked-and-length")
    def chunked_and_length() -> Response:
        return Response(BODY, headers={"transfer-encoding": "chunked", "content-length": "3"})

    @app.get("/stream-length")
    async def stream_length() -> StreamingResponse:
        async def parts() -> Any:
            yield BODY[:10]
            yield BODY[10:]

        return StreamingResponse(parts(), headers={"content-length": "5"})

    @app.get("/file-length")
    async def file_length() -> FileResponse:
        return FileResponse(static, headers={"content-length": "5"})

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    with run_server_info(app) as running:
        yield running


@pytest.mark.parametrize(
    "path",
    ["/short-length", "/long-length", "/chunked-and-length", "/stream-length", "/file-length"],
)
def test_a_handlers_framing_headers_never_contradict_the_body(framing: Any, path: str) -> None:
    # Two pipelined requests on one kept-alive connection: with a lying
    # content-length, the surplus would be read as the start of the second response.
    first, second = exchange(framing.address, [get(path), get("/ok")])
    assert first[0] == 200
    assert first[2] == BODY
    if "content-length" in first[1]:
        assert first[1]["content-length"] == str(len(BODY))
    assert second[0] == 200
    assert json.loads(second[2]) == {"ok": True}


def test_head_of_a_lying_handler_reports_the_real_length(framing: Any) -> None:
    (status, headers, body), after = exchange(
        framing.address,
        [request("HEAD", "/short-length"), get("/ok")],
    )
    assert (status, body) == (200, b"")
    assert headers.get("content-length") == str(len(BODY))
    assert after[0] == 200


# -- one host ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts() -> Iterator[Any]:
    app = App()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["allowed.com", "127.0.0.1"])

    @app.get("/url")
    async def url(request: Request) -> dict[str, str]:
        return {"url": str(request.url), "host": request.url.hostname or ""}

    with run_server_info(app, proxy_headers=True, forwarded_allow_ips="*") as running:
        yield running


def test_an_absolute_target_that_disagrees_with_host_is_refused(hosts: Any) -> None:
    response = raw_request(
        hosts.address,
        b"GET http://evil.com/url HTTP/1.1\r\nhost: allowed.com\r\nconnection: close\r\n\r\n",
    )
    assert status_of(response) == 400
    body = response.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {"detail": "Host header does not match the request target"}


def test_the_absolute_target_is_the_host_everywhere(hosts: Any) -> None:
    # Checked by the trusted-host layer and reported by request.url: the same host.
    [(status, _, body)] = exchange(hosts.address, [get("http://evil.com/url", "evil.com")])
    assert status == 400
    assert body == b"Invalid host header"
    [(status, _, body)] = exchange(hosts.address, [get("http://allowed.com/url", "allowed.com")])
    assert status == 200
    assert json.loads(body) == {"url": "http://allowed.com/url", "host": "allowed.com"}


@pytest.mark.parametrize(
    ("request_head", "detail"),
    [
        (b"GET /url HTTP/1.1\r\n", "Missing Host header"),
        (
            b"GET /url HTTP/1.1\r\nhost: allowed.com\r\nhost: allowed.com\r\n",
            "More than one Host header",
        ),
        (b"GET /url HTTP/1.1\r\nhost: allowed.com/x\r\n", "Invalid Host header"),
        (b"GET /url HTTP/1.1\r\nhost: allowed.com@evil.com\r\n", "Invalid Host header"),
        (b"GET /url HTTP/1.1\r\nhost: a b\r\n", "Invalid Host header"),
    ],
)
def test_missing_repeated_or_malformed_hosts_are_refused(
    hosts: Any, request_head: bytes, detail: str
) -> None:
    response = raw_request(hosts.address, request_head + b"connection: close\r\n\r\n")
    assert status_of(response) == 400
    assert json.loads(response.split(b"\r\n\r\n", 1)[1]) == {"detail": detail}
    # ... and the server goes on answering.
    assert httpx.get(hosts.base_url + "/url").status_code == 200


def test_http10_without_host_is_served(hosts: Any) -> None:
    # HTTP/1.0 has no Host requirement; with no host the trusted-host layer refuses it.
    response = raw_request(hosts.address, b"GET /url HTTP/1.0\r\n\r\n")
    assert status_of(response) == 400
    assert response.endswith(b"Invalid host header")


def test_x_forwarded_host_is_ignored_unless_enabled(hosts: Any) -> None:
    response = httpx.get(
        hosts.base_url + "/url", headers={"x-forwarded-host": "allowed.com", "host": "evil.com"}
    )
    assert response.status_code == 400
    response = httpx.get(hosts.base_url + "/url", headers={"x-forwarded-host": "evil.com"})
    assert response.status_code == 200
    assert response.json()["host"] == "127.0.0.1"


def test_x_forwarded_host_when_enabled() -> None:
    app = App()

    @app.get("/url")
    async def url(request: Request) -> str:
        return str(request.url)

    with run_server_info(
        app, proxy_headers=True, forwarded_allow_ips="*", forwarded_host=True
    ) as running:
        got = httpx.get(running.base_url + "/url", headers={"x-forwarded-host": "example.com"})
        assert got.json() == "http://example.com/url"
        # Not host[:port]: ignored, the Host header stands.
        got = httpx.get(running.base_url + "/url", headers={"x-forwarded-host": "a.com/evil"})
        assert got.json() == f"http://127.0.0.1:{running.address[1]}/url"


def test_an_unparsable_forwarded_for_hop_is_the_client() -> None:
    app = App()

    @app.get("/client")
    async def client(request: Request) -> Any:
        return request.client[0] if request.client else None

    with run_server_info(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as running:
        got = httpx.get(
            running.base_url + "/client",
            headers={"x-forwarded-for": "6.6.6.6, not-an-ip, 127.0.0.1"},
        )
        # Not 6.6.6.6, which the client itself may have written.
        assert got.json() is None
        got = httpx.get(running.base_url + "/client", headers={"x-forwarded-for": "1.2.3.4"})
        assert got.json() == "1.2.3.4"


# -- JSON the server writes by hand ---------------------------------------------


def _nasty_strings(count: int) -> list[str]:
    """Control characters, quotes, backslashes and non-ASCII text, some fixed and the
    rest drawn from a seeded generator so every run checks the same cases."""
    alphabet = [chr(c) for c in range(0x20)] + ['"', "\\", "/", "é", "\u2028", "😀", "a", "%"]
    rng = random.Random(20261204)
    drawn = ["".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(count)]
    return ['\n"x', "\\", '"', "\x00", "\x1f\x7f", *drawn]


@pytest.fixture(scope="module")
def typed() -> Iterator[Any]:
    app = App()

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> int:
        return user_id

    with run_server_info(app) as running:
        yield running


def test_invalid_path_parameters_answer_valid_json(typed: Any) -> None:
    with httpx.Client(base_url=typed.base_url) as client:
        response = client.get("/users/%0A%22x")
        assert response.status_code == 422
        assert json.loads(response.content)["detail"][0]["input"] == '\n"x'
        for raw in _nasty_strings(200):
            response = client.get("/users/" + quote(raw, safe=""))
            assert response.status_code == 422, raw
            detail = json.loads(response.content)["detail"][0]
            assert detail["input"] == raw
            assert detail["loc"] == ["path", "user_id"]
