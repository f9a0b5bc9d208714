"""HTTP middleware written in Python, as Starlette's ``BaseHTTPMiddleware``:
``@app.middleware("http")`` functions and ``app.add_middleware(cls, **options)``
classes with ``async dispatch(request, call_next)``.

The stack is built once per app, the last added outermost (as in Starlette). Its
innermost layer runs the matched route and always answers with a ``Response``: a
handler's plain return value is encoded, and ``HTTPException`` (and every exception
that has a handler) is already turned into its response, so a middleware sees what the
client would. Any other exception comes out of ``call_next`` and, unless a middleware
catches it, ends the request with a 500.

Routing stays in Rust: a middleware runs for the requests that reach a Python route of
the app. Every route of an app with middleware takes the Python path (the native fast
paths skip Python altogether); an app without middleware pays nothing for it. Native
routes (``constant``, ``static``, the health probes) and Rust's own 404/405 answers
never pass through Python middleware. The built-in middleware (:mod:`.native`) runs in
Rust around all of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from data_bridge.requests import Request
from data_bridge.responses import Response

__all__ = ["BaseHTTPMiddleware", "CallNext", "Middleware", "build_stack"]

CallNext = Callable[[Request], Awaitable[Response]]
DispatchFunction = Callable[[Request, CallNext], Awaitable[Response]]


class BaseHTTPMiddleware:
    """A middleware layer: ``dispatch(request, call_next)`` returns the response, from
    ``await call_next(request)`` (the rest of the stack) or made up on the spot.

    Subclass it and override :meth:`dispatch`, or pass ``dispatch=`` a function."""

    def __init__(self, app: CallNext, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        self.dispatch_func = dispatch if dispatch is not None else self.dispatch

    async def __call__(self, request: Request) -> Response:
        response = await self.dispatch_func(request, self.app)
        if not isinstance(response, Response):
            raise TypeError(f"a middleware must return a Response, not {type(response).__name__}")
        return response

    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        raise NotImplementedError()  # pragma: no cover


class Middleware:
    """A middleware class and the options to build it with."""

    def __init__(self, cls: type[Any], **options: Any) -> None:
        if not callable(getattr(cls, "dispatch", None)):
            raise TypeError(
                f"{cls.__name__} is not a BaseHTTPMiddleware-style class "
                "(async dispatch(request, call_next)); ASGI middleware is not supported"
            )
        self.cls = cls
        self.options = options

    def __repr__(self) -> str:
        return f"Middleware({self.cls.__name__}, **{self.options!r})"


async def _route(request: Request) -> Response:
    """The innermost layer: the matched route (given to the request by its runner)."""
    if request.call_route is None:
        raise RuntimeError("the middleware stack runs only for a request to a route")
    return await request.call_route(request)


def build_stack(middleware: list[Middleware]) -> CallNext:
    """The stack, ``middleware[0]`` outermost, around the matched route."""
    app: CallNext = _route
    for m in reversed(middleware):
        app = m.cls(app, **m.options)
    return app
