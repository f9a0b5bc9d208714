"""One serving process of ``data-bridge serve``: its own PyLoop and Tokio runtime,
accepting on a listening socket it was given.

Run in the CLI's own process when there is no supervisor, or as
``python -m data_bridge.serve.worker LISTEN_FD CHANNEL_FD CONFIG_JSON [METRICS_FD]`` by the
supervisor
(a fresh interpreter, never a fork of one whose runtime has started). A supervised
worker talks to its supervisor over a socket pair, one line per message:

- ``ready``: the server is accepting;
- ``alive``: sent by the event loop every :func:`heartbeat_interval` once ready, so a
  loop that stops running callbacks (a handler blocking it) falls silent and the
  supervisor replaces the worker after ``--worker-timeout``;
- ``recycle``: ``--max-requests`` was reached; please start my replacement;
- ``error <reason>``: the app could not start (the worker then exits with
  :data:`BOOT_ERROR`).

End of file on the channel means the supervisor is gone, and the worker drains and
exits rather than serve unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable

from data_bridge import _native
from data_bridge.app import App
from data_bridge.pyloop import new_event_loop
from data_bridge.serve import logs
from data_bridge.serve.config import Config
from data_bridge.serve.importer import AppLoadError, load_app
from data_bridge.serve.server import start
from data_bridge.serve.server import stop as stop_server
from data_bridge.serve.tls import Certificates

__all__ = ["BOOT_ERROR", "heartbeat_interval", "main", "prepare", "run"]

logger = logging.getLogger("data_bridge")

#: Exit status of a worker whose app failed to load or start.
BOOT_ERROR = 3

#: How often a worker with ``--max-requests`` looks at its request counter.
_COUNT_INTERVAL = 0.05


#: Longest time between two heartbeats, whatever ``--worker-timeout`` is.
_MAX_HEARTBEAT = 5.0


def heartbeat_interval(worker_timeout: float) -> float:
    """How often a worker reports that its loop runs: several times per timeout, so
    that one late beat on a loaded machine does not get it killed."""
    return min(worker_timeout / 4, _MAX_HEARTBEAT)


class BootError(Exception):
    """The app's startup hooks failed; ``str()`` is one line."""


def prepare(config: Config) -> App:
    """Loads the app and applies the settings that live on it (``--timeout``,
    ``--metrics``, ``--process-pool-size``)."""
    app = load_app(config.app, factory=config.factory)
    if config.metrics is not None:
        app.metrics = config.metrics
    if config.process_pool_size is not None:
        app.process_pool.size = config.process_pool_size
    if config.timeout is not None:
        app.timeout = config.timeout
        for route in app.routes:
            if route.timeout is None:
                route.timeout = config.timeout
    return app


def _send(channel: socket.socket | None, message: str) -> None:
    if channel is None:
        return
    # The supervisor may already be gone; then there is nobody to tell.
    with contextlib.suppress(OSError):
        channel.sendall(message.encode("utf-8", "replace") + b"\n")


