"""``loop.sock_*``: awaitable operations on non-blocking sockets.

Each operation is tried at once; only when the socket would block does it wait for
readiness through the native ``add_reader``/``add_writer`` and retry.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import ssl
from asyncio import exceptions
from collections.abc import Callable
from typing import Any

__all__ = ["SocketsMixin"]

_RETRY = (BlockingIOError, InterruptedError)


def _check_socket(sock: Any, debug: bool) -> None:
    if isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


class SocketsMixin:
    """The ``sock_*`` methods of the loop."""

    def _retry_op(
        self: Any, fut: asyncio.Future[Any], op: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        if fut.done():
            return
        try:
            result = op(*args)
        except _RETRY:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _io_done(self: Any, fd: int, writer: bool, handle: Any, fut: asyncio.Future[Any]) -> None:
        # A handle cancelled meanwhile was replaced by someone else's callback: leave it.
        if handle.cancelled():
            return
        if writer:
            self.remove_writer(fd)
        else:
            self.remove_reader(fd)

    def _wait_op(
        self: Any, sock: Any, writer: bool, op: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        fut = self.create_future()
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        add = self._add_writer if writer else self._add_reader
        handle = add(fd, self._retry_op, fut, op, args)
        fut.add_done_callback(functools.partial(self._io_done, fd, writer, handle))
        return fut

    async def sock_recv(self: Any, sock: socket.socket, n: int) -> bytes:
        """Receives up to ``n`` bytes from ``sock``."""
        _check_socket(sock, self._debug)
        try:
            return sock.recv(n)
        except _RETRY:
            pass
        return await self._wait_op(sock, False, sock.recv, n)

    async def sock_recv_into(self: Any, sock: socket.socket, buf: Any) -> int:
        """Receives into ``buf``; returns the number of bytes received."""
        _check_socket(sock, self._debug)
        try:
            return sock.recv_into(buf)
        except _RETRY:
            pass
        return await self._wait_op(sock, False, sock.recv_into, buf)

    async def sock_recvfrom(self: Any, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        """Receives a datagram of up to ``bufsize`` bytes; returns ``(data, address)``."""
        _check_socket(sock, self._debug)
        try:
            return sock.recvfrom(bufsize)
        except _RETRY:
            pass
        return await self._wait_op(sock, False, sock.recvfrom, bufsize)

    async def sock_recvfrom_into(
        self: Any, sock: socket.socket, buf: Any, nbytes: int = 0
    ) -> tuple[int, Any]:
        """Receives a datagram into ``buf``; returns ``(nbytes, address)``."""
        _check_socket(sock, self._debug)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except _RETRY:
            pass
        return await self._wait_op(sock, False, sock.recvfrom_into, buf, nbytes)

    async def sock_sendto(self: Any, sock: socket.socket, data: Any, address: Any) -> int:
        """Sends a datagram to ``address``; returns the number of bytes sent."""
        _check_socket(sock, self._debug)
        try:
            return sock.sendto(data, address)
        except _RETRY:
            pass
        return await self._wait_op(sock, True, sock.sendto, data, address)

    async def sock_sendall(self: Any, sock: socket.socket, data: Any) -> None:
        """Sends all of ``data``, waiting for the socket to drain as needed."""
        _check_socket(sock, self._debug)
        view = memoryview(data).cast("B")
        try:
            sent = sock.send(view)
        except _RETRY:
            sent = 0
        if sent == len(view):
            return
        pos = [sent]

        def send_rest() -> Any:
            n = sock.send(view[pos[0] :])
            pos[0] += n
            if pos[0] < len(view):
                raise BlockingIOError(errno.EAGAIN, "partial send")
            return None

        await self._wait_op(sock, True, send_rest)

    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        """Connects ``sock`` to ``address`` (resolving host names first)."""
        _check_socket(sock, self._debug)
        if sock.family == socket.AF_INET or (socket.has_ipv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto, loop=self
            )
            _, _, _, _, address = resolved[0]
        try:
            sock.connect(address)
            return
        except _RETRY:
            pass

        def finish() -> None:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == errno.EINPROGRESS or err == errno.EALREADY:
                raise BlockingIOError(err, os.strerror(err))
            if err != 0:
                raise OSError(err, f"Connect call failed {address}")

        try:
            await self._wait_op(sock, True, finish)
        except OSError as exc:
            if exc.errno and exc.errno not in (errno.EAGAIN, errno.EINPROGRESS):
                raise OSError(exc.errno, f"Connect call failed {address}") from None
            raise

    async def sock_accept(self: Any, sock: socket.socket) -> tuple[socket.socket, Any]:
        """Accepts a connection; returns ``(conn, address)`` with ``conn`` non-blocking."""
        _check_socket(sock, self._debug)

        def accept() -> tuple[socket.socket, Any]:
            conn, addr = sock.accept()
            conn.setblocking(False)
            return conn, addr

        try:
            return accept()
        except _RETRY:
            pass
        return await self._wait_op(sock, False, accept)

    async def _sock_sendfile_native(
        self: Any, sock: socket.socket, file: Any, offset: int, count: int | None
    ) -> int:
        try:
            fileno = file.fileno()
        except (AttributeError, OSError) as err:
            raise exceptions.SendfileNotAvailableError("not a regular file") from err
        try:
            fsize = os.fstat(fileno).st_size
        except OSError as err:
            raise exceptions.SendfileNotAvailableError("not a regular file") from err
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        total = [0]
        pos = [offset]

        def send_chunk() -> int:
            while True:
                want = blocksize - total[0] if count else fsize - pos[0]
                if want <= 0:
                    return total[0]
                try:
                    n = os.sendfile(sock.fileno(), fileno, pos[0], min(want, 2**30))
                except OSError as exc:
                    if exc.errno in (errno.ENOTSOCK, errno.EINVAL) and total[0] == 0:
                        raise exceptions.SendfileNotAvailableError(
                            "os.sendfile() is not available"
                        ) from exc
                    raise
                if n == 0:
                    return total[0]
                total[0] += n
                pos[0] += n

        try:
            try:
                result = send_chunk()
            except _RETRY:
                result = await self._wait_op(sock, True, send_chunk)
            return result
        finally:
            if total[0] > 0:
                file.seek(offset + total[0])
