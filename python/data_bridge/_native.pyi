"""Type stubs for the ``data_bridge._native`` extension module (built from ``crates/``)."""

import os
from asyncio import Future
from collections.abc import Callable, Iterable
from contextvars import Context
from typing import Any, ClassVar, final

from typing_extensions import disjoint_base

__all__ = [
    "MAX_SECONDS",
    "BodyWriter",
    "CompressOptions",
    "CorsOptions",
    "DatagramTransport",
    "Handle",
    "HttpsRedirectOptions",
    "LoopCore",
    "NativeTask",
    "RequestData",
    "RequestIdOptions",
    "RouteTable",
    "Server",
    "ServerOptions",
    "StreamTransport",
    "TimerHandle",
    "TrustedHostOptions",
    "WebSocketConn",
    "__version__",
    "configure_runtime",
    "http_setup",
]
__version__: str
#: The longest duration any setting accepts, in seconds (a year).
MAX_SECONDS: int

def configure_runtime(threads: int) -> None:
    """Chooses the Tokio runtime's worker threads (0 = current-thread); before first use."""

@final
class NativeTask:
    """A handler coroutine stepped from Rust, with the interface of ``asyncio.Task``
    that asyncio and anyio use on the current task."""

    @property
    def _fut_waiter(self) -> Any: ...
    @property
    def _must_cancel(self) -> bool: ...
    def _step(self, exc: BaseException | None = None) -> None: ...
    def _wakeup(self, fut: Any) -> None: ...
    def cancel(self, msg: Any | None = None) -> bool:
        """Requests cancellation at the coroutine's next step."""
    def cancelling(self) -> int:
        """Pending cancellation requests."""
    def uncancel(self) -> int:
        """Withdraws one cancellation request."""
    def done(self) -> bool:
        """Whether the coroutine finished."""
    def cancelled(self) -> bool:
        """Whether the task was cancelled."""
    def result(self) -> Any:
        """The return value; raises what the coroutine raised."""
    def exception(self) -> BaseException | None:
        """The exception the coroutine raised, if any."""
    def add_done_callback(
        self, callback: Callable[[NativeTask], object], *, context: Context | None = None
    ) -> None:
        """Calls ``callback(task)`` once the task is done."""
    def remove_done_callback(self, callback: Callable[[NativeTask], object]) -> int:
        """Removes ``callback``; returns how many registrations were removed."""
    def get_coro(self) -> Any:
        """The coroutine."""
    def get_context(self) -> Context:
        """The context the coroutine runs in."""
    def get_loop(self) -> Any:
        """The loop running the task."""
    def get_name(self) -> str:
        """The task's name."""
    def set_name(self, value: object) -> None:
        """Renames the task."""
    def get_stack(self, *, limit: int | None = None) -> list[Any]:
        """The suspended coroutine's frame, if any."""

@disjoint_base
class Handle:
    """A callback scheduled on a PyLoop loop."""

    @property
    def _callback(self) -> Callable[..., Any] | None: ...
    @property
    def _args(self) -> tuple[Any, ...] | None: ...
    @property
    def _cancelled(self) -> bool: ...
    @property
    def _source_traceback(self) -> Any: ...
    def cancel(self) -> None:
        """Cancels the callback; it will not run."""
    def cancelled(self) -> bool:
        """Whether the handle was cancelled."""
    def get_context(self) -> Context:
        """The context the callback runs in."""
    def _run(self) -> None: ...

@final
class TimerHandle(Handle):
    """A callback scheduled for a point in time on ``loop.time()``'s clock."""

    @property
    def _when(self) -> float: ...
    def when(self) -> float:
        """When the callback is due."""
    def __lt__(self, value: TimerHandle, /) -> bool: ...
    def __le__(self, value: TimerHandle, /) -> bool: ...
    def __gt__(self, value: TimerHandle, /) -> bool: ...
    def __ge__(self, value: TimerHandle, /) -> bool: ...

