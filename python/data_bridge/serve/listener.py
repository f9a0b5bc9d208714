"""The listening socket of ``serve()`` and ``data-bridge serve``, bound before the app's
startup hooks run (and, for the CLI, before the app is even imported).

Every serving process accepts from this one socket (workers inherit it), so a port
that is taken is reported before anything starts, a worker that stops accepting
leaves waiting connections to the others, and a restart never closes the port. This is
the only place that binds: the native server adopts a duplicate of the socket
(``_native.Server.start(loop, fd)``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

__all__ = ["BindError", "bind", "check_mode", "close"]


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


def _clear_stale_socket(path: str) -> None:
    # A socket file left by a server that died is replaced. Anything else at ``path`` is
    # not ours to remove: another file (or a symbolic link, even to a socket), or the
    # socket of a server still listening there.
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(
            errno.EEXIST, f"cannot bind unix socket {path}: it exists and is not a socket"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            stale = True
        except BlockingIOError:
            stale = False  # a full backlog: a server is there
        except OSError as exc:
            raise _error(f"unix socket {path}", exc) from None
        else:
            stale = False
    if not stale:
        raise BindError(
            errno.EADDRINUSE, f"cannot bind unix socket {path}: a server is listening on it"
        )
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _error(f"unix socket {path}", exc) from None


def check_mode(mode: int) -> int:
    """``mode`` if it is permission bits for a socket file (``0o000`` to ``0o777``),
    else ``ValueError``."""
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise ValueError(f"expected permission bits such as 0o660, got {mode!r}")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"expected permission bits from 0o000 to 0o777, got {mode:#o}")
    return mode


def _bind_unix(path: str, backlog: int, mode: int | None) -> socket.socket:
    _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(path)
        bound = True
        if mode is not None:
            # Before listen(): until then a client's connect() is refused, so none gets
            # in under the permissions the umask gave.
            os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if bound:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise _error(f"unix socket {path}", exc) from None
    return sock


def bind(
    host: str,
    port: int,
    uds: str | None,
    backlog: int,
    *,
    reuse_port: bool = False,
    uds_mode: int | None = None,
) -> socket.socket:
    """Binds and listens on ``uds`` if given, else on ``host:port``. ``uds_mode`` (such
    as ``0o660``) sets the permissions of the socket file; by default the umask does.

    An existing socket file at ``uds`` is replaced if no server listens on it; anything
    else there (a file, a link, a live socket) makes it fail with :class:`BindError`."""
    if uds:
        return _bind_unix(uds, backlog, None if uds_mode is None else check_mode(uds_mode))
    return _bind_tcp(host, port, backlog, reuse_port)


def close(sock: socket.socket, uds: str | None) -> None:
    """Closes the listener and removes its socket file (only a socket file)."""
    sock.close()
    if uds:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(uds).st_mode):
                os.unlink(uds)
