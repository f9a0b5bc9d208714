"""Subprocesses: ``subprocess_exec``/``subprocess_shell`` transports, with child exit
watched through a pidfd registered on the loop (no watcher thread, no SIGCHLD)."""

from __future__ import annotations

import asyncio
import os
import subprocess
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
        self._pid = transport.get_pid()
        self._pidfd = os.pidfd_open(self._pid)
        loop._add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        try:
            _, status = os.waitpid(self._pid, 0)
        except ChildProcessError:
            # Someone else reaped it (e.g. a SIGCHLD handler); asyncio reports 255.
            returncode = 255
        else:
            returncode = os.waitstatus_to_exitcode(status)
        self._transport._process_exited(returncode)


class SubprocessMixin:
    """The loop's subprocess transport factory."""

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