@disjoint_base
class LoopCore:
    """The native core of ``data_bridge.pyloop.Loop``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> LoopCore: ...
    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> Handle: ...
    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> Handle: ...
    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> TimerHandle: ...
    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> TimerHandle: ...
    def time(self) -> float: ...
    def stop(self) -> None: ...
    def get_debug(self) -> bool: ...
    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: Any) -> bool: ...
    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_writer(self, fd: Any) -> bool: ...
    def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> Handle: ...
    def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> Handle: ...
    def _add_passive_reader(
        self, fd: Any, callback: Callable[..., object], *args: Any
    ) -> Handle: ...
    def _transport_for_fd(self, fd: int) -> Any | None: ...
    def _remove_reader(self, fd: Any) -> bool: ...
    def _remove_writer(self, fd: Any) -> bool: ...
    def _claim_fd(self, fd: int, transport: Any) -> None: ...
    def _release_fd(self, fd: int) -> None: ...
    def _set_debug_flag(self, enabled: bool) -> None: ...
    def _set_custom_time(self, custom: bool) -> None: ...
    def _run(self) -> None: ...
    def _run_once(self) -> None: ...
    def _wake(self) -> None: ...
    def _call_handle_threadsafe(self, handle: Handle) -> None: ...
    def _make_handle(self, callback: Callable[..., object], args: tuple[Any, ...]) -> Handle: ...
    def _ready_count(self) -> int: ...
    def _timer_count(self) -> int: ...
    def _close_native(self) -> None: ...

@final
class StreamTransport:
    """Native core of PyLoop's socket transport."""

    def __new__(
        cls,
        lp: LoopCore,
        sock: Any,
        protocol: Any,
        transport: Any,
        on_lost: Callable[[], object] | None = None,
    ) -> StreamTransport: ...
    @property
    def fd(self) -> int: ...
    @property
    def _conn_lost(self) -> int: ...
    def _start(self, waiter: Any = None) -> None: ...
    def _start_reading(self) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None) -> None: ...
    def _force_close(self, exc: BaseException | None) -> None: ...
    def _start_sendfile(
        self, file_fd: int, offset: int, count: int | None, future: Any
    ) -> None: ...
    def write(self, data: bytes | bytearray | memoryview) -> None: ...
    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_reading(self) -> bool: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_write_buffer_size(self) -> int: ...
    def set_protocol(self, protocol: Any) -> None: ...
    def get_protocol(self) -> Any: ...

@final
class DatagramTransport:
    """Native core of PyLoop's datagram transport."""

    def __new__(
        cls, lp: LoopCore, sock: Any, protocol: Any, transport: Any, address: Any = None
    ) -> DatagramTransport: ...
    def _start(self, waiter: Any = None) -> None: ...
    def _start_reading(self) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None) -> None: ...
    def _force_close(self, exc: BaseException | None) -> None: ...
    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_reading(self) -> bool: ...
    def set_protocol(self, protocol: Any) -> None: ...
    def get_protocol(self) -> Any: ...

def http_setup(
    to_json: Callable[[Any], bytes],
    response_cls: type,
    file_response_cls: type,
    http_exception: type,
    report: Callable[[BaseException], str],
    run_background: Callable[[Any], Any],
    *,
    streaming_response: type | None = None,
) -> None:
    """Registers the Python objects the HTTP server calls (once, at import)."""

@final
class RouteTable:
    """Routes being declared for a server."""

    def __new__(cls) -> RouteTable: ...
    def add_python(
        self,
        methods: list[str],
        path: str,
        func: Callable[..., Any],
        *,
        is_async: bool,
        mode: str,
        params: list[tuple[str, str, list[str] | None, Callable[[Any], Any] | None]],
        timeout: float | None = None,
        status_code: int = 200,
        buffer_body: bool = False,
    ) -> None: ...
    def add_constant(
        self,
        methods: list[str],
        path: str,
        body: bytes,
        *,
        status_code: int = 200,
        content_type: str = "application/json",
    ) -> None: ...
    def add_websocket(
        self,
        path: str,
        func: Callable[[RequestData, WebSocketConn], Any],
        *,
        params: list[tuple[str, str, list[str] | None, Callable[[Any], Any] | None]],
    ) -> None:
        """Adds a WebSocket handler: ``func(request, connection)`` returns the coroutine
        serving one connection."""
    def add_probe(self, path: str, kind: str) -> None: ...
    def add_metrics(self, path: str) -> None:
        """Adds the native Prometheus metrics endpoint (``GET path``)."""
    def add_static(
        self, prefix: str, directory: str | os.PathLike[str], *, html: bool = False
    ) -> None:
        """Serves the files below ``directory`` at ``{prefix}/{path:path}`` from Rust."""
    def add_middleware(
        self,
        options: CorsOptions
        | CompressOptions
        | TrustedHostOptions
        | HttpsRedirectOptions
        | RequestIdOptions,
    ) -> None:
        """Adds the built-in middleware layer ``options`` describe inside those already
        added."""

@final
class CorsOptions:
    """The options of ``CORSMiddleware``; ``ValueError`` for a bad regex or header."""

    ALL_METHODS: ClassVar[list[str]]
    SAFELISTED_HEADERS: ClassVar[list[str]]

    def __new__(
        cls,
        *,
        allow_origins: list[str],
        allow_methods: list[str],
        allow_headers: list[str],
        allow_credentials: bool,
        allow_origin_regex: str | None,
        allow_private_network: bool,
        expose_headers: list[str],
        max_age: int,
    ) -> CorsOptions: ...
    @property
    def allow_origins(self) -> list[str]: ...
    @property
    def allow_methods(self) -> list[str]: ...
    @property
    def allow_headers(self) -> list[str]: ...
    @property
    def allow_credentials(self) -> bool: ...
    @property
    def allow_origin_regex(self) -> str | None: ...
    @property
    def allow_private_network(self) -> bool: ...
    @property
    def expose_headers(self) -> list[str]: ...
    @property
    def max_age(self) -> int: ...

