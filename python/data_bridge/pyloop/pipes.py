"""Pipe transports for ``connect_read_pipe``/``connect_write_pipe`` and subprocess
pipes, on top of the loop's readiness callbacks."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import warnings
from asyncio import futures, transports
from asyncio.log import logger
from typing import Any

__all__ = ["PipesMixin", "ReadPipeTransport", "WritePipeTransport"]

_MAX_READ = 256 * 1024


def _is_pipe_like(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class _PipeEnd:
    """What both pipe transports share: protocol access, errors and teardown."""

    _extra: dict[str, Any]
    _loop: Any
    _pipe: Any
    _fileno: int | None
    _protocol: Any
    _closing: bool
    # OSErrors that end the transport without a report to the exception handler.
    _quiet_errnos: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._pipe is None else ("closing" if self._closing else "open")
        return f"<{self.__class__.__name__} fd={self._fileno} {state}>"

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    def _attach(self, pipe: Any, protocol: asyncio.BaseProtocol, refusal: str) -> int:
        """Takes ``pipe`` (made non-blocking) for ``protocol`` and returns its file mode;
        raises ``ValueError(refusal)`` if it is not a pipe, socket or character device."""
        self._extra["pipe"] = pipe
        self._pipe = pipe
        self._fileno = pipe.fileno()
        self._protocol = protocol
        mode = os.fstat(self._fileno).st_mode
        if not _is_pipe_like(mode):
            self._pipe = None
            self._fileno = None
            self._protocol = None
            raise ValueError(refusal)
        os.set_blocking(self._fileno, False)
        return mode

    def _close(self, exc: BaseException | None = None) -> None:
        raise NotImplementedError

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        quiet = isinstance(exc, OSError) and (
            self._quiet_errnos is None or exc.errno in self._quiet_errnos
        )
        if quiet:
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._close(exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None


class ReadPipeTransport(_PipeEnd, transports.ReadTransport):
    """Reads from a pipe (or socket, or character device) into a protocol."""

    # A pty whose other side closed reports EIO: that is an end of file, not a failure.
    _quiet_errnos = (errno.EIO,)

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra)
        self._loop = loop
        self._closing = False
        self._paused = False
        self._attach(pipe, protocol, "Pipe transport is for pipes/sockets only.")
        loop.call_soon(protocol.connection_made, self)
        # Start reading only after connection_made, and only if it did not pause or close.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def _start_reading(self) -> None:
        if self.is_reading():
            self._loop._add_reader(self._fileno, self._read_ready)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fileno, _MAX_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if data:
            self._protocol.data_received(data)
            return
        self._closing = True
        self._loop.remove_reader(self._fileno)
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop.remove_reader(self._fileno)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._add_reader(self._fileno, self._read_ready)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        self._closing = True
        self._loop.remove_reader(self._fileno)
        self._loop.call_soon(self._call_connection_lost, exc)


class WritePipeTransport(_PipeEnd, transports._FlowControlMixin, transports.WriteTransport):
    """Writes to a pipe (or socket, or character device) with flow control."""

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra, loop)
        self._buffer = bytearray()
        self._conn_lost = 0
        self._closing = False
        mode = self._attach(
            pipe, protocol, "Pipe transport is only for pipes, sockets and character devices"
        )
        loop.call_soon(protocol.connection_made, self)
        # A readable write end means the reader went away (EPOLLHUP/EPOLLERR).
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            loop.call_soon(loop._add_reader, self._fileno, self._read_ready)
        if waiter is not None:
            loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        state = "closed" if self._pipe is None else ("closing" if self._closing else "open")
        return f"<{self.__class__.__name__} fd={self._fileno} {state} bufsize={len(self._buffer)}>"

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def _read_ready(self) -> None:
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        if self._buffer:
            self._close(BrokenPipeError())
        else:
            self._close()

    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if isinstance(data, bytearray):
            data = memoryview(data)
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= 5:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if n == len(data):
                return
            if n > 0:
                data = memoryview(data)[n:]
            self._loop._add_writer(self._fileno, self._write_ready)
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            n = os.write(self._fileno, self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._buffer.clear()
            self._conn_lost += 1
            self._loop.remove_writer(self._fileno)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if n == len(self._buffer):
            self._buffer.clear()
            self._loop.remove_writer(self._fileno)
            self._maybe_resume_protocol()
            if self._closing:
                self._loop.remove_reader(self._fileno)
                self._call_connection_lost(None)
            return
        if n > 0:
            del self._buffer[:n]

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._loop.remove_reader(self._fileno)
            self._loop.call_soon(self._call_connection_lost, None)

    def close(self) -> None:
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        self._close(None)

    def _close(self, exc: BaseException | None = None) -> None:
        self._closing = True
        if self._buffer:
            self._loop.remove_writer(self._fileno)
        self._buffer.clear()
        self._loop.remove_reader(self._fileno)
        self._loop.call_soon(self._call_connection_lost, exc)


class PipesMixin:
    """Pipe transport factories used by ``connect_read_pipe``/``connect_write_pipe``."""

    def _make_read_pipe_transport(
        self, pipe: Any, protocol: asyncio.BaseProtocol, waiter: Any = None, extra: Any = None
    ) -> ReadPipeTransport:
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(
        self, pipe: Any, protocol: asyncio.BaseProtocol, waiter: Any = None, extra: Any = None
    ) -> WritePipeTransport:
        return WritePipeTransport(self, pipe, protocol, waiter, extra)
