"""``serve(app)``: run an app on the data-bridge server in this process.

One call starts PyLoop on the calling thread, binds, logs the address and serves until
SIGINT or SIGTERM; then it stops accepting, lets in-flight requests finish within the
grace period, runs the shutdown hooks and returns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import traceback
from typing import Any

import pydantic_core

from data_bridge import _native, listener
from data_bridge.app import App
from data_bridge.exceptions import HTTPException
from data_bridge.pyloop import new_event_loop
from data_bridge.responses import FileResponse, Response, StreamingResponse

__all__ = ["serve", "start"]

logger = logging.getLogger("data_bridge")


def _report(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.error("Exception in handler\n%s", text.rstrip())
    return text


_native.http_setup(
    pydantic_core.to_json,
    Response,
    FileResponse,
    HTTPException,
    _report,
    streaming_response=StreamingResponse,
)


async def _run_hooks(hooks: list[Any]) -> None:
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


async def start(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    uds: str | None = None,
    backlog: int = 2048,
    reuse_port: bool = False,
    max_body_size: int = 16 * 1024 * 1024,
    max_pending: int = 1024,
    sync_threads: int = 40,
    fd: int | None = None,
    access_log: bool = False,
    log_format: str = "text",
    proxy_headers: bool = False,
    forwarded_allow_ips: str = "127.0.0.1",
    restarts_fd: int | None = None,
) -> tuple[_native.Server, Any]:
    """Starts serving ``app`` on the running PyLoop loop; returns the server and the
    bound address. The caller stops it with ``await server.shutdown(grace)`` (and then
    ``app.process_pool.shutdown()`` if it used one).

    The socket is bound before the startup hooks run. With ``fd``, the server accepts
    on that already listening socket (e.g. inherited from a supervisor) instead.
    ``access_log`` writes one line per request to stderr in ``log_format`` (``text`` or
    ``json``); ``proxy_headers`` applies ``X-Forwarded-*`` from the peers listed in
    ``forwarded_allow_ips``."""
    loop = asyncio.get_running_loop()
    server = _native.Server(
        app.route_table(),
        max_body_size=max_body_size,
        max_pending=max_pending,
        sync_threads=sync_threads,
        debug=app.debug,
        access_log=log_format if access_log else None,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        restarts_fd=restarts_fd,
    )
    own = None
    if fd is None:
        # Bound here, before the startup hooks, so a taken port fails fast with an
        # OSError naming the address.
        own = listener.bind(host, port, uds, backlog, reuse_port=reuse_port)
        fd = own.fileno()
    try:
        await _run_hooks(app._startup)
        bound = server.start(loop, host, port, uds=uds, backlog=backlog, fd=fd)
    finally:
        if own is not None:
            # The server holds its own duplicate of the socket.
            own.close()
    return server, bound


def serve(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    uds: str | None = None,
    backlog: int = 2048,
    reuse_port: bool = False,
    graceful_timeout: float = 30.0,
    max_body_size: int = 16 * 1024 * 1024,
    max_pending: int = 1024,
    sync_threads: int = 40,
    access_log: bool = True,
    log_format: str = "text",
    proxy_headers: bool = False,
    forwarded_allow_ips: str = "127.0.0.1",
) -> None:
    """Serves ``app`` until SIGINT or SIGTERM, then drains and returns. At most
    ``sync_threads`` ``def`` handlers run at once; ``max_pending`` bounds the requests
    queued for or running in Python (503 beyond). ``access_log`` writes one line per
    request to stderr (``log_format``: ``text`` or ``json``); ``proxy_headers`` trusts
    ``X-Forwarded-*`` from ``forwarded_allow_ips``."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: asyncio.Future[None] = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stopping.done() or stopping.set_result(None))
        server, bound = await start(
            app,
            host,
            port,
            uds=uds,
            backlog=backlog,
            reuse_port=reuse_port,
            max_body_size=max_body_size,
            max_pending=max_pending,
            sync_threads=sync_threads,
            access_log=access_log,
            log_format=log_format,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        where = bound if isinstance(bound, str) else f"http://{bound[0]}:{bound[1]}"
        logger.info("data-bridge serving on %s", where)
        print(f"data-bridge serving on {where}", flush=True)
        await stopping
        logger.info("data-bridge shutting down")
        await server.shutdown(graceful_timeout)
        await _run_hooks(app._shutdown)
        app.process_pool.shutdown()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
