"""``App``: declare routes with decorators, as in FastAPI; the routes run on the
data-bridge server (see :func:`data_bridge.serve`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pydantic_core

from data_bridge import _native
from data_bridge.datastructures import UploadFile
from data_bridge.dependencies import Depends
from data_bridge.durations import check_seconds
from data_bridge.endpoints import Route, compile_route, compile_websocket_route
from data_bridge.exceptions import RequestValidationError
from data_bridge.headers import Headers
from data_bridge.lifespan import Lifespan, LifespanFactory
from data_bridge.middleware.base import BaseHTTPMiddleware, Middleware, build_stack
from data_bridge.middleware.native import NativeMiddleware, native_class
from data_bridge.openapi import docs, openapi_document
from data_bridge.process_pool import ProcessPool
from data_bridge.requests import Request, State
from data_bridge.responses import JSONResponse, Response
from data_bridge.routing import APIRouter

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("data_bridge")
HTML = "text/html; charset=utf-8"


def _jsonable(value: Any) -> Any:
    # As FastAPI's encoder: an exception in an error's ``ctx`` encodes as ``{}``, an
    # uploaded file given where text was expected as its attributes.
    if isinstance(value, BaseException):
        return {}
    if isinstance(value, UploadFile):
        return _attributes(value)
    return str(value)


def _attributes(value: Any) -> Any:
    """``value`` as FastAPI's encoder renders an arbitrary object: its attributes."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _attributes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_attributes(v) for v in value]
    if isinstance(value, Headers):
        return {k: value[k] for k in value}
    try:
        return {k: _attributes(v) for k, v in vars(value).items()}
    except TypeError:
        return str(value)


def request_validation_handler(request: Request, exc: RequestValidationError) -> Response:
    """The default answer to invalid input: 422 and ``{"detail": [errors]}``."""
    body = pydantic_core.to_json({"detail": exc.errors()}, fallback=_jsonable)
    return Response(body, 422, media_type="application/json")


