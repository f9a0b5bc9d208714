"""The listening socket of ``serve()`` and ``data-bridge serve``, bound before the app's
startup hooks run (and, for the CLI, before the app is even imported).

Every serving process accepts from this one socket (workers inherit it), so a port
that is taken is reported before anything starts, a worker that stops accepting
leaves waiting connections to the others, and a restart never closes the port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

__all__ = ["BindError", "bind", "close"]


class BindError(OSError):
    """The address cannot be bound; ``str()`` is one line naming it."""


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _error(what: str, exc: OSError) -> BindError:
    return BindError(exc.errno or 0, f"cannot bind {what}: {_reason(exc)}")


def _bind_tcp(host: str, port: int, backlog: int, reuse_port: bool) -> socket.socket:
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise _error(where, exc) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _error(where, exc) from None
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    # A socket file left by a server that died is replaced; any other file is not ours.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _error(f"unix socket {path}", exc) from None
    return sock


def bind(
    host: str, port: int, uds: str | None, backlog: int, *, reuse_port: bool = False
) -> socket.socket:
    """Binds and listens on ``uds`` if given, else on ``host:port``."""
    return _bind_unix(uds, backlog) if uds else _bind_tcp(host, port, backlog, reuse_port)


def close(sock: socket.socket, uds: str | None) -> None:
    """Closes the listener and removes its socket file."""
    sock.close()
    if uds:
        with contextlib.suppress(OSError):
            os.unlink(uds)
