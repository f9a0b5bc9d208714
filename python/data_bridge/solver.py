"""Solving a route for one request: read each parameter from the request, validate it
with its precompiled ``TypeAdapter``, run the dependencies (once each per request unless
``use_cache=False``) and collect every validation error, located as FastAPI locates
them (``["query", "limit"]``, ``["body", "price"]``).

A form body (:class:`~data_bridge.datastructures.FormData`) is read as FastAPI reads
it: each body parameter by its name, an empty text field or an empty file input as
absent, a model's fields (and any other field sent) collected into one object.

Solving is written once, as coroutines; a route whose dependencies are all plain
functions drives them with :func:`run_sync`, since nothing in them ever suspends.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Coroutine
from typing import Any

import pydantic

from data_bridge import jsonparser
from data_bridge.background import BackgroundTasks
from data_bridge.datastructures import FormData, UploadFile
from data_bridge.dependencies import Dependant, FormModel, ParamField, SecurityScopes, analyze
from data_bridge.exceptions import RequestValidationError
from data_bridge.requests import HTTPConnection, Request
from data_bridge.responses import Response

__all__ = ["UNSET", "Context", "Overrides", "read_body", "run_sync", "solve"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


def located(exc: pydantic.ValidationError, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)]


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never suspends (only sync code underneath)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a route without async dependencies awaited something")


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def read_body(request: Request) -> Any:
    """The request body for body parameters: parsed JSON when the content type says
    JSON, the raw bytes under any other content type, ``UNSET`` when empty. Malformed
    (or too deeply nested) JSON raises FastAPI's ``json_invalid`` validation error."""
    raw = request._native.body_bytes()
    if not raw:
        return UNSET
    content_type = request.headers.get("content-type")
    if not content_type or not _is_json(content_type):
        return raw
    try:
        return jsonparser.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from None


class Context:
    """What solving one request shares between the route and its dependencies."""

    __slots__ = (
        "_response",
        "background",
        "body",
        "cache",
        "embed",
        "overrides",
        "request",
        "stack",
    )

    def __init__(
        self,
        request: HTTPConnection,
        body: Any,
        embed: bool,
        stack: contextlib.AsyncExitStack | None,
        overrides: Overrides | None = None,
    ) -> None:
        self.request = request
        self.overrides = overrides
        self.body = body
        self.embed = embed
        self.stack = stack
        self.cache: dict[Any, Any] = {}
        self._response: Response | None = None
        self.background: BackgroundTasks | None = None

    @property
    def response(self) -> Response:
        """The ``Response`` handed to parameters that ask for one; its headers, cookies
        and status (if set) are applied to the reply."""
        if self._response is None:
            self._response = Response()
            self._response.status_code = None  # type: ignore[assignment]
        return self._response

    @property
    def sub_response(self) -> Response | None:
        return self._response


class Overrides:
    """An app's ``dependency_overrides`` as one route sees them: read at each request
    (tests change them between requests), each replacement analysed once."""

    __slots__ = ("_analysed", "mapping", "path_names")

    def __init__(self, mapping: dict[Any, Any], path_names: set[str]) -> None:
        self.mapping = mapping
        self.path_names = path_names
        self._analysed: dict[tuple[Any, bool, tuple[str, ...]], Dependant] = {}

    def resolve(self, dep: Dependant) -> Dependant:
        """``dep``, or what replaces it."""
        replacement = self.mapping.get(dep.call) if self.mapping else None
        if replacement is None:
            return dep
        # The replacement sees the scopes in force where it stands in.
        scopes = dep.scopes
        key = (replacement, dep.use_cache, tuple(scopes))
        found = self._analysed.get(key)
        if found is None:
            found = analyze(replacement, self.path_names, dep.use_cache, parent_scopes=scopes)
            self._analysed[key] = found
        return found

    @property
    def any_async(self) -> bool:
        return any(self.resolve_call(c).needs_async for c in list(self.mapping))

    def resolve_call(self, call: Any) -> Dependant:
        return self.resolve(Dependant(call=call))


def _raw(f: ParamField, ctx: Context) -> tuple[Any, tuple[Any, ...]]:
    source = f.source
    if source == "body":
        if not ctx.embed:
            return ctx.body, ("body",)
        loc = ("body", f.alias)
        body = ctx.body
        if body is UNSET or isinstance(body, bytes):
            return UNSET, loc
        if not isinstance(body, dict):
            return _NOT_OBJECT, loc
        return body.get(f.alias, UNSET), loc
    loc = (source, f.alias)
    request = ctx.request
    if source == "path":
        return request.path_params.get(f.alias, UNSET), loc
    if source == "cookie":
        return request.cookies.get(f.alias, UNSET), loc
    values = request.query_params if source == "query" else request.headers
    if f.is_sequence:
        many = values.getlist(f.alias)
        return (many if many else UNSET), loc
    value = values.get(f.alias)
    return (UNSET if value is None else value), loc


