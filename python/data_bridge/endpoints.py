"""Turns a declared :class:`~data_bridge.routing.APIRoute` into what the native route
table runs, choosing the cheapest calling convention:

- ``none`` / ``path``: the handler takes nothing, or only its path parameters with
  plain types, and needs nothing else (no dependencies, output model, exception
  handlers). Rust converts the parameters and calls the handler directly; no Python
  code of ours runs per request.
- ``request``: everything else. Rust hands over the native request; a precompiled
  closure solves the parameters and dependencies, calls the handler, applies the
  output model and the injected ``Response``, and routes exceptions to their handlers.
  An ``executor="process"`` route always takes this path: the closure is async and
  awaits the handler in the app's process pool with the validated values.

A WebSocket route (:func:`compile_websocket_route`) is always called with the native
request and connection; its closure solves the same way, runs the handler and ends
the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import pydantic
import pydantic_core

from data_bridge import reporting
from data_bridge.background import BackgroundTask, BackgroundTasks
from data_bridge.datastructures import FormData
from data_bridge.dependencies import (
    Dependant,
    embed_body,
    flat_body_fields,
    is_form_body,
    path_only,
)
from data_bridge.exceptions import (
    HTTPException,
    RequestValidationError,
    ResponseValidationError,
    WebSocketException,
)
from data_bridge.middleware import CallNext
from data_bridge.requests import Request
from data_bridge.responses import JSONResponse, Response
from data_bridge.routing import DEFAULT, APIRoute, APIWebSocketRoute, path_names
from data_bridge.solver import UNSET, Context, Overrides, located, read_body, run_sync, solve
from data_bridge.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketRequestValidationError,
    WebSocketState,
)

__all__ = ["Route", "WebSocketRoute", "compile_route", "compile_websocket_route"]

_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool"}
ParamDecl = tuple[str, str, list[str] | None, Callable[[Any], Any] | None]
Handlers = dict[type[BaseException], Callable[..., Any]]


@dataclass
class Route:
    """A route ready for the native route table."""

    methods: list[str]
    path: str
    func: Callable[..., Any]
    is_async: bool
    mode: str
    params: list[ParamDecl]
    status_code: int
    timeout: float | None
    # The handler validates a body, so the server reads it whole before calling it.
    buffer_body: bool = False


def body_allowed(status: int) -> bool:
    return not (status < 200 or status in (204, 205, 304))


def _native_kind(name: str, annotation: Any, is_path: bool) -> ParamDecl | None:
    """How Rust converts a path parameter, or ``None`` if Rust cannot report its errors
    exactly as pydantic does (UUIDs and enums: pydantic's messages and ``ctx`` carry
    details Rust does not reproduce, so those routes validate in Python)."""
    if is_path:
        return (name, "path", None, None)
    if annotation in _SIMPLE:
        return (name, _SIMPLE[annotation], None, None)
    return None


def _contains_model(t: Any) -> bool:
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        return True
    return any(_contains_model(a) for a in get_args(t))


def _output_model(route: APIRoute) -> Any:
    """The explicit ``response_model``, else a return annotation that names a model
    (filtering matters there; plain annotations are trusted, to keep them free)."""
    if route.response_model is not DEFAULT:
        return route.response_model
    try:
        annotation = typing.get_type_hints(route.endpoint).get("return")
    except Exception:
        return None
    if annotation is None or (
        isinstance(get_origin(annotation) or annotation, type)
        and issubclass(get_origin(annotation) or annotation, Response)
    ):
        return None
    return annotation if _contains_model(annotation) else None


class _Output:
    """Validates and serialises a handler's return value with ``response_model``."""

    def __init__(self, model: Any, options: dict[str, Any], as_json: bool) -> None:
        self.adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(model)
        self.options = options
        self.as_json = as_json

    def __call__(self, raw: Any) -> Any:
        try:
            value = self.adapter.validate_python(raw, from_attributes=True)
        except pydantic.ValidationError as exc:
            raise ResponseValidationError(located(exc, ("response",)), body=raw) from None
        if self.as_json:
            return self.adapter.dump_json(value, **self.options)
        return self.adapter.dump_python(value, mode="json", **self.options)


def find_handler(handlers: Handlers, exc: BaseException) -> Callable[..., Any] | None:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


