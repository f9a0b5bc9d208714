"""Helpers for the HTTP server tests: run an app on a PyLoop loop in a background
thread for the duration of a ``with`` block, and talk to it over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import data_bridge
import data_bridge.pyloop
from data_bridge import App, Request, StreamingResponse, _native
from data_bridge.background import drain

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

Starter = Callable[[], Awaitable[tuple[Any, Any]]]


@dataclass
class Running:
    """A server running in a background thread."""

    base_url: str
    bound: Any
    server: Any
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stopped: bool = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.bound
        return host, port

    def call(self, make: Callable[[], Awaitable[Any]], timeout: float = STOP_TIMEOUT) -> Any:
        """Awaits ``make()`` on the server's loop and waits for the result here."""

        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def shutdown(self, grace: float, timeout: float = STOP_TIMEOUT) -> None:
        """``await server.shutdown(grace)`` on the server's loop."""
        self.call(lambda: self.server.shutdown(grace), timeout)
        self.stopped = True


async def _stop(
    server: Any, grace: float, stopped: bool, after: Callable[[], Awaitable[Any]] | None
) -> None:
    if not stopped:
        await server.shutdown(grace)
    if after is not None:
        await after()
    # Cancel whatever the server left running (handlers of abandoned requests).
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for task in rest:
        task.cancel()
    if rest:
        await asyncio.wait(rest, timeout=2.0)
        # The runtime is current-thread and driven by the waiting loop: give the
        # connections of those requests a moment to write their responses.
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def serve_in_thread(
    starter: Starter,
    *,
    grace: float = 1.0,
    after: Callable[[], Awaitable[Any]] | None = None,
) -> Iterator[Running]:
    """Runs ``starter()`` (which must start a server on the running loop and return
    ``(server, bound)``) on a fresh PyLoop loop in a thread, then runs the loop until
    the ``with`` block ends; then shuts the server down, awaits ``after()`` and closes
    the loop."""
    loop = data_bridge.pyloop.new_event_loop()
    started = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                result["value"] = loop.run_until_complete(
                    asyncio.wait_for(starter(), START_TIMEOUT)
                )
            except BaseException as exc:
                result["error"] = exc
                return
            finally:
                started.set()
            loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    thread = threading.Thread(target=target, name="data-bridge-test-server", daemon=True)
    thread.start()
    try:
        if not started.wait(START_TIMEOUT):
            raise TimeoutError("the server did not start in time")
        if "error" in result:
            thread.join(STOP_TIMEOUT)
            raise result["error"]
        server, bound = result["value"]
        if isinstance(bound, str):
            base_url = "http://data-bridge.test"
        else:
            base_url = f"http://{bound[0]}:{bound[1]}"
        running = Running(base_url, bound, server, loop, thread)
        try:
            yield running
        finally:
            try:
                stopping = asyncio.run_coroutine_threadsafe(
                    _stop(server, grace, running.stopped, after), loop
                )
                stopping.result(STOP_TIMEOUT)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(STOP_TIMEOUT)
                assert not thread.is_alive(), "the server thread did not stop"
    finally:
        if not thread.is_alive() and not loop.is_closed():
            loop.close()


@contextlib.contextmanager
def run_server_info(app: App, **start_kwargs: Any) -> Iterator[Running]:
    """Like :func:`run_server` but yields the whole :class:`Running` record."""
    start_kwargs.setdefault("port", 0)

    async def starter() -> tuple[Any, Any]:
        return await data_bridge.start(app, **start_kwargs)

    async def after() -> None:
        # What data_bridge.stop() does once the server is down.
        await drain(STOP_TIMEOUT)
        await app.lifespan.shutdown()

    with serve_in_thread(starter, after=after) as running:
        yield running


@contextlib.contextmanager
def run_server(app: App, **start_kwargs: Any) -> Iterator[str]:
    """Serves ``app`` (``data_bridge.start(app, port=0, **start_kwargs)``) on a PyLoop
    loop in a background thread; yields the base URL."""
    with run_server_info(app, **start_kwargs) as running:
        yield running.base_url


@contextlib.contextmanager
def run_native_server(app: App, **server_kwargs: Any) -> Iterator[Running]:
    """Serves ``app`` through ``data_bridge._native.Server`` directly, for settings that
    :func:`data_bridge.start` does not expose (``header_timeout``, ``max_header_bytes``)."""

    async def starter() -> tuple[Any, Any]:
        options = _native.ServerOptions(**server_kwargs)
        server = _native.Server(app.route_table(), options, debug=app.debug)
        return server, start_native(server)

    with serve_in_thread(starter) as running:
        yield running


def start_native(server: _native.Server, uds: str | None = None) -> Any:
    """Starts ``server`` on the running loop, listening on ``127.0.0.1`` at a free port
    or on the Unix socket ``uds``; returns the bound address."""
    if uds is None:
        sock = socket.create_server(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(uds)
        sock.listen()
    with sock:
        # The server adopts a duplicate of the socket.
        return server.start(asyncio.get_running_loop(), sock.fileno())


# -- routes the limit tests share ------------------------------------------------


def octet_stream(total: int, chunk: int = 65536) -> StreamingResponse:
    """A streamed ``application/octet-stream`` body of ``total`` bytes."""

    async def parts() -> AsyncIterator[bytes]:
        for _ in range(total // chunk):
            yield b"x" * chunk

    return StreamingResponse(parts(), media_type="application/octet-stream")


async def streamed_length(request: Request) -> int:
    """The length of a request body read with ``request.stream()``."""
    return sum([len(chunk) async for chunk in request.stream()])


# -- raw sockets ------------------------------------------------------------------


def connect(address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Reads until the peer closes the connection (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connection still open after {timeout} s: {b''.join(chunks)!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise TimeoutError(
                f"connection still open after {timeout} s: {b''.join(chunks)!r}"
            ) from None
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def raw_request(address: tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    """Sends ``data`` on a new connection and returns everything the server sends
    back until it closes the connection."""
    with connect(address, timeout) as sock:
        sock.sendall(data)
        return recv_all(sock, timeout)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.x response."""
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/1."), f"not a response: {response!r}"
    return int(parts[1])