async def _serve(
    app: App,
    config: Config,
    fd: int,
    channel: socket.socket | None,
    release: Callable[[], None] | None,
    restarts_fd: int | None,
) -> None:
    loop = asyncio.get_running_loop()
    stopping: asyncio.Future[str] = loop.create_future()

    def stop(reason: str) -> None:
        if not stopping.done():
            stopping.set_result(reason)

    loop.add_signal_handler(signal.SIGTERM, stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, stop, "SIGINT")
    tls = Certificates.from_options(
        config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password, config.ssl_ca_certs
    )
    try:
        server, bound = await start(
            app,
            fd=fd,
            max_body_size=config.max_body_size,
            max_pending=config.limit_concurrency,
            access_log=config.access_log,
            log_format=config.log_format,
            proxy_headers=config.proxy_headers,
            forwarded_allow_ips=config.forwarded_allow_ips,
            forwarded_host=config.forwarded_host,
            body_timeout=config.body_timeout,
            keep_alive_timeout=config.keep_alive_timeout,
            write_timeout=config.write_timeout,
            limit_connections=config.limit_connections,
            ws_handshake_timeout=config.ws_handshake_timeout,
            ws_ping_interval=config.ws_ping_interval,
            ws_ping_timeout=config.ws_ping_timeout,
            tls=tls,
            restarts_fd=restarts_fd,
        )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BootError(f"app startup failed: {type(exc).__name__}: {first}") from exc
    if release is not None:
        # The server holds its own duplicate; dropping ours lets the socket close (and
        # new connections be refused) when this process is the last one to stop.
        release()

    if channel is not None:

        def on_channel() -> None:
            try:
                data = channel.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(channel.fileno())
                stop("supervisor gone")

        channel.setblocking(False)
        loop.add_reader(channel.fileno(), on_channel)
        _send(channel, "ready")
        logger.info("worker %d ready", os.getpid())
        if config.worker_timeout > 0:
            _beat(loop, channel, heartbeat_interval(config.worker_timeout))
    else:
        if tls is not None:
            # Alone, this process is the one to reload the certificates; under a
            # supervisor, SIGHUP replaces the workers, which read them afresh.
            loop.add_signal_handler(signal.SIGHUP, tls.reload, server)
        scheme = "https" if tls is not None else "http"
        where = bound if isinstance(bound, str) else f"{scheme}://{bound[0]}:{bound[1]}"
        logger.info("data-bridge serving on %s (pid %d)", where, os.getpid())

    counter = None
    if config.max_requests is not None:
        limit = config.max_requests + random.randint(0, max(0, config.max_requests_jitter))
        counter = asyncio.ensure_future(_count(server, limit, channel, stop))

    reason = await stopping
    logger.info("worker %d stopping (%s)", os.getpid(), reason)
    if counter is not None:
        counter.cancel()
    await stop_server(app, server, config.graceful_timeout)


def _beat(loop: asyncio.AbstractEventLoop, channel: socket.socket, every: float) -> None:
    # A loop callback, not a thread: a blocked loop must stop the beats.
    if channel.fileno() < 0:
        return
    _send(channel, "alive")
    loop.call_later(every, _beat, loop, channel, every)


async def _count(
    server: _native.Server,
    limit: int,
    channel: socket.socket | None,
    stop: Callable[[str], None],
) -> None:
    # Polling a native counter is cheaper than a callback per request.
    while server.requests_served < limit:
        await asyncio.sleep(_COUNT_INTERVAL)
    logger.info("worker %d served %d requests; recycling", os.getpid(), limit)
    if channel is not None:
        # Keep serving until the replacement is ready and the supervisor says stop.
        _send(channel, "recycle")
    else:
        stop("max requests")


def run(
    app: App,
    config: Config,
    fd: int,
    channel: socket.socket | None = None,
    release: Callable[[], None] | None = None,
    restarts_fd: int | None = None,
) -> None:
    """Serves ``app`` on the listening socket ``fd`` until SIGTERM/SIGINT (or the
    supervisor going away), then drains within ``config.graceful_timeout``.
    ``release`` is called once the server has adopted ``fd``, to close the caller's copy.
    ``restarts_fd`` is the supervisor's shared metrics file (its restart count and
    every worker's metrics), which ``/metrics`` reports.

    Raises :class:`BootError` if the startup hooks fail."""
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve(app, config, fd, channel, release, restarts_fd))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of a supervised worker process."""
    args = argv if argv is not None else sys.argv[1:]
    listen_fd, channel_fd, raw = args[:3]
    restarts_fd = int(args[3]) if len(args) > 3 else None
    config = Config.from_json(raw)
    logs.configure(config.log_level, config.log_format)
    # The supervisor handles these; a terminal hang-up must not kill the workers.
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    channel = socket.socket(fileno=int(channel_fd))
    try:
        app = prepare(config)
        fd = int(listen_fd)
        run(app, config, fd, channel, release=lambda: os.close(fd), restarts_fd=restarts_fd)
    except (AppLoadError, BootError) as exc:
        if config.log_level == "debug":
            logger.exception("worker %d failed to start", os.getpid())
        _send(channel, f"error {exc}")
        return BOOT_ERROR
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