def compile_route(
    route: APIRoute,
    *,
    app: Any,
    app_timeout: float | None,
    handlers: Handlers,
    custom_handlers: bool,
    middleware: CallNext | None = None,
) -> Route:
    """Picks how to call ``route`` and builds the per-request closure if one is needed;
    with ``middleware`` (the app's Python middleware stack) every route runs through
    it."""
    declared = path_names(route.path)
    timeout = route.timeout if route.timeout is not None else app_timeout
    status = route.status_code or 200
    func = route.endpoint
    dependant = route.dependant
    model = _output_model(route)
    json_class = route.response_class is JSONResponse
    hints = typing.get_type_hints(func) if inspect.isfunction(func) else {}
    native = [_native_kind(n, hints.get(n, str), p) for n, p in declared]
    fast = (
        route.executor == "thread"
        and path_only(dependant)
        and not route.route_dependants
        and not custom_handlers
        and middleware is None
        and model is None
        and json_class
        and body_allowed(status)
        and all(decl is not None for decl in native)
        and all(not f.info.metadata for f in dependant.fields)
        and [f.name for f in dependant.fields] == [n for n, _ in declared]
        and inspect.isfunction(func)
    )
    is_async = inspect.iscoroutinefunction(func)
    if fast:
        mode = "path" if declared else "none"
        params = typing.cast(list[ParamDecl], native)
        return Route(route.methods, route.path, func, is_async, mode, params, status, timeout)
    # Python validates every parameter, so Rust passes path segments through as text.
    params = [(n, "path" if p else "str", None, None) for n, p in declared]
    root = dataclasses.replace(
        dependant,
        dependencies=[*((None, d) for d in route.route_dependants), *dependant.dependencies],
    )
    run = _Runner(route, root, app, handlers, status, model, middleware)
    # A form is parsed as it streams in (its files may be large).
    buffer = run.has_body and not run.form
    if run.is_async:
        return Route(
            route.methods,
            route.path,
            run.run_async,
            True,
            "request",
            params,
            status,
            timeout,
            buffer_body=buffer,
        )
    return Route(
        route.methods,
        route.path,
        run.run_sync,
        False,
        "request",
        params,
        status,
        timeout,
        buffer_body=buffer,
    )


class _Runner:
    """The per-request closure of a ``request``-mode route."""

    def __init__(
        self,
        route: APIRoute,
        root: Dependant,
        app: Any,
        handlers: Handlers,
        status: int,
        model: Any,
        middleware: CallNext | None = None,
    ) -> None:
        self.root = root
        self.middleware = middleware
        overrides = getattr(app, "dependency_overrides", None)
        self.overrides = (
            Overrides(overrides, {n for n, _ in path_names(route.path)})
            if overrides is not None
            else None
        )
        self.app = app
        self.handlers = handlers
        self.status = status
        self.response_class = route.response_class
        self.json_class = route.response_class is JSONResponse
        self.output = _Output(model, route.output_options, self.json_class) if model else None
        bodies = flat_body_fields(root)
        self.has_body = bool(bodies)
        self.form = is_form_body(bodies)
        self.embed = embed_body(bodies)
        handler_async = any(inspect.iscoroutinefunction(h) for h in handlers.values())
        self.endpoint_async = root.is_async
        # Generator dependencies need an exit stack for their cleanup.
        self.has_cleanup = any(d.is_gen or d.is_async_gen for d in root.walk())
        self.in_process_pool = route.executor == "process"
        self.is_async = (
            root.needs_async
            or handler_async
            or middleware is not None
            or self.in_process_pool
            or self.form  # reading the form awaits the body
        )

    def _finish(self, raw: Any, ctx: Context) -> Any:
        response = self._respond(raw, ctx)
        if ctx.background is not None:
            if not isinstance(response, Response):
                response = Response(
                    pydantic_core.to_json(response), self.status, media_type="application/json"
                )
            # As FastAPI: a response's own background wins over the injected tasks.
            if response.background is None:
                response.background = ctx.background
        return response

    def _respond(self, raw: Any, ctx: Context) -> Any:
        if isinstance(raw, Response):
            # As FastAPI: a returned response is sent as is, without the injected one's
            # headers or status.
            return raw
        sub = ctx.sub_response
        if self.output is None and self.json_class and sub is None and body_allowed(self.status):
            return raw  # Rust encodes it, with the route's status.
        content = self.output(raw) if self.output is not None else raw
        if self.json_class and self.output is not None:
            response = Response(content, self.status, media_type="application/json")
        else:
            response = self.response_class(content, status_code=self.status)
        if sub is not None:
            if sub.status_code is not None:
                response.status_code = sub.status_code
            response.raw_headers.extend(sub.raw_headers)
        if not body_allowed(response.status_code):
            response.body = b""
        return response

    async def _handle(self, native: Any, offload: bool) -> Any:
        return await self._process(Request(native, self.app), offload)

    async def _process(self, request: Request, offload: bool) -> Any:
        result = None
        try:
            result = await self._solve_and_call(request, offload)
            return result
        finally:
            # The form of a form route, or one the handler read with request.form().
            if request._form is not None:
                await _close_form(request._form, result)

    async def _solve_and_call(self, request: Request, offload: bool) -> Any:
        try:
            if self.form:
                body: Any = await request.form()
            else:
                body = read_body(request) if self.has_body else UNSET
            overrides = self.overrides if self.overrides and self.overrides.mapping else None
            if not self.has_cleanup and overrides is None:
                # Nothing to clean up after the handler: no exit stack to enter and leave.
                return await self._call(request, body, None, overrides, offload)
            async with contextlib.AsyncExitStack() as stack:
                return await self._call(request, body, stack, overrides, offload)
        except Exception as exc:
            handler = find_handler(self.handlers, exc)
            if handler is None:
                raise
            result = handler(request, exc)
            if inspect.isawaitable(result):
                result = await result
            return result

    async def _call(
        self,
        request: Request,
        body: Any,
        stack: contextlib.AsyncExitStack | None,
        overrides: Overrides | None,
        offload: bool,
    ) -> Any:
        ctx = Context(request, body, self.embed, stack, overrides)
        values, errors = await solve(self.root, ctx)
        if errors:
            raise RequestValidationError(errors, body=None if body is UNSET else body)
        call = self.root.call
        if self.endpoint_async:
            raw = await call(**values)
        elif self.in_process_pool:
            raw = await self.app.process_pool.run(call, **values)
        elif offload:
            raw = await asyncio.to_thread(call, **values)
        else:
            raw = call(**values)
        return self._finish(raw, ctx)

    async def _as_response(self, request: Request) -> Response:
        """The route's answer as a ``Response`` object, for the middleware around it."""
        try:
            result = await self._process(request, offload=True)
        except HTTPException as exc:
            return http_exception_response(exc)
        if isinstance(result, Response):
            return result
        return Response(pydantic_core.to_json(result), self.status, media_type="application/json")

    async def run_async(self, native: Any) -> Any:
        if self.middleware is not None:
            request = Request(native, self.app, call_route=self._as_response)
            return await self.middleware(request)
        return await self._handle(native, offload=True)

    def run_sync(self, native: Any) -> Any:
        if self.overrides is not None and self.overrides.mapping and self.overrides.any_async:
            # An async replacement of a plain dependency (in tests): this worker thread
            # has no loop of its own, so the request gets a short-lived one.
            return asyncio.run(self._handle(native, offload=False))
        return run_sync(self._handle(native, offload=False))


