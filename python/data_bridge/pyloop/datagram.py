"""UDP (and Unix datagram) transports for ``create_datagram_endpoint``: an asyncio
datagram transport whose methods are bound to the native ``DatagramTransport`` core."""

from __future__ import annotations

import asyncio
import socket
from asyncio import transports
from typing import Any

from data_bridge import _native
from data_bridge.pyloop.transports import NativeFlowControl, bind_core, socket_extra

__all__ = ["DatagramMixin", "DatagramTransport"]

_BOUND = (
    "sendto",
    "close",
    "abort",
    "is_closing",
    "get_write_buffer_size",
    "set_write_buffer_limits",
    "get_write_buffer_limits",
    "pause_reading",
    "resume_reading",
    "is_reading",
    "set_protocol",
    "get_protocol",
    "_force_close",
)


class DatagramTransport(NativeFlowControl, transports.DatagramTransport):
    """A datagram transport driven by PyLoop's native core."""

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra, loop)
        socket_extra(self._extra, sock)
        self._sock: socket.socket | None = sock
        self._address = address
        core = _native.DatagramTransport(loop, sock, protocol, self, address)
        bind_core(self, core, _BOUND)
        core._start(waiter)

    def __repr__(self) -> str:
        sock = self._sock
        if sock is None or sock.fileno() == -1:
            state = "closed"
        elif self._core.is_closing():
            state = "closing"
        else:
            state = "open"
        fd = sock.fileno() if sock is not None else -1
        return f"<{self.__class__.__name__} fd={fd} {state}>"


class DatagramMixin:
    """The loop's datagram transport factory."""

    def _make_datagram_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        address: Any = None,
        waiter: Any = None,
        extra: Any = None,
    ) -> DatagramTransport:
        return DatagramTransport(self, sock, protocol, address, waiter, extra)
