"""``serve(app)``: run an app on the data-bridge server in this process.

One call starts PyLoop on the calling thread, binds, logs the address and serves until
SIGINT or SIGTERM; then it stops accepting, lets in-flight requests finish within the
grace period, waits for background tasks, ends the app's lifespan and returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import pydantic_core

from data_bridge import _native
from data_bridge.app import App
from data_bridge.background import drain, run_background
from data_bridge.durations import check_seconds
from data_bridge.exceptions import HTTPException
from data_bridge.pyloop import new_event_loop
from data_bridge.reporting import report
from data_bridge.responses import FileResponse, Response, StreamingResponse
from data_bridge.serve import defaults, listener
from data_bridge.serve.tls import Certificates

__all__ = ["serve", "start", "stop"]

logger = logging.getLogger("data_bridge")


_native.http_setup(
    pydantic_core.to_json,
    Response,
    FileResponse,
    HTTPException,
    report,
    run_background,
    streaming_response=StreamingResponse,
)


# The defaults of the server's own settings (see ``data_bridge.serve.defaults``).
_SERVER = defaults.SERVER


async def start(
    app: App,
    host: str = defaults.HOST,
    port: int = defaults.PORT,
    *,
    uds: str | None = None,
    uds_mode: int | None = None,
    backlog: int = defaults.BACKLOG,
    reuse_port: bool = False,
    max_body_size: int = _SERVER.max_body_size,
    max_pending: int = _SERVER.max_pending,
    sync_threads: int = _SERVER.sync_threads,
    fd: int | None = None,
    lifespan: bool = True,
    access_log: bool = False,
    log_format: str = defaults.LOG_FORMAT,
    proxy_headers: bool = _SERVER.proxy_headers,
    forwarded_allow_ips: str = _SERVER.forwarded_allow_ips,
    forwarded_host: bool = _SERVER.forwarded_host,
    body_timeout: float = _SERVER.body_timeout,
    keep_alive_timeout: float = _SERVER.keep_alive_timeout,
    write_timeout: float = _SERVER.write_timeout,
    limit_connections: int | None = _SERVER.limit_connections,
    ws_handshake_timeout: float = _SERVER.ws_handshake_timeout,
    ws_ping_interval: float | None = _SERVER.ws_ping_interval,
    ws_ping_timeout: float = _SERVER.ws_ping_timeout,
    tls: Certificates | None = None,
    restarts_fd: int | None = None,
) -> tuple[_native.Server, Any]:
    """Starts serving ``app`` on the running PyLoop loop; returns the server and the
    bound address, once the app's lifespan has started (or its start-up hooks have
    run). The caller stops it with :func:`stop`.

    The socket is bound before the lifespan starts, so a taken port fails fast with an
    ``OSError`` naming the address. ``uds_mode`` (such as ``0o660``) sets the
    permissions of the ``uds`` socket file (by default the umask does); an existing
    socket file there is replaced only if no server listens on it, and any other file
    is left alone (``OSError``). With ``fd``, the server accepts on that already
    listening socket (e.g. inherited from a supervisor) instead. With
    ``lifespan=False`` the app's lifespan is left alone (the test client serves an app
    used outside ``with``). ``access_log`` writes one line per request to stderr in
    ``log_format`` (``text`` or ``json``); ``proxy_headers`` applies ``X-Forwarded-For``
    and ``-Proto`` from the peers listed in ``forwarded_allow_ips`` (and
    ``X-Forwarded-Host`` with ``forwarded_host``).

    Time limits, in seconds: a request body that makes no progress for
    ``body_timeout`` is answered 408; a connection with no request in flight that stays
    silent for ``keep_alive_timeout`` is closed, as is one whose client takes nothing of
    its response for ``write_timeout``. Past ``limit_connections`` open connections
    (``None``: no limit), new ones are answered 503. A WebSocket handler that neither
    accepts nor refuses within ``ws_handshake_timeout`` gets its client a 403; an open
    WebSocket is pinged every ``ws_ping_interval`` seconds (``None``: never) and closed
    when a ping goes unanswered for ``ws_ping_timeout``.

    With ``tls``, the server speaks HTTPS only (TLS 1.2/1.3, HTTP/2 or HTTP/1.1 by ALPN);
    ``tls.reload(server)`` swaps in renewed certificates."""
    loop = asyncio.get_running_loop()
    options = _native.ServerOptions(
        max_body_size=max_body_size,
        max_pending=max_pending,
        sync_threads=sync_threads,
        access_log=log_format if access_log else None,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        forwarded_host=forwarded_host,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        write_timeout=write_timeout,
        limit_connections=limit_connections,
        ws_handshake_timeout=ws_handshake_timeout,
        ws_ping_interval=ws_ping_interval,
        ws_ping_timeout=ws_ping_timeout,
    )
    server = _native.Server(
        app.route_table(),
        options,
        debug=app.debug,
        restarts_fd=restarts_fd,
        tls=tls.load() if tls is not None else None,
    )
    own = None
    if fd is None:
        own = listener.bind(host, port, uds, backlog, reuse_port=reuse_port, uds_mode=uds_mode)
        fd = own.fileno()
    try:
        if lifespan:
            await app.lifespan.startup(app)
        try:
            bound = server.start(loop, fd)
        except BaseException:
            if lifespan:
                await app.lifespan.shutdown()
            raise
    finally:
        if own is not None:
            # The server holds its own duplicate of the socket.
            own.close()
    return server, bound


async def stop(
    app: App,
    server: _native.Server,
    graceful_timeout: float = defaults.GRACEFUL_TIMEOUT,
    *,
    lifespan: bool = True,
) -> None:
    """Stops a server made by :func:`start`: no new connections, in-flight requests and
    background tasks get ``graceful_timeout`` seconds each, then the app's lifespan ends
    (or its shutdown hooks run) and its process pool, if it started one, shuts down."""
    graceful_timeout = check_seconds(graceful_timeout, "graceful_timeout")
    await server.shutdown(graceful_timeout)
    if not await drain(graceful_timeout):
        logger.warning("background tasks still running after %s s", graceful_timeout)
    if lifespan:
        await app.lifespan.shutdown()
    app.process_pool.shutdown()


def serve(
    app: App,
    host: str = defaults.HOST,
    port: int = defaults.PORT,
    *,
    graceful_timeout: float = defaults.GRACEFUL_TIMEOUT,
    access_log: bool = True,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_keyfile_password: str | None = None,
    ssl_ca_certs: str | None = None,
    **options: Any,
) -> None:
    """Serves ``app`` until SIGINT or SIGTERM, then drains (in-flight requests get
    ``graceful_timeout`` seconds) and returns. ``access_log`` writes one line per request
    to stderr. Every other option is :func:`start`'s: ``uds``, ``uds_mode`` (permissions
    of the ``uds`` socket file), ``backlog``, ``max_body_size``, ``max_pending``
    (requests queued for or running in Python, 503 beyond), ``sync_threads`` (``def``
    handlers running at once), ``log_format``, the proxy settings and the time and
    connection limits.

    With ``ssl_certfile`` (and ``ssl_keyfile``, unless the certificate file holds the
    key; ``ssl_keyfile_password`` for an encrypted key), the app is served over HTTPS;
    with ``ssl_ca_certs``, clients must present a certificate signed by one of those
    CAs. ``SIGHUP`` reloads the certificate files."""
    tls = Certificates.from_options(ssl_certfile, ssl_keyfile, ssl_keyfile_password, ssl_ca_certs)
    # Checked now, not when shutting down after serving for a while.
    check_seconds(graceful_timeout, "graceful_timeout")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: asyncio.Future[None] = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stopping.done() or stopping.set_result(None))
        server, bound = await start(app, host, port, access_log=access_log, tls=tls, **options)
        if tls is not None:
            loop.add_signal_handler(signal.SIGHUP, tls.reload, server)
        scheme = "https" if tls is not None else "http"
        where = bound if isinstance(bound, str) else f"{scheme}://{bound[0]}:{bound[1]}"
        logger.info("data-bridge serving on %s", where)
        print(f"data-bridge serving on {where}", flush=True)
        await stopping
        logger.info("data-bridge shutting down")
        await stop(app, server, graceful_timeout)

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