async def _close_form(form: FormData, result: Any) -> None:
    """Closes the uploaded files once the handler is done with them: at once, or after
    the response's background work, which may still read them (as in FastAPI)."""
    if isinstance(result, Response) and result.background is not None:
        result.background = BackgroundTasks([result.background, BackgroundTask(form.close)])
        return
    await form.close()


def http_exception_response(exc: HTTPException) -> Response:
    """What the server answers to an unhandled ``HTTPException``, as FastAPI does."""
    if not body_allowed(exc.status_code):
        return Response(status_code=exc.status_code, headers=exc.headers)
    response = JSONResponse({"detail": exc.detail}, exc.status_code)
    # As FastAPI: the exception's own content type wins.
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


@dataclass
class WebSocketRoute:
    """A WebSocket route ready for the native route table."""

    path: str
    func: Callable[..., Any]
    params: list[ParamDecl]


def compile_websocket_route(route: APIWebSocketRoute, *, app: Any) -> WebSocketRoute:
    """The closure that serves one connection of ``route``; parameters are validated
    in Python (path segments arrive as text)."""
    params: list[ParamDecl] = [
        (n, "path" if p else "str", None, None) for n, p in path_names(route.path)
    ]
    root = dataclasses.replace(
        route.dependant,
        dependencies=[
            *((None, d) for d in route.route_dependants),
            *route.dependant.dependencies,
        ],
    )
    return WebSocketRoute(route.path, _WebSocketRunner(route, root, app).run, params)


class _WebSocketRunner:
    """The per-connection closure of a WebSocket route."""

    def __init__(self, route: APIWebSocketRoute, root: Dependant, app: Any) -> None:
        if not inspect.iscoroutinefunction(route.endpoint):
            raise TypeError(f"WebSocket handler {route.name!r} must be an async function")
        self.root = root
        self.app = app
        overrides = getattr(app, "dependency_overrides", None)
        self.overrides = (
            Overrides(overrides, {n for n, _ in path_names(route.path)})
            if overrides is not None
            else None
        )

    async def run(self, native: Any, conn: Any) -> None:
        """Solves the parameters and dependencies, runs the handler, and always ends with
        a close (1000 on return, 1011 on an error, 1008 on invalid parameters) or, before
        ``accept()``, a refused handshake."""
        websocket = WebSocket(native, conn, self.app)
        try:
            async with contextlib.AsyncExitStack() as stack:
                overrides = self.overrides if self.overrides and self.overrides.mapping else None
                ctx = Context(websocket, UNSET, False, stack, overrides)
                values, errors = await solve(self.root, ctx)
                if errors:
                    raise WebSocketRequestValidationError(errors)
                await self.root.call(**values)
        except WebSocketDisconnect:
            pass
        except WebSocketException as exc:
            await _end(websocket, exc.code, exc.reason)
        except (WebSocketRequestValidationError, HTTPException):
            await _end(websocket, 1008)
        except asyncio.CancelledError:
            # The server is going away.
            await _end(websocket, 1012)
            raise
        except Exception as exc:
            reporting.report(exc, "WebSocket handler")
            if websocket.application_state is WebSocketState.CONNECTING:
                websocket.application_state = WebSocketState.DISCONNECTED
                conn.reject(500)
            else:
                await _end(websocket, 1011)
        finally:
            await _end(websocket, 1000)


async def _end(websocket: WebSocket, code: int, reason: str | None = None) -> None:
    if websocket.application_state in (WebSocketState.CONNECTING, WebSocketState.CONNECTED):
        await websocket.close(code, reason)
