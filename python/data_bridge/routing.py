"""Turns a handler function into what the Rust router needs: its calling convention,
the declared types of its path parameters, and (when it takes more than path
parameters) a wrapper that extracts query parameters and the pydantic body."""

from __future__ import annotations

import enum
import inspect
import re
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from data_bridge.exceptions import HTTPException
from data_bridge.requests import Request

__all__ = ["Route", "compile_route"]

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?}")
_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool"}
_MISSING = inspect.Parameter.empty


@dataclass
class Route:
    """A route ready for the native route table."""

    methods: list[str]
    path: str
    func: Callable[..., Any]
    is_async: bool
    mode: str
    params: list[tuple[str, str, list[str] | None, Callable[[Any], Any] | None]]
    status_code: int
    timeout: float | None
    # The handler validates a pydantic body, so the server reads it whole first.
    buffer_body: bool = False


def _path_param_spec(
    name: str, annotation: Any, is_path: bool
) -> tuple[str, str, list[str] | None, Callable[[Any], Any] | None]:
    if is_path:
        return (name, "path", None, None)
    if annotation in _SIMPLE:
        return (name, _SIMPLE[annotation], None, None)
    if annotation is uuid.UUID:
        return (name, "uuid", None, uuid.UUID)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return (name, "choice", [str(m.value) for m in annotation], _enum_converter(annotation))
    return (name, "str", None, None)


def _enum_converter(cls: type[enum.Enum]) -> Callable[[Any], Any]:
    by_text = {str(m.value): m for m in cls}
    return by_text.__getitem__


def _located(errors: list[Any], *prefix: str) -> list[dict[str, Any]]:
    """pydantic errors in FastAPI's shape, located under ``prefix`` (e.g. "body")."""
    out = []
    for err in errors:
        item = {k: err[k] for k in ("type", "loc", "msg", "input") if k in err}
        item["loc"] = [*prefix, *err.get("loc", ())]
        if "ctx" in err:
            item["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        out.append(item)
    return out


class _Extractor:
    """Builds a handler's keyword arguments from a request."""

    def __init__(self, func: Callable[..., Any], path_names: set[str]) -> None:
        hints = typing.get_type_hints(func)
        self.steps: list[tuple[str, str, Any, Any]] = []
        self.reads_body = False
        for p in inspect.signature(func).parameters.values():
            annotation = hints.get(p.name, Any)
            if p.name in path_names:
                self.steps.append((p.name, "path", None, None))
            elif annotation is Request:
                self.steps.append((p.name, "request", None, None))
            elif isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
                self.steps.append((p.name, "body", annotation, None))
                self.reads_body = True
            else:
                adapter = pydantic.TypeAdapter(annotation)
                self.steps.append((p.name, "query", adapter, p.default))

    def __call__(self, native: Any) -> dict[str, Any]:
        request = Request(native)
        kwargs: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, kind, extra, default in self.steps:
            if kind == "path":
                kwargs[name] = request.path_params[name]
            elif kind == "request":
                kwargs[name] = request
            elif kind == "body":
                body = native.body_bytes()
                if not body:
                    errors.append(
                        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
                    )
                    continue
                try:
                    kwargs[name] = extra.model_validate_json(body)
                except pydantic.ValidationError as exc:
                    errors.extend(_located(exc.errors(include_url=False), "body"))
            else:
                raw = request.query_params.get(name)
                if raw is None:
                    if default is _MISSING:
                        errors.append(
                            {
                                "type": "missing",
                                "loc": ["query", name],
                                "msg": "Field required",
                                "input": None,
                            }
                        )
                    else:
                        kwargs[name] = default
                    continue
                try:
                    kwargs[name] = extra.validate_strings(raw)
                except pydantic.ValidationError as exc:
                    errors.extend(_located(exc.errors(include_url=False), "query", name))
        if errors:
            # FastAPI reports every invalid input of a request at once.
            raise HTTPException(422, errors)
        return kwargs


def compile_route(
    methods: list[str],
    path: str,
    func: Callable[..., Any],
    *,
    status_code: int = 200,
    timeout: float | None = None,
) -> Route:
    """Analyses ``func`` for ``path`` and picks the cheapest way to call it."""
    declared = [(m.group(1), bool(m.group(2))) for m in _PARAM.finditer(path)]
    path_names = {name for name, _ in declared}
    hints = typing.get_type_hints(func)
    params = [_path_param_spec(name, hints.get(name, str), is_path) for name, is_path in declared]
    signature = list(inspect.signature(func).parameters.values())
    is_async = inspect.iscoroutinefunction(func)
    names = [p.name for p in signature]
    if not signature:
        return Route(methods, path, func, is_async, "none", params, status_code, timeout)
    if names == [name for name, _ in declared]:
        return Route(methods, path, func, is_async, "path", params, status_code, timeout)
    extract = _Extractor(func, path_names)
    if is_async:

        async def call_async(native: Any) -> Any:
            return await func(**extract(native))

        wrapper: Callable[..., Any] = call_async
    else:

        def call_sync(native: Any) -> Any:
            return func(**extract(native))

        wrapper = call_sync
    return Route(
        methods,
        path,
        wrapper,
        is_async,
        "request",
        params,
        status_code,
        timeout,
        buffer_body=extract.reads_body,
    )