@final
class CompressOptions:
    """The options of ``GZipMiddleware`` and ``BrotliMiddleware``: ``encodings`` are
    ``"gzip"`` and ``"br"``, preferred first (``ValueError`` for others)."""

    def __new__(
        cls,
        *,
        encodings: list[str],
        minimum_size: int,
        thread_minimum_size: int,
        gzip_level: int,
        brotli_quality: int,
        exclude_content_types: list[str],
    ) -> CompressOptions: ...
    @property
    def encodings(self) -> list[str]: ...
    @property
    def minimum_size(self) -> int: ...
    @property
    def thread_minimum_size(self) -> int: ...
    @property
    def gzip_level(self) -> int: ...
    @property
    def brotli_quality(self) -> int: ...
    @property
    def exclude_content_types(self) -> list[str]: ...

@final
class TrustedHostOptions:
    """The options of ``TrustedHostMiddleware``; ``ValueError`` for a bad pattern."""

    ENFORCE_DOMAIN_WILDCARD: ClassVar[str]

    def __new__(cls, *, allowed_hosts: list[str], www_redirect: bool) -> TrustedHostOptions: ...
    @property
    def allowed_hosts(self) -> list[str]: ...
    @property
    def www_redirect(self) -> bool: ...

@final
class HttpsRedirectOptions:
    """The options of ``HTTPSRedirectMiddleware`` (it has none)."""

    def __new__(cls) -> HttpsRedirectOptions: ...

@final
class RequestIdOptions:
    """The options of ``RequestIDMiddleware``; ``ValueError`` for a bad header name."""

    def __new__(cls, *, header_name: str) -> RequestIdOptions: ...
    @property
    def header_name(self) -> str:
        """The header carrying the id, in lower case."""

@final
class ServerOptions:
    """The settings of a server, each defaulting to the server's own (defined once, in
    ``crates/data-bridge-api/src/options.rs``; read them from ``ServerOptions()``).
    Durations are seconds from 0 to a year (``ValueError`` otherwise).

    ``max_body_size``: largest request body in bytes (413 past it). ``max_pending``
    bounds Python work in flight (503 past it): handlers queued or running, sync
    streaming producers, open WebSockets and unfinished background tasks.
    ``sync_threads`` bounds ``def`` handlers and, separately, sync streaming producers
    running at once. ``header_timeout`` and ``max_header_bytes`` bound the request
    head; a body making no progress for ``body_timeout`` gets 408; a connection is
    closed after ``keep_alive_timeout`` silent with no request in flight, or when its
    client takes none of its response for ``write_timeout``. ``limit_connections``:
    open connections past which new ones get 503 (``None``: no limit);
    ``http2_keep_alive_interval``: seconds between HTTP/2 pings (``None``: none).
    ``ws_handshake_timeout``: how long a WebSocket handler may take to accept or
    refuse the handshake (403 past it); ``ws_ping_interval``: seconds between pings of
    an open WebSocket (``None``: none); ``ws_ping_timeout``: how long a ping may go
    unanswered before the connection is closed. ``access_log``: ``"text"``, ``"json"``
    or ``None`` (off). With ``proxy_headers``, ``X-Forwarded-For``/``-Proto`` from
    ``forwarded_allow_ips`` peers apply (``X-Forwarded-Host`` too with
    ``forwarded_host``)."""

    def __new__(
        cls,
        *,
        max_body_size: int = ...,
        max_pending: int = ...,
        sync_threads: int = ...,
        header_timeout: float = ...,
        max_header_bytes: int = ...,
        body_timeout: float = ...,
        keep_alive_timeout: float = ...,
        write_timeout: float = ...,
        limit_connections: int | None = ...,
        http2_keep_alive_interval: float | None = ...,
        ws_handshake_timeout: float = ...,
        ws_ping_interval: float | None = ...,
        ws_ping_timeout: float = ...,
        access_log: str | None = None,
        proxy_headers: bool = False,
        forwarded_allow_ips: str = ...,
        forwarded_host: bool = False,
    ) -> ServerOptions: ...
    @property
    def max_body_size(self) -> int: ...
    @property
    def max_pending(self) -> int: ...
    @property
    def sync_threads(self) -> int: ...
    @property
    def header_timeout(self) -> float: ...
    @property
    def max_header_bytes(self) -> int: ...
    @property
    def body_timeout(self) -> float: ...
    @property
    def keep_alive_timeout(self) -> float: ...
    @property
    def write_timeout(self) -> float: ...
    @property
    def limit_connections(self) -> int | None: ...
    @property
    def http2_keep_alive_interval(self) -> float | None: ...
    @property
    def ws_handshake_timeout(self) -> float: ...
    @property
    def ws_ping_interval(self) -> float | None: ...
    @property
    def ws_ping_timeout(self) -> float: ...
    @property
    def access_log(self) -> str | None: ...
    @property
    def proxy_headers(self) -> bool: ...
    @property
    def forwarded_allow_ips(self) -> str: ...
    @property
    def forwarded_host(self) -> bool: ...