class App:
    """A web application: routes, exception handlers, and its ``lifespan`` (or
    start-up and shutdown hooks)."""

    def __init__(
        self,
        *,
        debug: bool = False,
        timeout: float | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] = JSONResponse,
        title: str = "data-bridge",
        version: str = "0.1.0",
        summary: str | None = None,
        description: str = "",
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        swagger_ui_oauth2_redirect_url: str | None = "/docs/oauth2-redirect",
        openapi_tags: list[dict[str, Any]] | None = None,
        servers: list[dict[str, Any]] | None = None,
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        lifespan: LifespanFactory | None = None,
        metrics: bool = False,
        metrics_path: str = "/metrics",
        process_pool_size: int | None = None,
    ) -> None:
        """``timeout`` is the handler timeout, in seconds above 0 and at most a year
        (``durations.MAX_SECONDS``), of every route that declares none (``None``: no
        timeout); past it the answer is ``504``. ``title`` to ``license_info`` describe
        the app in its OpenAPI document, served at ``openapi_url``, with Swagger UI at
        ``docs_url`` and ReDoc at ``redoc_url``; ``None`` turns any of them off (no
        document, no pages). ``metrics=True`` serves Prometheus metrics at
        ``metrics_path`` from Rust; ``process_pool_size`` is the number of processes
        running ``executor="process"`` routes (default: one per CPU)."""
        for url in (openapi_url, docs_url, redoc_url, swagger_ui_oauth2_redirect_url):
            if url is not None and not url.startswith("/"):
                raise ValueError(f"documentation URLs must start with '/': {url!r}")
        self.debug = debug
        self.timeout = None if timeout is None else check_seconds(timeout, "timeout", positive=True)
        self.title = title
        self.version = version
        self.summary = summary
        self.description = description
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.swagger_ui_oauth2_redirect_url = swagger_ui_oauth2_redirect_url
        self.openapi_tags = openapi_tags
        self.servers = servers
        self.terms_of_service = terms_of_service
        self.contact = contact
        self.license_info = license_info
        self.openapi_schema: dict[str, Any] | None = None
        self.state = State()
        self.router = APIRouter(
            dependencies=dependencies, default_response_class=default_response_class
        )
        self.exception_handlers: dict[type[BaseException], Callable[..., Any]] = {}
        self._constants: list[tuple[list[str], str, bytes, int, str]] = []
        self._statics: list[tuple[str, str, bool]] = []
        self._probes: list[tuple[str, str]] = [("/health", "health"), ("/ready", "ready")]
        self.lifespan = Lifespan(lifespan)
        self.user_middleware: list[Middleware] = []
        # Built-in layers run by the server in Rust, outermost first.
        self.native_middleware: list[NativeMiddleware] = []
        # Dependency -> replacement, read at each request (as FastAPI; used by tests).
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.metrics = metrics
        self.metrics_path = metrics_path
        self.process_pool = ProcessPool(process_pool_size)

    # -- routes -------------------------------------------------------------------

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        """Declares ``endpoint`` on ``path`` (see :meth:`APIRouter.add_api_route`)."""
        self.router.add_api_route(path, endpoint, **options)

    def api_route(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers the decorated function for ``methods`` (default GET) on ``path``."""
        return self.router.api_route(path, **options)

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.get(path, **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.post(path, **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.put(path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.patch(path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.delete(path, **options)

    def head(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.head(path, **options)

    def options(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.router.options(path, **options)

    def add_api_websocket_route(
        self, path: str, endpoint: Callable[..., Any], name: str | None = None, **options: Any
    ) -> None:
        """Declares a WebSocket handler (see :meth:`APIRouter.add_api_websocket_route`)."""
        self.router.add_api_websocket_route(path, endpoint, name, **options)

    def websocket(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        """Registers the decorated ``async def handler(websocket: WebSocket, ...)`` for
        WebSocket connections to ``path``."""
        return self.router.websocket(path, name, **options)

    def include_router(self, router: APIRouter, **options: Any) -> None:
        """Adds ``router``'s routes (``prefix=``, ``tags=``, ``dependencies=``)."""
        self.router.include_router(router, **options)

    def url_path_for(self, name: str, /, **params: Any) -> str:
        return self.router.url_path_for(name, **params)

    def constant(
        self,
        path: str,
        content: Any,
        *,
        status_code: int = 200,
        media_type: str = "application/json",
    ) -> None:
        """Serves ``content`` (JSON-encoded now, once) from Rust on every GET of ``path``."""
        body = content if isinstance(content, bytes) else pydantic_core.to_json(content)
        self._constants.append((["GET"], path, body, status_code, media_type))

    def static(self, path: str, directory: str | os.PathLike[str], *, html: bool = False) -> None:
        """Serves the files below ``directory`` under ``path`` (``GET`` and ``HEAD`` of
        ``{path}/{file_path:path}``) from Rust, without running Python: content type,
        ``ETag``/``Last-Modified``, conditional and range requests included. Nothing
        outside ``directory`` is ever served. With ``html=True`` a directory answers with
        its ``index.html``. Raises ``RuntimeError`` if ``directory`` does not exist."""
        if not os.path.isdir(directory):
            raise RuntimeError(f"Directory '{os.fspath(directory)}' does not exist")
        self._statics.append((path, os.path.abspath(directory), html))

    # -- hooks and handlers ---------------------------------------------------------

    def exception_handler(self, exc_class: type[BaseException]) -> Callable[[F], F]:
        """Registers ``handler(request, exc)`` (sync or async, returning a ``Response``)
        for ``exc_class`` and its subclasses raised while handling a request."""

        def decorator(func: F) -> F:
            self.exception_handlers[exc_class] = func
            return func

        return decorator

    def add_exception_handler(
        self, exc_class: type[BaseException], handler: Callable[..., Any]
    ) -> None:
        self.exception_handlers[exc_class] = handler

    def on_event(self, event: str) -> Callable[[F], F]:
        """Registers a ``"startup"`` or ``"shutdown"`` hook (sync or async); ignored
        when the app has a ``lifespan``, as in FastAPI."""

        def decorator(func: F) -> F:
            if event == "startup":
                self.lifespan.startup_hooks.append(func)
            elif event == "shutdown":
                self.lifespan.shutdown_hooks.append(func)
            else:
                raise ValueError(f"unknown event {event!r}")
            return func

        return decorator

    # -- documentation ------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """The app's OpenAPI 3.1 document, built on first use and then kept."""
        if self.openapi_schema is None:
            self.openapi_schema = openapi_document(
                self.router.routes,
                title=self.title,
                version=self.version,
                summary=self.summary,
                description=self.description,
                terms_of_service=self.terms_of_service,
                contact=self.contact,
                license_info=self.license_info,
                servers=self.servers,
                tags=self.openapi_tags,
            )
        return self.openapi_schema

    def _documentation(
        self,
    ) -> tuple[list[tuple[str, bytes, int, str]], list[tuple[str, str]]]:
        """The constant routes (path, body, status, content type) and asset directories
        (path, directory) that serve the document and the pages."""
        if self.openapi_url is None:
            return [], []
        try:
            body, status, media_type = (
                pydantic_core.to_json(self.openapi()),
                200,
                "application/json",
            )
        except Exception:
            # An app whose types have no JSON schema still serves; only its document
            # fails, as it does on FastAPI.
            logger.exception("Could not generate the OpenAPI document")
            body, status, media_type = b"Internal Server Error", 500, "text/plain; charset=utf-8"
        constants = [(self.openapi_url, body, status, media_type)]
        statics: list[tuple[str, str]] = []
        if self.docs_url is not None:
            assets = self.docs_url.rstrip("/") + "/" + docs.ASSETS
            page = docs.swagger_ui_html(
                title=self.title,
                openapi_url=self.openapi_url,
                assets=assets,
                oauth2_redirect_url=self.swagger_ui_oauth2_redirect_url,
            )
            constants.append((self.docs_url, page.encode(), 200, HTML))
            statics.append((assets, str(docs.swagger_ui_dir())))
            if self.swagger_ui_oauth2_redirect_url is not None:
                redirect = docs.oauth2_redirect_html().encode()
                constants.append((self.swagger_ui_oauth2_redirect_url, redirect, 200, HTML))
        if self.redoc_url is not None:
            assets = self.redoc_url.rstrip("/") + "/" + docs.ASSETS
            page = docs.redoc_html(title=self.title, openapi_url=self.openapi_url, assets=assets)
            constants.append((self.redoc_url, page.encode(), 200, HTML))
            statics.append((assets, str(docs.redoc_dir())))
        return constants, statics

    def add_middleware(self, middleware_class: type[Any], **options: Any) -> None:
        """Adds a ``BaseHTTPMiddleware``-style class, built as
        ``middleware_class(next, **options)``, or a built-in one (see
        :mod:`data_bridge.middleware`; Starlette's classes of the same names stand for
        them), which the server runs in Rust. The last added runs first (outermost);
        the built-in layers always wrap the Python ones."""
        native = native_class(middleware_class)
        if native is not None:
            self.native_middleware.insert(0, native(**options))
            return
        self.user_middleware.insert(0, Middleware(middleware_class, **options))

    def middleware(self, middleware_type: str) -> Callable[[F], F]:
        """Registers ``async def mw(request, call_next) -> Response`` (``"http"`` only)."""
        if middleware_type != "http":
            raise ValueError(f"unsupported middleware type {middleware_type!r}")

        def decorator(func: F) -> F:
            self.add_middleware(BaseHTTPMiddleware, dispatch=func)
            return func

        return decorator

    # -- the native table -------------------------------------------------------------

    @property
    def routes(self) -> list[Route]:
        """Every route, compiled for the native table."""
        handlers: dict[type[BaseException], Callable[..., Any]] = {
            RequestValidationError: request_validation_handler,
            **self.exception_handlers,
        }
        stack = build_stack(self.user_middleware) if self.user_middleware else None
        return [
            compile_route(
                r,
                app=self,
                app_timeout=self.timeout,
                handlers=handlers,
                custom_handlers=bool(self.exception_handlers),
                middleware=stack,
            )
            for r in self.router.routes
        ]

    def route_table(self) -> _native.RouteTable:
        """The native route table; conflicting routes raise ``ValueError`` here."""
        table = _native.RouteTable()
        for layer in self.native_middleware:
            table.add_middleware(layer.options)
        routes = self.routes
        taken = {(m, r.path) for r in routes for m in r.methods}
        for path, kind in self._probes:
            if ("GET", path) not in taken:
                table.add_probe(path, kind)
        # The app's own routes win over the documentation's.
        doc_constants, doc_statics = self._documentation()
        for path, body, status_code, media_type in doc_constants:
            if ("GET", path) not in taken:
                table.add_constant(
                    ["GET"], path, body, status_code=status_code, content_type=media_type
                )
        for path, directory in doc_statics:
            table.add_static(path, directory, html=False)
        if self.metrics:
            table.add_metrics(self.metrics_path)
        for methods, path, body, status_code, media_type in self._constants:
            table.add_constant(
                methods, path, body, status_code=status_code, content_type=media_type
            )
        for path, directory, html in self._statics:
            table.add_static(path, directory, html=html)
        for r in routes:
            table.add_python(
                r.methods,
                r.path,
                r.func,
                is_async=r.is_async,
                mode=r.mode,
                params=r.params,
                timeout=r.timeout,
                status_code=r.status_code,
                buffer_body=r.buffer_body,
            )
        for route in self.router.websocket_routes:
            ws = compile_websocket_route(route, app=self)
            table.add_websocket(ws.path, ws.func, params=ws.params)
        return table
