"""WebSocket limits against a real server: open WebSockets count against the in-flight
limit, a handshake the handler never answers times out with 403, a client that stops answering pings is closed, and the messages waiting
for the handler are bounded in bytes."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from data_bridge import App, WebSocket
from data_bridge.websockets import WebSocketDisconnect
from tests.waiting import wait_until

from .conftest import Running, run_native_server, run_server

TIMEOUT = 10.0


def ws_url(running: Running, path: str) -> str:
    host, port = running.address
    return f"ws://{host}:{port}{path}"


def raw_handshake(running: Running, path: str) -> socket.socket:
    """A WebSocket opened by hand, so the test decides what (not) to answer."""
    sock = socket.create_connection(running.address, timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def binary_frame(payload: bytes) -> bytes:
    """A masked (client-to-server) binary frame; the zero mask leaves the payload as is."""
    return b"\x82\xff" + struct.pack("!Q", len(payload)) + b"\0\0\0\0" + payload


class Seen:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.closed: list[int] = []
        self.ended = threading.Event()
        self.gate = threading.Event()


@pytest.fixture
def app() -> Iterator[tuple[App, Seen]]:
    app = App()
    seen = Seen()

    @app.websocket("/undecided")
    async def undecided(websocket: WebSocket) -> None:
        try:
            await asyncio.sleep(TIMEOUT)
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise
        await websocket.accept()

    @app.websocket("/listen")
    async def listen(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            seen.closed.append(exc.code)
        finally:
            seen.ended.set()

    @app.websocket("/deaf")
    async def deaf(websocket: WebSocket) -> None:
        await websocket.accept()
        while not seen.gate.is_set():
            await asyncio.sleep(0.01)

    yield app, seen
    seen.gate.set()


def serve(app: App, **settings: Any) -> Any:
    return run_native_server(app, **settings)


def test_a_handshake_the_handler_never_answers_is_refused(app: tuple[App, Seen]) -> None:
    application, seen = app
    with serve(application, ws_handshake_timeout=0.3) as running:
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(running, "/undecided"), open_timeout=5)
        assert info.value.response.status_code == 403
        assert time.monotonic() - started < 3
        assert seen.cancelled.wait(5), "the handler was not cancelled"


def test_a_client_that_stops_answering_pings_is_closed(app: tuple[App, Seen]) -> None:
    application, seen = app
    with serve(application, ws_ping_interval=0.2, ws_ping_timeout=0.3) as running:
        sock = raw_handshake(running, "/listen")
        try:
            # Reads nothing, so never answers the server's pings.
            assert seen.ended.wait(5), "the silent connection stayed open"
            assert seen.closed == [1006]
        finally:
            sock.close()


def test_a_client_that_answers_pings_stays_connected(app: tuple[App, Seen]) -> None:
    application, seen = app
    with (
        serve(application, ws_ping_interval=0.1, ws_ping_timeout=0.2) as running,
        connect(ws_url(running, "/listen"), open_timeout=5) as ws,
    ):
        time.sleep(1.0)
        ws.send("still here")
        assert ws.recv(5) == "still here"
        assert not seen.ended.is_set()


def test_messages_waiting_for_the_handler_are_bounded_in_bytes(app: tuple[App, Seen]) -> None:
    application, seen = app
    message = binary_frame(b"x" * (1024 * 1024))
    sent = 0
    with serve(application) as running:
        sock = raw_handshake(running, "/deaf")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            sock.settimeout(1.0)
            # The handler reads nothing: the server stops reading once its inbox is full
            # and the client's writes stall. 16 messages of 1 MiB would fit if the
            # inbox were bounded by count only.
            with pytest.raises(TimeoutError):
                while sent < 32 * len(message):
                    sock.sendall(message)
                    sent += len(message)
        finally:
            sock.close()
            seen.gate.set()
    assert sent < 12 * len(message), f"{sent} bytes were taken before the client stalled"


def test_open_websockets_count_until_they_close() -> None:
    app = App()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    with run_server(app, max_pending=1) as url, httpx.Client(base_url=url, timeout=5) as c:
        ws_url = "ws" + url[4:] + "/ws"
        with connect(ws_url, open_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(5) == "hi"
            assert c.get("/ping").status_code == 503
            with pytest.raises(InvalidStatus) as info:
                connect(ws_url, open_timeout=5)
            assert info.value.response.status_code == 503
        assert wait_until(lambda: c.get("/ping").status_code == 200)
