"""The :class:`Loop` class: PyLoop's event loop as Python sees it.

``Loop`` combines the native core (``_native.LoopCore``: ready queue, timers, I/O
readiness and the run loop, all in Rust) with ``asyncio.BaseEventLoop``, whose
high-level methods (``create_connection``, ``create_server``, ``start_tls``,
``getaddrinfo``, executors, async generators, ...) run unchanged on top of the
native primitives. The mixins supply what asyncio keeps in its selector and Unix
loops: socket operations, servers, signals, pipes, subprocesses, datagrams and Unix
sockets.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import threading
from asyncio import base_events, events, exceptions, format_helpers, sslproto
from asyncio.log import logger
from typing import Any

from data_bridge import _native
from data_bridge.pyloop.datagram import DatagramMixin
from data_bridge.pyloop.pipes import PipesMixin
from data_bridge.pyloop.servers import ServersMixin
from data_bridge.pyloop.signals import SignalsMixin
from data_bridge.pyloop.sockets import SocketsMixin
from data_bridge.pyloop.subprocess import SubprocessMixin
from data_bridge.pyloop.transports import SocketTransport
from data_bridge.pyloop.unix import UnixMixin

__all__ = ["Loop"]

_HAS_RUN_FOREVER_SETUP = hasattr(base_events.BaseEventLoop, "_run_forever_setup")


class Loop(  # type: ignore[misc]
    _native.LoopCore,
    SocketsMixin,
    ServersMixin,
    SignalsMixin,
    PipesMixin,
    SubprocessMixin,
    DatagramMixin,
    UnixMixin,
    base_events.BaseEventLoop,
):
    """An asyncio event loop whose core runs in Rust on Tokio."""

    def __init__(self) -> None:
        base_events.BaseEventLoop.__init__(self)
        SignalsMixin.__init__(self)
        self._unix_server_inodes = {}
        self._child_watches = set()
        if type(self).time is not Loop.time:
            self._set_custom_time(True)

    # A test may patch ``loop.time`` (``mock.patch.object``); asyncio's loop then takes
    # its deadlines from the patched clock, and so does this one.
    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "time":
            self._set_custom_time(True)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name == "time":
            self._set_custom_time(type(self).time is not Loop.time)

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # -- running and stopping -------------------------------------------------

    def run_forever(self) -> None:
        """Runs until :meth:`stop` is called."""
        if _HAS_RUN_FOREVER_SETUP:
            self._run_forever_setup()
            try:
                self._install_wakeup_fd()
                self._run()
            finally:
                self._uninstall_wakeup_fd()
                self._run_forever_cleanup()
            return
        # Python 3.11 has no setup/cleanup hooks; this mirrors its run_forever.
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            self._install_wakeup_fd()
            self._run()
        finally:
            self._uninstall_wakeup_fd()
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def close(self) -> None:
        """Closes the loop: drops pending callbacks and shuts the default executor down."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        self._close_signals()
        self._close_child_watches()
        super().close()
        self._close_native()

    def set_debug(self, enabled: bool) -> None:
        """Turns debug mode on or off (slow-callback warnings, thread checks, ...)."""
        super().set_debug(enabled)
        self._set_debug_flag(enabled)

    def _write_to_self(self) -> None:
        # asyncio's wake-up hook; the native core wakes itself.
        self._wake()

    def _process_events(self, event_list: Any) -> None:
        # Events are dispatched natively; asyncio's hook stays a no-op.
        return None

    # -- callbacks that fail or run slowly (called by the native run loop) ----

    def _callback_failed(self, handle: _native.Handle, exc: BaseException) -> None:
        source = format_helpers._format_callback_source(handle._callback, handle._args)
        context: dict[str, Any] = {
            "message": f"Exception in callback {source}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    def _extract_stack(self) -> Any:
        # Called by the native core in debug mode: frame 1 is whoever scheduled.
        return format_helpers.extract_stack(sys._getframe(1))

    def _after_callback(self, handle: _native.Handle, elapsed: float) -> None:
        if elapsed >= self.slow_callback_duration:
            logger.warning("Executing %s took %.3f seconds", _describe(handle), elapsed)

    # -- transports -----------------------------------------------------------

    def _make_socket_transport(
        self,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> SocketTransport:
        return SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(
        self,
        rawsock: Any,
        protocol: asyncio.BaseProtocol,
        sslcontext: Any,
        waiter: asyncio.Future[Any] | None = None,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        call_connection_made: bool = True,
    ) -> asyncio.Transport:
        # asyncio's TLS state machine works over any transport; it feeds on ours.
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made,
        )
        SocketTransport(self, rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    async def _sendfile_native(self, transp: Any, file: Any, offset: int, count: int | None) -> int:
        if not isinstance(transp, SocketTransport):
            raise exceptions.SendfileNotAvailableError("transport is not a socket transport")
        try:
            fileno = file.fileno()
            size = os.fstat(fileno).st_size
        except (AttributeError, OSError, ValueError) as err:
            raise exceptions.SendfileNotAvailableError("not a regular file") from err
        if not (count if count else size - offset):
            return 0
        resume_reading = transp.is_reading()
        transp.pause_reading()
        done = self.create_future()
        transp._core._start_sendfile(fileno, offset, count, done)
        try:
            sent, exc = await done
        except BaseException:
            # Cancelled: the native job must stop before the caller may close the file.
            # asyncio leaves the file position alone in this case.
            transp._core._cancel_sendfile()
            raise
        finally:
            if resume_reading:
                transp.resume_reading()
        if sent:
            # Also after a failure part-way: the position is where the data stopped.
            file.seek(offset + sent)
        if exc is not None:
            if not sent and exc.errno in _SENDFILE_UNSUPPORTED:
                raise exceptions.SendfileNotAvailableError("os.sendfile() refused") from exc
            raise exc
        return sent


_SENDFILE_UNSUPPORTED = (errno.EINVAL, errno.ENOTSOCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _describe(handle: _native.Handle) -> str:
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return repr(handle)
