"""Subprocesses: ``subprocess_exec``/``subprocess_shell`` transports, with child exit
watched through a pidfd registered on the loop (no watcher thread, no SIGCHLD)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from asyncio import base_subprocess
from typing import Any

__all__ = ["SubprocessMixin", "SubprocessTransport"]


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """Starts the child with :class:`subprocess.Popen`; pipes become pipe transports."""

    def _start(
        self,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        **kwargs: Any,
    ) -> None:
        self._proc = subprocess.Popen(
            args,
            shell=shell,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            universal_newlines=False,
            bufsize=bufsize,
            **kwargs,
        )


class _ChildWatch:
    """Waits for one child through its pidfd and reports the exit to the transport."""

    def __init__(self, loop: Any, transport: SubprocessTransport) -> None:
        self._loop = loop
        self._transport = transport
        self._proc: subprocess.Popen[bytes] = transport._proc
        self._pidfd: int | None = os.pidfd_open(transport.get_pid())
        loop._add_reader(self._pidfd, self._on_exit)
        loop._child_watches.add(self)

    def _release(self) -> None:
        if self._pidfd is not None:
            self._loop._remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._loop._child_watches.discard(self)

    def _on_exit(self) -> None:
        self._release()
        # Reap through Popen: it may already have reaped the child itself (poll() in
        # send_signal() or close()) and then holds the exit status.
        returncode = self._proc.poll()
        if returncode is None:
            returncode = self._proc.wait()
        self._transport._process_exited(returncode)

    def abandon(self) -> None:
        """The loop is closing: stop watching, but still reap the child when it exits."""
        self._release()
        if self._proc.poll() is None:
            threading.Thread(target=self._proc.wait, name="data-bridge-reaper", daemon=True).start()


class SubprocessMixin:
    """The loop's subprocess transport factory."""

    _child_watches: set[_ChildWatch]

    def _close_child_watches(self) -> None:
        for watch in list(self._child_watches):
            watch.abandon()

    async def _make_subprocess_transport(
        self: Any,
        protocol: asyncio.BaseProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: Any = None,
        **kwargs: Any,
    ) -> SubprocessTransport:
        waiter = self.create_future()
        transport = SubprocessTransport(
            self,
            protocol,
            args,
            shell,
            stdin,
            stdout,
            stderr,
            bufsize,
            waiter=waiter,
            extra=extra,
            **kwargs,
        )
        _ChildWatch(self, transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport
