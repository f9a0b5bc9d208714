"""The socket transport Python code sees: an ``asyncio`` flow-control transport whose
methods are bound to the native ``StreamTransport`` core.

Binding the core's methods onto the instance (rather than wrapping them in Python
methods) means ``transport.write(data)`` calls straight into Rust with no extra
frame, while ``isinstance(transport, asyncio.Transport)`` still holds.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import warnings
from asyncio import base_events, constants, transports, trsock
from typing import TYPE_CHECKING, Any

from data_bridge import _native

if TYPE_CHECKING:
    from data_bridge.pyloop.loop import Loop

__all__ = ["NativeFlowControl", "SocketTransport", "bind_core", "server_attach", "socket_extra"]

_BOUND = (
    "write",
    "writelines",
    "write_eof",
    "can_write_eof",
    "close",
    "abort",
    "is_closing",
    "pause_reading",
    "resume_reading",
    "is_reading",
    "set_write_buffer_limits",
    "get_write_buffer_limits",
    "get_write_buffer_size",
    "set_protocol",
    "get_protocol",
    "_force_close",
)

# Python 3.13 passes the transport to Server._attach/_detach (for close_clients()).
_ATTACH_TAKES_TRANSPORT = len(inspect.signature(base_events.Server._attach).parameters) > 1


def server_attach(server: Any, transport: Any) -> Any:
    """Registers ``transport`` with an asyncio ``Server``; returns the matching detach."""
    if _ATTACH_TAKES_TRANSPORT:
        server._attach(transport)
        return functools.partial(server._detach, transport)
    server._attach()
    return server._detach


def socket_extra(extra: dict[str, Any], sock: socket.socket) -> None:
    """Fills a transport's ``get_extra_info`` keys for ``sock``, as asyncio does."""
    extra["socket"] = trsock.TransportSocket(sock)
    try:
        extra["sockname"] = sock.getsockname()
    except OSError:
        extra["sockname"] = None
    if "peername" not in extra:
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None


def bind_core(transport: Any, core: Any, names: tuple[str, ...]) -> None:
    """Binds the native core's methods onto the transport instance (no extra frame)."""
    transport._core = core
    for name in names:
        setattr(transport, name, getattr(core, name))


class NativeFlowControl(transports._FlowControlMixin):
    """Base of the transports whose state (flow control included) lives in a native core."""

    _core: Any
    _sock: socket.socket | None

    def _set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # Called by _FlowControlMixin.__init__ before the core exists.
        core = getattr(self, "_core", None)
        if core is not None:
            core.set_write_buffer_limits(high, low)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None and sock.fileno() != -1:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


class SocketTransport(NativeFlowControl):
    """A TCP or Unix stream transport driven by PyLoop's native core."""

    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    _start_tls_compatible = True

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        super().__init__(extra, loop)
        socket_extra(self._extra, sock)
        self._sock: socket.socket | None = sock
        self._server = server
        base_events._set_nodelay(sock)
        on_lost = server_attach(server, self) if server is not None else None
        core = _native.StreamTransport(loop, sock, protocol, self, on_lost)
        bind_core(self, core, _BOUND)
        core._start(waiter)

    @property  # type: ignore[override]
    def _protocol_paused(self) -> bool:
        # asyncio's sendfile fallback reads this to know whether writing is paused.
        _low, high = self._core.get_write_buffer_limits()
        return bool(self._core.get_write_buffer_size() > high)

    @_protocol_paused.setter
    def _protocol_paused(self, value: bool) -> None:
        # _FlowControlMixin.__init__ assigns it; the native core owns the state.
        pass

    def _maybe_pause_protocol(self) -> None:
        return None

    def _maybe_resume_protocol(self) -> None:
        return None

    @property
    def _protocol(self) -> asyncio.BaseProtocol | None:
        return self._core.get_protocol()

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        sock = self._sock
        if sock is None or sock.fileno() == -1:
            info.append("closed")
        elif self._core.is_closing():
            info.append("closing")
        if sock is not None and sock.fileno() != -1:
            info.append(f"fd={sock.fileno()}")
        info.append(f"write_bufsize={self._core.get_write_buffer_size()}")
        return "<{}>".format(" ".join(info))
