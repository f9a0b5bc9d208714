"""WebSockets with Starlette's API: ``WebSocket``, ``WebSocketDisconnect`` and
``WebSocketState``, and the code that runs a ``@app.websocket`` route for one connection.

The connection itself lives in Rust (``data_bridge._native.WebSocketConn``): frames
are read and written by Tokio tasks, and each call here either finds its message
already there (no wake-up) or awaits one future. How a route's handler is run for a
connection (parameters, dependencies, the final close) is in
:mod:`data_bridge.endpoints`.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from data_bridge.exceptions import WebSocketException
from data_bridge.requests import HTTPConnection

if TYPE_CHECKING:
    from data_bridge import _native

__all__ = [
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketRequestValidationError",
    "WebSocketState",
]

Raw = str | bytes | tuple[int, str]


class WebSocketState(enum.Enum):
    """Where each side of a connection stands (Starlette's values)."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The connection has ended: raised by ``receive_*`` once the client has closed (or
    dropped, ``code == 1006``), and by ``send_*`` to a connection that has ended."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    def __repr__(self) -> str:
        return f"WebSocketDisconnect(code={self.code!r}, reason={self.reason!r})"


class WebSocketRequestValidationError(ValueError):
    """A WebSocket route's parameters failed validation; the handshake is refused
    (closed with 1008 before ``accept()``, so the client gets HTTP 403)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


def _message(raw: Raw) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"type": "websocket.receive", "text": raw}
    if isinstance(raw, bytes):
        return {"type": "websocket.receive", "bytes": raw}
    return {"type": "websocket.disconnect", "code": raw[0], "reason": raw[1]}


class WebSocket(HTTPConnection):
    """One WebSocket connection, as a handler sees it (Starlette's ``WebSocket``)."""

    def __init__(
        self, native: _native.RequestData, conn: _native.WebSocketConn, app: Any = None
    ) -> None:
        super().__init__(native, app)
        self._conn = conn
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        self._connect_received = False

    @property
    def url(self) -> str:
        return "ws" + super().url[4:]

    # -- receiving ------------------------------------------------------------------

    async def _next(self) -> Raw:
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        raw = self._conn.receive()
        if not isinstance(raw, (str, bytes, tuple)):
            raw = await raw
        if isinstance(raw, tuple):
            self.client_state = WebSocketState.DISCONNECTED
        return raw

    def _require_accepted(self) -> None:
        if self.application_state is not WebSocketState.CONNECTED:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')

    async def receive(self) -> dict[str, Any]:
        """The next ASGI-style message: ``websocket.connect`` first, then
        ``websocket.receive`` (``text`` or ``bytes``) and ``websocket.disconnect``."""
        if not self._connect_received:
            self._connect_received = True
            self.client_state = WebSocketState.CONNECTED
            return {"type": "websocket.connect"}
        return _message(await self._next())

    async def _data(self) -> str | bytes:
        self._require_accepted()
        raw = await self._next()
        if isinstance(raw, tuple):
            raise WebSocketDisconnect(raw[0], raw[1])
        return raw

    async def receive_text(self) -> str:
        """The next text message; raises ``WebSocketDisconnect`` once the client left."""
        data = await self._data()
        if not isinstance(data, str):
            raise TypeError("expected a text message, got a binary one")
        return data

    async def receive_bytes(self) -> bytes:
        """The next binary message; raises ``WebSocketDisconnect`` once the client left."""
        data = await self._data()
        if not isinstance(data, bytes):
            raise TypeError("expected a binary message, got a text one")
        return data

    async def receive_json(self, mode: str = "text") -> Any:
        """The next message parsed as JSON (``mode`` is ``"text"`` or ``"binary"``)."""
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        data = await self._data()
        return json.loads(data)

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the client disconnects."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                yield await self.receive_text()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the client disconnects."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                yield await self.receive_bytes()

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the client disconnects."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                yield await self.receive_json()

    # -- sending ----------------------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Sequence[tuple[Any, Any]] | None = None
    ) -> None:
        """Completes the handshake, choosing ``subprotocol`` among those the client
        offered (``Sec-WebSocket-Protocol``), with extra response ``headers``."""
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError('Cannot call "accept" once the handshake was answered.')
        self._connect_received = True
        if self.client_state is WebSocketState.CONNECTING:
            self.client_state = WebSocketState.CONNECTED
        pairs = [(_text(k), _text(v)) for k, v in headers or ()]
        self.application_state = WebSocketState.CONNECTED
        if not self._conn.accept(subprotocol, pairs):
            self.client_state = WebSocketState.DISCONNECTED

    async def _send(self, data: str | bytes) -> None:
        if self.application_state is not WebSocketState.CONNECTED:
            if self.application_state is WebSocketState.CONNECTING:
                raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        try:
            waiter = self._conn.send(data)
            if waiter is not None and not await waiter:
                raise ConnectionResetError
        except ConnectionResetError:
            self.application_state = WebSocketState.DISCONNECTED
            code, reason = self._conn.close_status or (1006, "")
            raise WebSocketDisconnect(code, reason) from None

    async def send_text(self, data: str) -> None:
        """Sends a text message; waits while the client is behind on reading."""
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        """Sends a binary message; waits while the client is behind on reading."""
        await self._send(bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Sends ``data`` as JSON, in a text (default) or binary message."""
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        await self._send(text if mode == "text" else text.encode())

    async def send(self, message: dict[str, Any]) -> None:
        """Sends an ASGI-style message: ``websocket.accept``, ``websocket.send`` or
        ``websocket.close``."""
        kind = message["type"]
        if kind == "websocket.accept":
            await self.accept(message.get("subprotocol"), message.get("headers"))
        elif kind == "websocket.send":
            data = message.get("text")
            await self._send(data if data is not None else message["bytes"])
        elif kind == "websocket.close":
            await self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise RuntimeError(f"Unexpected ASGI message type {kind!r}")

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Closes with ``code``; before ``accept()`` it refuses the handshake (403)."""
        state = self.application_state
        if state is WebSocketState.CONNECTING:
            self.application_state = WebSocketState.DISCONNECTED
            self._conn.reject(403)
            return
        if state is not WebSocketState.CONNECTED:
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        self.application_state = WebSocketState.DISCONNECTED
        # Closing a connection the client already left has nothing left to do.
        with contextlib.suppress(ConnectionResetError):
            waiter = self._conn.close(code, reason or "")
            if waiter is not None:
                await waiter


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