_NOT_OBJECT: Any = _Unset()


def _is_empty_file(value: Any) -> bool:
    # What a browser sends for a file input left empty.
    return isinstance(value, UploadFile) and value.filename == "" and value.size == 0


def _form_entry(form: FormData, name: str, is_sequence: bool) -> Any:
    """The value sent under ``name``, ``UNSET`` when absent or empty."""
    if is_sequence:
        many = [v for v in form.getlist(name) if not _is_empty_file(v)]
        return many if many else UNSET
    value = form.get(name)
    if value is None or value == "" or _is_empty_file(value):
        return UNSET
    return value


async def _content(upload: UploadFile) -> bytes:
    # Read without moving the file: another parameter may receive the same upload.
    position = upload.file.tell()
    try:
        return await upload.read()
    finally:
        await upload.seek(position)


def _form_object(model: FormModel, form: FormData) -> Any:
    """The object a form model validates: its fields, then every other field sent (a
    repeated one as a list), for the model's ``extra`` policy to judge."""
    value: dict[str, Any] = {}
    known: set[str] = set()
    for names, is_sequence in model.fields:
        known.update(names)
        for name in names:
            entry = _form_entry(form, name, is_sequence)
            if entry is not UNSET:
                value[name] = entry
                break
    if model.optional and not known.intersection(form):
        extra = model.model.model_config.get("extra")
        if extra not in ("allow", "forbid") or not len(form):
            return UNSET
    others: dict[str, list[Any]] = {}
    for name, item in form.multi_items():
        if name not in known:
            others.setdefault(name, []).append(item)
    for name, items in others.items():
        value[name] = items[0] if len(items) == 1 else items
    return value


async def _form_raw(f: ParamField, form: FormData) -> tuple[Any, tuple[Any, ...]]:
    if f.form_model is not None:
        return _form_object(f.form_model, form), ("body",)
    value = _form_entry(form, f.alias, f.is_sequence)
    if f.file_bytes:
        if isinstance(value, UploadFile):
            value = await _content(value)
        elif isinstance(value, list):
            value = [await _content(v) if isinstance(v, UploadFile) else v for v in value]
    return value, ("body", f.alias)


def _validate(f: ParamField, ctx: Context, errors: list[dict[str, Any]]) -> Any:
    return _check(f, *_raw(f, ctx), errors)


def _check(f: ParamField, value: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
    if value is _NOT_OBJECT:
        errors.append(missing(loc))
        return UNSET
    if value is UNSET:
        if f.required:
            errors.append(missing(loc))
            return UNSET
        value = copy.deepcopy(f.default())
        if not f.info.validate_default:
            return value
    try:
        return f.adapter.validate_python(value, from_attributes=True)
    except pydantic.ValidationError as exc:
        errors.extend(located(exc, loc))
        return UNSET


async def _call(dep: Dependant, kwargs: dict[str, Any], ctx: Context) -> Any:
    if dep.is_gen or dep.is_async_gen:
        # Routes whose dependencies need cleanup always solve with an exit stack.
        assert ctx.stack is not None
        if dep.is_gen:
            return ctx.stack.enter_context(contextlib.contextmanager(dep.call)(**kwargs))
        manager = contextlib.asynccontextmanager(dep.call)(**kwargs)
        return await ctx.stack.enter_async_context(manager)
    if dep.is_async:
        return await dep.call(**kwargs)
    return dep.call(**kwargs)


async def solve(dep: Dependant, ctx: Context) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The keyword arguments for ``dep.call`` and every validation error found; the
    dependencies whose own inputs are valid have run."""
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, sub in dep.dependencies:
        # Keyed by what was declared, replaced or not (as FastAPI).
        key = sub.cache_key
        if ctx.overrides is not None:
            sub = ctx.overrides.resolve(sub)
        if sub.use_cache and key in ctx.cache:
            value = ctx.cache[key]
        else:
            sub_values, sub_errors = await solve(sub, ctx)
            if sub_errors:
                errors.extend(sub_errors)
                continue
            value = await _call(sub, sub_values, ctx)
            ctx.cache[key] = value
        if name is not None:
            values[name] = value
    form = ctx.body if isinstance(ctx.body, FormData) else None
    for f in dep.fields:
        if form is not None and f.source == "body":
            value = _check(f, *await _form_raw(f, form), errors)
        else:
            value = _validate(f, ctx, errors)
        if value is not UNSET:
            values[f.name] = value
    if dep.request_name is not None:
        values[dep.request_name] = ctx.request
    if dep.response_name is not None:
        values[dep.response_name] = ctx.response
    if dep.background_name is not None:
        if ctx.background is None:
            ctx.background = BackgroundTasks()
        values[dep.background_name] = ctx.background
    if dep.security_scopes_name is not None:
        values[dep.security_scopes_name] = SecurityScopes(dep.scopes)
    return values, errors