@final
class Server:
    """An HTTP server for one app."""

    def __new__(
        cls,
        table: RouteTable,
        options: ServerOptions | None = None,
        *,
        debug: bool = False,
        restarts_fd: int | None = None,
        tls: tuple[bytes, bytes, bytes | None] | None = None,
    ) -> Server:
        """``options``: the settings (``None``: ``ServerOptions()``). ``debug`` puts
        tracebacks in 500 answers. ``restarts_fd``: the supervisor's shared metrics file
        (its restart count and every worker's metrics), which ``/metrics`` reports.
        ``tls``: PEM certificate chain, key and client CA bundle (or ``None``) to
        serve HTTPS."""
    def start(self, lp: LoopCore, fd: int) -> Any:
        """Adopts the listening socket ``fd`` (bound by ``data_bridge.serve.listener``; it is
        duplicated, so the caller still owns it) and starts accepting. Returns the
        address: ``(host, port)`` or the socket path."""
    def reload_tls(self, cert_chain: bytes, key: bytes, client_ca: bytes | None = None) -> None:
        """Replaces the TLS certificate chain, key and client CA bundle (PEM) for
        connections accepted from now on; ``ValueError`` leaves the old ones."""
    def background_pending(self) -> int:
        """Responses whose background work has not yet been handed to Python."""
    def shutdown(self, grace: float) -> Any: ...
    @property
    def requests_served(self) -> int:
        """Requests answered so far, every status and native routes included."""

@final
class RequestData:
    """The native request a handler's ``Request`` wraps."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def http_version(self) -> str: ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def server(self) -> tuple[str, int] | None: ...
    @property
    def scheme(self) -> str:
        """``"http"``, or ``X-Forwarded-Proto`` from a trusted proxy."""
    @property
    def host(self) -> str:
        """``X-Forwarded-Host`` from a trusted proxy, else the authority or ``Host``."""
    def header_pairs(self) -> list[tuple[str, str]]: ...
    def body_bytes(self) -> bytes | None:
        """The body if it was read before the handler ran, else ``None``."""
    def read_chunk(self) -> bytes | Future[bytes]:
        """The next chunk of a streamed body (``b""`` at its end), or a future of it."""
    def read_body(self) -> bytes | Future[bytes]:
        """The rest of the body, or a future of it."""
    def path_params(self) -> dict[str, Any]: ...

@final
class BodyWriter:
    """What a ``StreamingResponse`` feeds its chunks into."""

    def send(self, chunk: bytes) -> Future[None] | None:
        """Queues ``chunk``; returns a future to await before the next one, if any."""
    def send_blocking(self, chunk: bytes) -> None:
        """Queues ``chunk``, waiting (GIL released) while the queue is full."""
    def close(self) -> None:
        """Ends the body after the queued chunks."""
    def abort(self) -> None:
        """Ends the body with an error: the client sees an incomplete response."""
    @property
    def client_gone(self) -> bool:
        """Whether the client has gone away."""

@final
class WebSocketConn:
    """The native side of one WebSocket connection."""

    def accept(self, subprotocol: str | None = None, headers: list[tuple[str, str]] = ...) -> bool:
        """Completes the handshake; ``False`` if the client already went away."""
    def reject(self, status: int) -> None:
        """Refuses the handshake with an HTTP ``status`` response."""
    def receive(self) -> str | bytes | tuple[int, str] | Future[str | bytes | tuple[int, str]]:
        """The next message, or ``(code, reason)`` once the connection ended; or a
        future of it."""
    def send(self, data: str | bytes) -> Future[bool] | None:
        """Queues a message; a future (of whether it was queued) to await if the
        queue is full. Raises ``ConnectionResetError`` once the connection ended."""
    def close(self, code: int = 1000, reason: str = ...) -> Future[bool] | None:
        """Starts the closing handshake."""
    @property
    def close_status(self) -> tuple[int, str] | None:
        """``(code, reason)`` once the connection has ended."""
