"""Unix signals: ``add_signal_handler``/``remove_signal_handler`` and waking the loop
when a signal arrives while it waits.

Python runs signal handlers on the main thread between bytecodes. While the loop
waits in Rust (GIL released) no bytecode runs, so the loop owns a wake-up socket
registered with ``signal.set_wakeup_fd``: a signal writes a byte, the loop wakes and
runs the pending Python handlers at once. Signals that arrive while the loop is not
running stay queued in that socket and Python's own flag, and are handled on the next
run.

Running a loop leaves a wake-up descriptor installed by someone else alone;
``add_signal_handler`` takes the descriptor over, as asyncio's loop does. A forked
child inherits the parent's setting, which points at the parent loop's socket: the
child forgets it at fork, so its own loops wake up and may install theirs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from data_bridge import _native

__all__ = ["SignalsMixin"]

# The wake-up descriptor a PyLoop installed in this process, or -1.
_installed_fd = -1


def _set_wakeup_fd(fd: int) -> int:
    """``signal.set_wakeup_fd`` for a PyLoop's descriptor (or -1), remembering it."""
    global _installed_fd
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    _installed_fd = fd
    return previous


def _restore_wakeup_fd(fd: int) -> None:
    """Puts back a descriptor that someone else installed."""
    global _installed_fd
    signal.set_wakeup_fd(fd)
    _installed_fd = -1


def _forget_parent_wakeup_fd() -> None:
    # In a forked child the parent loop's descriptor would get the child's signals
    # (waking the parent instead of the child): put the child back to none.
    global _installed_fd
    if _installed_fd == -1:
        return
    _installed_fd = -1
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)


os.register_at_fork(after_in_child=_forget_parent_wakeup_fd)


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

    def _install_wakeup_fd(self: Any, take_over: bool = False) -> None:
        """Makes signals wake this loop; unless ``take_over``, a descriptor someone
        else installed stays in place."""
        if self._wakeup_owned or threading.current_thread() is not threading.main_thread():
            return
        wsock = self._wakeup_pair()[1]
        try:
            previous = _set_wakeup_fd(wsock.fileno())
        except ValueError:
            return
        if not take_over and previous not in (-1, wsock.fileno()):
            # Someone else relies on the wake-up descriptor: leave theirs in place.
            _restore_wakeup_fd(previous)
            return
        self._wakeup_owned = True

    def _uninstall_wakeup_fd(self) -> None:
        if not self._wakeup_owned or self._signal_handlers:
            return
        self._wakeup_owned = False
        with contextlib.suppress(ValueError):
            _set_wakeup_fd(-1)

    def add_signal_handler(self: Any, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        """Runs ``callback(*args)`` on the loop whenever signal ``sig`` arrives."""
        import asyncio

        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
        # asyncio's loop installs its own descriptor whatever was there before.
        self._install_wakeup_fd(take_over=True)
        if not self._wakeup_owned:
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
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
