"""Unix domain stream sockets: ``create_unix_connection`` and ``create_unix_server``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import sys
from asyncio import base_events
from asyncio.log import logger
from typing import Any

__all__ = ["UnixMixin"]

# Python 3.13 added `cleanup_socket` (default True): the server's socket file is removed
# on close. Earlier versions leave it, and reject the keyword.
_HAS_CLEANUP_SOCKET = sys.version_info >= (3, 13)


def _check_tls_args(
    ssl: Any, server_hostname: Any, handshake: Any, shutdown: Any, *, client: bool
) -> None:
    if ssl:
        if client and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        return
    if server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl")
    if handshake is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown is not None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def _check_unix_stream(sock: socket.socket) -> None:
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")


class UnixMixin:
    """Unix socket clients and servers."""

    _unix_server_inodes: dict[socket.socket, int]

    async def create_unix_connection(
        self: Any,
        protocol_factory: Any,
        path: Any = None,
        *,
        ssl: Any = None,
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Connects to the Unix socket at ``path`` (or wraps a connected ``sock``)."""
        _check_tls_args(
            ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout, client=True
        )
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            _check_unix_stream(sock)
            sock.setblocking(False)
        return await self._create_connection_transport(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def create_unix_server(
        self: Any,
        protocol_factory: Any,
        path: Any = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        cleanup_socket: bool | None = None,
    ) -> asyncio.Server:
        """Serves ``protocol_factory`` on the Unix socket ``path`` (or a bound ``sock``).

        ``cleanup_socket`` exists from Python 3.13 on, as in asyncio: the socket file is
        then removed on close unless it is ``False``.
        """
        if cleanup_socket is None:
            cleanup_socket = _HAS_CLEANUP_SOCKET
        elif not _HAS_CLEANUP_SOCKET:
            raise TypeError(
                "create_unix_server() got an unexpected keyword argument 'cleanup_socket'"
            )
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_tls_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout, client=False)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, "\x00"):
                # A socket file left by a previous server would make bind() fail.
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            _check_unix_stream(sock)
        if cleanup_socket:
            name = sock.getsockname()
            if isinstance(name, (str, bytes)) and name and name[0] not in (0, "\x00"):
                with contextlib.suppress(FileNotFoundError):
                    self._unix_server_inodes[sock] = os.stat(name).st_ino
        sock.setblocking(False)
        server = base_events.Server(
            self,
            [sock],
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        return server

    def _cleanup_unix_socket(self, sock: socket.socket) -> None:
        inode = (
            self._unix_server_inodes.pop(sock, None)
            if hasattr(self, "_unix_server_inodes")
            else None
        )
        if inode is None:
            return
        path = sock.getsockname()
        try:
            if os.stat(path).st_ino == inode:
                os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)
