"""``App``: declare routes with decorators, as in FastAPI; the routes run on the
data-bridge server (see :func:`data_bridge.serve`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic_core

from data_bridge import _native
from data_bridge.routing import Route, compile_route

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """A web application: routes plus start-up and shutdown hooks."""

    def __init__(self, *, debug: bool = False, timeout: float | None = None) -> None:
        self.debug = debug
        self.timeout = timeout
        self.routes: list[Route] = []
        self._constants: list[tuple[list[str], str, bytes, int, str]] = []
        self._probes: list[tuple[str, str]] = [("/health", "health"), ("/ready", "ready")]
        self._startup: list[Callable[[], Awaitable[None] | None]] = []
        self._shutdown: list[Callable[[], Awaitable[None] | None]] = []

    def api_route(
        self,
        path: str,
        *,
        methods: list[str],
        status_code: int = 200,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Registers the decorated function for ``methods`` on ``path``."""

        def decorator(func: F) -> F:
            self.routes.append(
                compile_route(
                    [m.upper() for m in methods],
                    path,
                    func,
                    status_code=status_code,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            )
            return func

        return decorator

    def get(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["GET"], **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["POST"], **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PUT"], **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PATCH"], **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["DELETE"], **kwargs)

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

    def on_event(self, event: str) -> Callable[[F], F]:
        """Registers a ``"startup"`` or ``"shutdown"`` hook (sync or async)."""

        def decorator(func: F) -> F:
            if event == "startup":
                self._startup.append(func)
            elif event == "shutdown":
                self._shutdown.append(func)
            else:
                raise ValueError(f"unknown event {event!r}")
            return func

        return decorator

    def route_table(self) -> _native.RouteTable:
        """The native route table; conflicting routes raise ``ValueError`` here."""
        table = _native.RouteTable()
        taken = {(m, r.path) for r in self.routes for m in r.methods}
        for path, kind in self._probes:
            if ("GET", path) not in taken:
                table.add_probe(path, kind)
        for methods, path, body, status_code, media_type in self._constants:
            table.add_constant(
                methods, path, body, status_code=status_code, content_type=media_type
            )
        for r in self.routes:
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
        return table
