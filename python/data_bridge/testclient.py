"""``TestClient``: test an app the way FastAPI users do, ``client.get("/")``.

The app is served for real: the data-bridge server starts on ``127.0.0.1`` on an
ephemeral port, on a PyLoop loop in a background thread, and the client is an
``httpx.Client`` whose transport sends every request there. So a test goes through
exactly what production runs (Rust routing, the native fast paths, the HTTP
protocol), not through an in-process imitation of it; the price is a TCP round trip
per request on the loopback interface.

As Starlette's ``TestClient``:

- ``with TestClient(app) as client:`` runs the app's lifespan (start-up hooks) on
  entry and its shutdown on exit; used without ``with``, the server starts at the
  first request, without the lifespan, and stops at ``close()``.
- The base URL is ``http://testserver``: handlers see that host.
- A request returns once the response *and its background tasks* are done, so a
  test can check what the background tasks did.
- With ``raise_server_exceptions=True`` (the default) an exception that escaped a
  handler (the client would get a 500) or a background task is raised in the test.
- ``client.websocket_connect(path)`` opens a real WebSocket (the ``websockets``
  package's client) and returns Starlette's session API: ``send_text``,
  ``receive_json``, ``close``... A close from the server surfaces as
  ``WebSocketDisconnect(code, reason)`` on the next receive; a refused handshake as
  ``WebSocketDisconnect`` on connecting (1008 for HTTP 403, else 1011).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from data_bridge import background, reporting
from data_bridge.pyloop import new_event_loop
from data_bridge.serve.server import start, stop
from data_bridge.websockets import WebSocketDisconnect

__all__ = ["TestClient", "WebSocketTestSession"]

T = TypeVar("T")
START_TIMEOUT = 30.0
_HANDSHAKE_HEADERS = {"host", "connection", "upgrade", "accept-encoding", "content-length"}


class _ServerThread:
    """The app served on its own PyLoop loop in a daemon thread."""

    def __init__(self, app: Any, *, lifespan: bool) -> None:
        self.app = app
        self.lifespan = lifespan
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="data-bridge-testclient")
        self.thread.daemon = True
        self.thread.start()
        try:
            self.server, bound = self.call(lambda: start(app, port=0, lifespan=lifespan))
        except BaseException:
            self._close_loop()
            raise
        self.port: int = bound[1]

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = START_TIMEOUT) -> T:
        """Awaits ``make()`` on the server's loop and returns its result here."""

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def wait_background(self, timeout: float) -> None:
        """Returns once the background work of the responses received so far is done."""
        # The server counts a response's background work until it has been scheduled
        # (then ``background.running()`` counts it): read in this order, nothing slips by.
        if self.server.background_pending() == 0 and not background.running():
            return

        async def wait() -> None:
            deadline = self.loop.time() + timeout
            while self.server.background_pending() and self.loop.time() < deadline:
                await asyncio.sleep(0.001)
            await background.drain(max(0.0, deadline - self.loop.time()))

        self.call(wait, timeout + 1.0)

    def stop(self) -> None:
        try:
            self.call(lambda: stop(self.app, self.server, 5.0, lifespan=self.lifespan))
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(START_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


class _Transport(httpx.BaseTransport):
    """Sends each request to the test server, whatever host its URL names."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        running = self.client._ensure_server()
        # A copy aimed at the server: the caller's request keeps its URL (cookies and
        # redirects are resolved against it) and its Host header goes out unchanged.
        url = request.url.copy_with(scheme="http", host="127.0.0.1", port=running.port)
        sent = httpx.Request(
            request.method,
            url,
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        response = self.inner.handle_request(sent)
        # The body is read here, so a handler's failure is known before returning.
        try:
            response.read()
        finally:
            response.close()
        self.client._after_response()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=response.content,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


class WebSocketTestSession:
    """A WebSocket connection to the test server, with Starlette's session API."""

    def __init__(self, client: TestClient, connection: Any) -> None:
        self._client = client
        self._connection = connection
        self.accepted_subprotocol: str | None = connection.subprotocol
        self.extra_headers = list(connection.response.headers.raw_items())

    def __enter__(self) -> WebSocketTestSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            data: str | bytes = self._connection.recv()
        except ConnectionClosed as exc:
            self._client._raise_pending()
            frame = exc.rcvd
            if frame is None:
                raise WebSocketDisconnect(1006) from None
            raise WebSocketDisconnect(frame.code, frame.reason) from None
        return data

    def send(self, message: dict[str, Any]) -> None:
        """Sends an ASGI-style ``websocket.receive`` or ``websocket.disconnect``."""
        if message["type"] == "websocket.disconnect":
            self.close(message.get("code", 1000), message.get("reason"))
        elif message.get("text") is not None:
            self.send_text(message["text"])
        else:
            self.send_bytes(message["bytes"])

    def send_text(self, data: str) -> None:
        self._connection.send(data)

    def send_bytes(self, data: bytes) -> None:
        self._connection.send(bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self._connection.send(text if mode == "text" else text.encode())

    def receive(self) -> dict[str, Any]:
        """The next message as an ASGI-style dict (``websocket.send`` or
        ``websocket.close``)."""
        try:
            data = self._recv()
        except WebSocketDisconnect as exc:
            return {"type": "websocket.close", "code": exc.code, "reason": exc.reason}
        key = "text" if isinstance(data, str) else "bytes"
        return {"type": "websocket.send", key: data}

    def receive_text(self) -> str:
        data = self._recv()
        if not isinstance(data, str):
            raise TypeError("expected a text message, got a binary one")
        return data

    def receive_bytes(self) -> bytes:
        data = self._recv()
        if not isinstance(data, bytes):
            raise TypeError("expected a binary message, got a text one")
        return data

    def receive_json(self, mode: str = "text") -> Any:
        return json.loads(self._recv())

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Closes the connection (waiting for the server's reply) and raises what the
        handler raised, if it failed."""
        self._connection.close(code, reason or "")
        self._client._raise_pending()


class TestClient(httpx.Client):
    """An ``httpx.Client`` for ``app``, served by a real data-bridge server (see the
    module's documentation)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        cookies: Any = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        timeout: float | httpx.Timeout = 30.0,
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self._running: _ServerThread | None = None
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        super().__init__(
            base_url=base_url,
            headers={"user-agent": "testclient", **(headers or {})},
            transport=_Transport(self),
            follow_redirects=follow_redirects,
            cookies=cookies,
            timeout=timeout,
        )

    # -- the server -------------------------------------------------------------------

    def _listen(self, exc: BaseException) -> None:
        self._errors.append(exc)

    def _start(self, *, lifespan: bool) -> _ServerThread:
        reporting.add_listener(self._listen)
        try:
            self._running = _ServerThread(self.app, lifespan=lifespan)
        except BaseException:
            reporting.remove_listener(self._listen)
            raise
        return self._running

    def _ensure_server(self) -> _ServerThread:
        with self._lock:
            if self._running is None:
                return self._start(lifespan=False)
            return self._running

    def _stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        try:
            running.stop()
        finally:
            reporting.remove_listener(self._listen)
        self._raise_pending()

    def _after_response(self) -> None:
        running = self._running
        if running is not None:
            running.wait_background(START_TIMEOUT)
        self._raise_pending()

    def _raise_pending(self) -> None:
        errors, self._errors = self._errors, []
        if errors and self.raise_server_exceptions:
            raise errors[0]

    # -- WebSockets ------------------------------------------------------------------

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> WebSocketTestSession:
        """Opens a WebSocket to ``url`` (a path, or a URL whose host is ignored) on the
        test server; use it as a context manager."""
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

        running = self._ensure_server()
        uri = str(self.base_url.join(url).copy_with(scheme="ws"))
        # The client's own headers, less those the handshake sets itself.
        sent = {
            k: v
            for k, v in {**dict(self.headers), **(headers or {})}.items()
            if k.lower() not in _HANDSHAKE_HEADERS
        }
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if cookie:
            sent["cookie"] = cookie
        sock = socket.create_connection(("127.0.0.1", running.port))
        try:
            connection = connect(
                uri,
                sock=sock,
                subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
                additional_headers=sent,
                max_size=None,
                open_timeout=START_TIMEOUT,
            )
        except InvalidStatus as exc:
            sock.close()
            self._raise_pending()
            code = 1008 if exc.response.status_code == 403 else 1011
            raise WebSocketDisconnect(code) from None
        except BaseException:
            sock.close()
            raise
        # Entered at once: the session closes it (as `with connect(...)` would).
        return WebSocketTestSession(self, connection.__enter__())

    # -- the context manager ------------------------------------------------------------

    def __enter__(self) -> TestClient:
        with self._lock:
            if self._running is not None:
                raise RuntimeError("the test client is already serving its app")
            self._start(lifespan=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            self._stop()
        finally:
            super().__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Stops the server (if it runs) and closes the connections."""
        try:
            self._stop()
        finally:
            super().close()
