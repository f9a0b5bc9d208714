"""Declaring routes: ``APIRouter`` and its decorators, ``include_router`` (prefix, tags,
dependencies, documentation options) and ``url_path_for``. A declared :class:`APIRoute`
is analysed here, once; :mod:`data_bridge.endpoints` turns it into what the native route
table runs and :mod:`data_bridge.openapi` describes it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from data_bridge.dependencies import Dependant, Depends, analyze, analyze_depends
from data_bridge.durations import check_seconds
from data_bridge.responses import JSONResponse, Response

__all__ = ["DEFAULT", "EXECUTORS", "APIRoute", "APIRouter", "APIWebSocketRoute", "path_names"]

F = TypeVar("F", bound=Callable[..., Any])
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?}")

#: Where a ``def`` handler may run: a thread of the serving process (the default), or
#: a worker process of the app's process pool (CPU-bound work).
EXECUTORS = ("thread", "process")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


def path_names(path: str) -> list[tuple[str, bool]]:
    """``[(name, is_path_kind), ...]`` of the parameters in a path template."""
    return [(m.group(1), bool(m.group(2))) for m in _PARAM.finditer(path)]


class APIRoute:
    """A declared route: its endpoint (analysed) and the options it was declared with."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str],
        status_code: int | None = None,
        response_model: Any = DEFAULT,
        response_class: type[Response] = JSONResponse,
        dependencies: Sequence[Depends] = (),
        tags: Sequence[str] = (),
        name: str | None = None,
        timeout: float | None = None,
        executor: str = "thread",
        response_model_exclude_unset: bool = False,
        response_model_exclude_none: bool = False,
        response_model_exclude_defaults: bool = False,
        response_model_by_alias: bool = True,
        response_model_include: Any = None,
        response_model_exclude: Any = None,
        summary: str | None = None,
        description: str | None = None,
        response_description: str = "Successful Response",
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        operation_id: str | None = None,
        openapi_extra: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        self.path = path
        self.endpoint = endpoint
        self.methods = [m.upper() for m in methods]
        self.status_code = status_code
        self.response_model = response_model
        self.response_class = response_class
        self.dependencies = list(dependencies)
        self.tags = list(tags)
        self.name = name or getattr(endpoint, "__name__", "endpoint")
        self.timeout = None if timeout is None else check_seconds(timeout, "timeout", positive=True)
        # Documentation only (see data_bridge.openapi); nothing here runs per request.
        self.summary = summary
        self.description = description
        self.response_description = response_description
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.operation_id = operation_id
        self.openapi_extra = openapi_extra
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        if executor == "process" and (
            inspect.iscoroutinefunction(endpoint) or not inspect.isfunction(endpoint)
        ):
            raise TypeError(
                f'executor="process" needs a module-level def function, not {endpoint!r}'
            )
        self.executor = executor
        self.output_options = {
            "exclude_unset": response_model_exclude_unset,
            "exclude_none": response_model_exclude_none,
            "exclude_defaults": response_model_exclude_defaults,
            "by_alias": response_model_by_alias,
            "include": response_model_include,
            "exclude": response_model_exclude,
        }
        names = {n for n, _ in path_names(path)}
        self.dependant: Dependant = analyze(endpoint, names)
        self.route_dependants = [
            analyze_depends(d, names) for d in self.dependencies if d.dependency
        ]

    def with_prefix(
        self,
        prefix: str,
        tags: Sequence[str],
        dependencies: Sequence[Depends],
        *,
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> APIRoute:
        """This route as included under ``prefix`` with extra tags, dependencies and
        documented responses; ``deprecated`` and ``include_in_schema=False`` apply to it
        unless it says otherwise (as in FastAPI: deprecated if either says so, hidden if
        either hides it)."""
        clone = APIRoute.__new__(APIRoute)
        clone.__dict__.update(self.__dict__)
        clone.path = prefix + self.path
        clone.tags = [*tags, *self.tags]
        clone.dependencies = [*dependencies, *self.dependencies]
        clone.responses = {**(responses or {}), **self.responses}
        clone.deprecated = self.deprecated or deprecated
        clone.include_in_schema = self.include_in_schema and include_in_schema
        names = {n for n, _ in path_names(clone.path)}
        if names != {n for n, _ in path_names(self.path)}:
            clone.dependant = analyze(self.endpoint, names)
        clone.route_dependants = [
            analyze_depends(d, names) for d in clone.dependencies if d.dependency
        ]
        return clone

    def url_path(self, **params: Any) -> str:
        def fill(m: re.Match[str]) -> str:
            return str(params[m.group(1)])

        return _PARAM.sub(fill, self.path)


class APIWebSocketRoute:
    """A declared WebSocket route: its endpoint (analysed) and dependencies."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        name: str | None = None,
        dependencies: Sequence[Depends] = (),
    ) -> None:
        self.path = path
        self.endpoint = endpoint
        self.name = name or getattr(endpoint, "__name__", "endpoint")
        self.dependencies = list(dependencies)
        names = {n for n, _ in path_names(path)}
        self.dependant: Dependant = analyze(endpoint, names)
        self.route_dependants = [
            analyze(d.dependency, names, d.use_cache) for d in self.dependencies if d.dependency
        ]

    def with_prefix(self, prefix: str, dependencies: Sequence[Depends]) -> APIWebSocketRoute:
        """This route as included under ``prefix`` with extra dependencies first."""
        return APIWebSocketRoute(
            prefix + self.path,
            self.endpoint,
            name=self.name,
            dependencies=[*dependencies, *self.dependencies],
        )

    def url_path(self, **params: Any) -> str:
        return _PARAM.sub(lambda m: str(params[m.group(1)]), self.path)


class APIRouter:
    """A group of routes sharing a prefix, tags and dependencies; include it in an app
    (or another router) with ``include_router``."""

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] = JSONResponse,
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("a prefix must start with '/' and not end with '/'")
        self.prefix = prefix
        self.tags = list(tags or [])
        self.dependencies = list(dependencies or [])
        self.default_response_class = default_response_class
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.routes: list[APIRoute] = []
        self.websocket_routes: list[APIWebSocketRoute] = []

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        tags: Sequence[str] | None = None,
        response_class: type[Response] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        **options: Any,
    ) -> None:
        """Declares ``endpoint`` for ``methods`` (default ``["GET"]``) on ``path``."""
        route = APIRoute(
            self.prefix + path,
            endpoint,
            methods=methods or ["GET"],
            dependencies=[*self.dependencies, *(dependencies or [])],
            tags=[*self.tags, *(tags or [])],
            response_class=response_class or self.default_response_class,
            responses={**self.responses, **(responses or {})},
            deprecated=deprecated or self.deprecated,
            include_in_schema=include_in_schema and self.include_in_schema,
            **options,
        )
        self.routes.append(route)

    def api_route(
        self, path: str, *, methods: Sequence[str] | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_api_route`."""

        def decorator(func: F) -> F:
            self.add_api_route(path, func, methods=methods, **options)
            return func

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["DELETE"], **options)

    def head(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["HEAD"], **options)

    def options(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["OPTIONS"], **options)

    def add_api_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        name: str | None = None,
        *,
        dependencies: Sequence[Depends] | None = None,
    ) -> None:
        """Declares the WebSocket handler ``endpoint`` on ``path``; it takes a
        ``WebSocket`` and path, query, header and cookie parameters and dependencies
        as HTTP routes do."""
        route = APIWebSocketRoute(
            self.prefix + path,
            endpoint,
            name=name,
            dependencies=[*self.dependencies, *(dependencies or [])],
        )
        self.websocket_routes.append(route)

    def websocket(
        self, path: str, name: str | None = None, *, dependencies: Sequence[Depends] | None = None
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_api_websocket_route`."""

        def decorator(func: F) -> F:
            self.add_api_websocket_route(path, func, name, dependencies=dependencies)
            return func

        return decorator

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        """Adds ``router``'s routes under ``prefix``; this router's own dependencies
        run first, then ``dependencies``, then the route's. ``responses``,
        ``deprecated`` and ``include_in_schema`` only change the OpenAPI document."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("a prefix must start with '/' and not end with '/'")
        extra = [*self.dependencies, *(dependencies or [])]
        for route in router.routes:
            self.routes.append(
                route.with_prefix(
                    self.prefix + prefix,
                    [*self.tags, *(tags or [])],
                    extra,
                    responses={**self.responses, **(responses or {})},
                    deprecated=deprecated or self.deprecated,
                    include_in_schema=include_in_schema and self.include_in_schema,
                )
            )
        for ws_route in router.websocket_routes:
            self.websocket_routes.append(ws_route.with_prefix(self.prefix + prefix, extra))

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called ``name`` (its function's name unless given),
        with ``params`` filled in; ``LookupError`` if there is no such route."""
        routes: list[APIRoute | APIWebSocketRoute] = [*self.routes, *self.websocket_routes]
        for route in routes:
            wanted = {n for n, _ in path_names(route.path)}
            if route.name == name and wanted == set(params):
                return route.url_path(**params)
        raise LookupError(f"no route named {name!r} with parameters {sorted(params)}")
