"""UDP (and Unix datagram) transports for ``create_datagram_endpoint``: an asyncio
datagram transport whose methods are bound to the native ``DatagramTransport`` core."""

from __future__ import annotations

import asyncio
import socket
import warnings
from asyncio import transports, trsock
from typing import Any

from data_bridge import _native

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


class DatagramTransport(transports._FlowControlMixin, transports.DatagramTransport):
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
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock: socket.socket | None = sock
        self._address = address
        core = _native.DatagramTransport(loop, sock, protocol, self, address)
        self._core = core
        for name in _BOUND:
            setattr(self, name, getattr(core, name))
        core._start(waiter)

    def _set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # Called by _FlowControlMixin.__init__ before the core exists.
        core = getattr(self, "_core", None)
        if core is not None:
            core.set_write_buffer_limits(high, low)

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

    def __del__(self, _warn: Any = warnings.warn) -> None:
        sock = self._sock
        if sock is not None and sock.fileno() != -1:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


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
