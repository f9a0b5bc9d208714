"""Bounded resources: a request body that stalls, a connection left idle (HTTP/1 and
HTTP/2), a client that stops reading its response, more connections than allowed, and
durations no clock can hold. Each is checked against a real server over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import h2.connection
import h2.events
import httpx
import pydantic
import pytest

from data_bridge import App, Request, StreamingResponse, _native

from .conftest import (
    Running,
    connect,
    octet_stream,
    recv_all,
    run_native_server,
    serve_in_thread,
    start_native,
    status_of,
    streamed_length,
)

SHORT = 0.5


class Item(pydantic.BaseModel):
    name: str


def limits_app() -> App:
    app = App()

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.post("/item")
    async def item(body: Item) -> Item:
        return body

    @app.post("/stream")
    async def stream(request: Request) -> int:
        return await streamed_length(request)

    @app.get("/slow")
    async def slow() -> str:
        await asyncio.sleep(SHORT * 3)
        return "slow"

    @app.get("/quiet-stream")
    async def quiet_stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first,"
            await asyncio.sleep(SHORT * 3)
            yield b"second"

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/big")
    async def big() -> StreamingResponse:
        return octet_stream(2000 * 65536)

    return app


@pytest.fixture(scope="module")
def limited() -> Iterator[Running]:
    with run_native_server(
        limits_app(),
        body_timeout=SHORT,
        keep_alive_timeout=SHORT,
        write_timeout=SHORT,
        limit_connections=8,
    ) as running:
        yield running


def assert_serving(running: Running) -> None:
    assert httpx.get(running.base_url + "/ok", timeout=5).json() == "ok"


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing ``sock``, which must happen in time."""
    start = time.monotonic()
    try:
        data = recv_all(sock, timeout=seconds)
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    assert time.monotonic() - start < seconds
    return data


@pytest.mark.parametrize("path", ["/item", "/stream"])
def test_a_stalled_body_gets_408(limited: Running, path: str) -> None:
    # Declares 16 MB, sends a few bytes, then nothing.
    with connect(limited.address) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            'content-length: 16000000\r\n\r\n{"na'.encode()
        )
        answer = closed_within(sock, 5)
    assert status_of(answer) == 408
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "Request Timeout"}
    assert_serving(limited)


def test_a_body_that_keeps_coming_is_not_cut(limited: Running) -> None:
    with connect(limited.address) as sock:
        sock.sendall(
            b"POST /stream HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nconnection: close\r\n\r\n"
        )
        for byte in b"abcd":
            time.sleep(SHORT / 3)
            sock.sendall(bytes([byte]))
        answer = recv_all(sock)
    assert status_of(answer) == 200
    assert answer.endswith(b"4")


def test_an_idle_http1_connection_is_closed(limited: Running) -> None:
    with connect(limited.address) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.1)
        first = sock.recv(65536)
        assert status_of(first) == 200
        assert closed_within(sock, 5) == b""


def test_an_idle_http2_connection_is_closed(limited: Running) -> None:
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    with connect(limited.address) as sock:
        sock.sendall(conn.data_to_send())
        start = time.monotonic()
        sock.settimeout(5)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            conn.receive_data(data)
            sock.sendall(conn.data_to_send())
            assert time.monotonic() - start < 5, "the idle HTTP/2 connection stayed open"
        assert time.monotonic() - start < 5


def test_busy_connections_are_not_idle(limited: Running) -> None:
    # A handler slower than the keep-alive timeout, and a stream quiet for longer.
    with httpx.Client(base_url=limited.base_url, timeout=10) as client:
        assert client.get("/slow").json() == "slow"
        assert client.get("/quiet-stream").text == "first,second"


def test_a_client_that_stops_reading_is_dropped(limited: Running) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with contextlib.closing(sock):
        sock.connect(limited.address)
        sock.sendall(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        # Read nothing while the server's writes stall past the write timeout.
        time.sleep(SHORT * 4)
        received = 0
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
    # The connection ended (no hang) long before the 131 MB body was sent.
    assert received < 2000 * 65536 // 2
    assert_serving(limited)


def test_connections_past_the_limit_get_503(limited: Running) -> None:
    held = [connect(limited.address) for _ in range(8)]
    try:
        for sock in held:
            sock.sendall(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
            assert status_of(sock.recv(65536)) == 200
        with connect(limited.address) as extra:
            answer = closed_within(extra, 5)
        assert status_of(answer) == 503
        assert b"retry-after: 1" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "Service Unavailable"}
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, new connections are served again.
    deadline = time.monotonic() + 5
    while True:
        try:
            assert_serving(limited)
            break
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_header_timeout_on_unix_sockets(tmp_path: Any) -> None:
    path = str(tmp_path / "s.sock")
    app = limits_app()

    async def starter() -> tuple[Any, Any]:
        server = _native.Server(app.route_table(), _native.ServerOptions(header_timeout=SHORT))
        return server, start_native(server, uds=path)

    with serve_in_thread(starter):
        for partial in (b"", b"PRI * HTTP/2.0\r\n"):
            sock = socket.socket(socket.AF_UNIX)
            with contextlib.closing(sock):
                sock.connect(path)
                sock.sendall(partial)
                closed_within(sock, 5)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, -1.0])
@pytest.mark.parametrize(
    "option", ["header_timeout", "body_timeout", "keep_alive_timeout", "write_timeout"]
)
def test_durations_no_clock_can_hold_are_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        _native.ServerOptions(**{option: value})


@pytest.mark.parametrize("value", [float("inf"), 1e300])
def test_route_timeouts_and_grace_no_clock_can_hold_are_refused(value: float) -> None:
    app = App()
    with pytest.raises(ValueError, match="timeout"):

        @app.get("/x", timeout=value)
        async def x() -> str:
            return "x"

    # The native route table checks too, for routes declared without the Python API.
    table = _native.RouteTable()
    with pytest.raises(ValueError, match="timeout"):
        table.add_python(
            ["GET"], "/x", lambda: "x", is_async=False, mode="none", params=[], timeout=value
        )
    with run_native_server(limits_app()) as running, pytest.raises(ValueError, match="grace"):
        running.call(lambda: _shutdown(running.server, value))


async def _shutdown(server: Any, grace: float) -> None:
    await server.shutdown(grace)
