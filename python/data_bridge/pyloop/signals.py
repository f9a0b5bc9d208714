"""Unix signals: ``add_signal_handler``/``remove_signal_handler`` and waking the loop
when a signal arrives while it waits.

Python runs signal handlers on the main thread between bytecodes. While the loop
waits in Rust (GIL released) no bytecode runs, so the loop owns a wake-up socket
registered with ``signal.set_wakeup_fd``: a signal writes a byte, the loop wakes and
runs the pending Python handlers at once. Signals that arrive while the loop is not
running stay queued in that socket and Python's own flag, and are handled on the next
run.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from data_bridge import _native

__all__ = ["SignalsMixin"]


def _check_signal(sig: Any) -> None:
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


class SignalsMixin:
    """Signal handling for the loop."""

    _signal_handlers: dict[int, _native.Handle]
    _wakeup_socks: tuple[socket.socket, socket.socket] | None
    _wakeup_owned: bool

    def __init__(self) -> None:
        self._signal_handlers = {}
        self._wakeup_socks = None
        self._wakeup_owned = False

    def _wakeup_pair(self: Any) -> tuple[socket.socket, socket.socket]:
        if self._wakeup_socks is None:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._wakeup_socks = (rsock, wsock)
            self._add_passive_reader(rsock.fileno(), self._drain_wakeup, rsock)
        return self._wakeup_socks

    def _drain_wakeup(self, rsock: socket.socket) -> None:
        # The bytes only woke us; the handlers run through Python's signal machinery.
        try:
            while rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _install_wakeup_fd(self: Any) -> None:
        if self._wakeup_owned or threading.current_thread() is not threading.main_thread():
            return
        wsock = self._wakeup_pair()[1]
        try:
            previous = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return
        if previous not in (-1, wsock.fileno()):
            # Someone else relies on the wake-up descriptor: leave theirs in place.
            signal.set_wakeup_fd(previous)
            return
        self._wakeup_owned = True

    def _uninstall_wakeup_fd(self) -> None:
        if not self._wakeup_owned or self._signal_handlers:
            return
        self._wakeup_owned = False
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)

    def add_signal_handler(self: Any, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        """Runs ``callback(*args)`` on the loop whenever signal ``sig`` arrives."""
        import asyncio

        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
        self._install_wakeup_fd()
        if not self._wakeup_owned:
            raise RuntimeError("the signal wake-up descriptor is used by someone else")
        handle = self._make_handle(callback, args)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, self._on_signal)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            self._uninstall_wakeup_fd()
            if exc.errno == 22:  # EINVAL: SIGKILL, SIGSTOP and friends
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise

    def _on_signal(self: Any, signum: int, frame: Any) -> None:
        handle = self._signal_handlers.get(signum)
        if handle is None:
            return
        if handle.cancelled():
            self.remove_signal_handler(signum)
        else:
            self._call_handle_threadsafe(handle)

    def remove_signal_handler(self: Any, sig: int) -> bool:
        """Removes the handler for ``sig``; returns whether there was one."""
        _check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == 22:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        if not self._signal_handlers and not self.is_running():
            self._uninstall_wakeup_fd()
        return True

    def _close_signals(self: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        self._signal_handlers.clear()
        self._uninstall_wakeup_fd()
        if self._wakeup_socks is not None:
            rsock, wsock = self._wakeup_socks
            self._wakeup_socks = None
            self.remove_reader(rsock.fileno())
            rsock.close()
            wsock.close()
