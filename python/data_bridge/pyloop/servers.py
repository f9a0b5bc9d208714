"""Listening sockets: the accept loop behind ``create_server``, ``create_unix_server``
and ``connect_accepted_socket``-style servers."""

from __future__ import annotations

import errno
import socket
from asyncio import constants, trsock
from asyncio.log import logger
from typing import Any

__all__ = ["ServersMixin"]

_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class ServersMixin:
    """``_start_serving``/``_stop_serving``, the hooks ``asyncio.Server`` calls."""

    def _start_serving(
        self: Any,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        ssl_handshake_timeout: float | None = constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout: float | None = constants.SSL_SHUTDOWN_TIMEOUT,
    ) -> None:
        self._add_reader(
            sock.fileno(),
            self._accept_connection,
            protocol_factory,
            sock,
            sslcontext,
            server,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )

    def _stop_serving(self: Any, sock: socket.socket) -> None:
        self.remove_reader(sock.fileno())
        if sock.family == socket.AF_UNIX:
            self._cleanup_unix_socket(sock)
        sock.close()

    def _accept_connection(
        self: Any,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any,
        server: Any,
        backlog: int,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None,
    ) -> None:
        # One readiness report may stand for many queued connections: take up to
        # `backlog` of them now.
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                # Linux keeps reporting the listener readable while descriptors are
                # exhausted: stop watching it for a while instead of spinning.
                self.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": trsock.TransportSocket(sock),
                    }
                )
                self.remove_reader(sock.fileno())
                self.call_later(
                    constants.ACCEPT_RETRY_DELAY,
                    self._start_serving,
                    protocol_factory,
                    sock,
                    sslcontext,
                    server,
                    backlog,
                    ssl_handshake_timeout,
                    ssl_shutdown_timeout,
                )
                return
            extra = {"peername": addr}
            if sslcontext:
                self.create_task(
                    self._accept_tls(
                        protocol_factory,
                        conn,
                        extra,
                        sslcontext,
                        server,
                        ssl_handshake_timeout,
                        ssl_shutdown_timeout,
                    )
                )
            else:
                self._accept_plain(protocol_factory, conn, extra, server)

    def _accept_plain(
        self: Any, protocol_factory: Any, conn: socket.socket, extra: dict[str, Any], server: Any
    ) -> None:
        try:
            protocol = protocol_factory()
            self._make_socket_transport(conn, protocol, extra=extra, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            self.call_exception_handler(
                {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                }
            )

    async def _accept_tls(
        self: Any,
        protocol_factory: Any,
        conn: socket.socket,
        extra: dict[str, Any],
        sslcontext: Any,
        server: Any,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None,
    ) -> None:
        transport = None
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            transport = self._make_ssl_transport(
                conn,
                protocol,
                sslcontext,
                waiter=waiter,
                server_side=True,
                extra=extra,
                server=server,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
            )
            try:
                await waiter
            except BaseException:
                transport.close()
                raise
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self._debug:
                context: dict[str, Any] = {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                }
                if transport is not None:
                    context["transport"] = transport
                self.call_exception_handler(context)
            else:
                logger.debug("TLS handshake failed for incoming connection: %r", exc)

    def _ensure_fd_no_transport(self: Any, fd: Any) -> None:
        fileno = fd if isinstance(fd, int) else fd.fileno()
        transport = self._transport_for_fd(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")
