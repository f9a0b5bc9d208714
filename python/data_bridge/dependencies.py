"""``Depends`` and the analysis of a callable's signature into a :class:`Dependant`:
which parameter comes from the path, the query string, a header, a cookie, the body
(JSON or a form), another dependency, or is the injected ``Request`` (or ``WebSocket``),
``Response``, ``BackgroundTasks`` or ``SecurityScopes``; and the OAuth2 scopes that
``Security(..., scopes=[...])`` requires of each dependency below it.

The analysis runs once, when a route is declared; it compiles one pydantic
``TypeAdapter`` per parameter (validation then runs in pydantic-core, and errors carry
exactly the ``type``/``msg``/``input``/``ctx`` FastAPI reports). Solving a dependant
for a request lives in :mod:`data_bridge.solver`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from data_bridge.background import BackgroundTasks
from data_bridge.datastructures import UploadFile
from data_bridge.params import Body, File, Form, Header, Param, Path, Query
from data_bridge.requests import HTTPConnection
from data_bridge.responses import Response

__all__ = [
    "Dependant",
    "Depends",
    "FormModel",
    "ParamField",
    "Security",
    "SecurityBase",
    "SecurityScopes",
    "analyze",
    "analyze_depends",
    "embed_body",
    "is_form_body",
]

_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3, "body": 4}
_SEQUENCES = (list, set, frozenset, tuple, collections.abc.Sequence, collections.abc.Set)


class Depends:
    """Declares that a parameter's value is what ``dependency`` returns (or yields).

    ``dependency`` may itself declare parameters and dependencies. Within one request a
    dependency runs once and its value is reused, unless ``use_cache=False``.
    """

    def __init__(
        self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True
    ) -> None:
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", type(self.dependency).__name__)
        return f"Depends({name})"


class Security(Depends):
    """``Depends`` for a security scheme (or a dependency that uses one), with the
    OAuth2 ``scopes`` it requires: they are added to those of the dependencies above
    it, documented in the operation's ``security`` and given to ``SecurityScopes``."""

    def __init__(
        self,
        dependency: Callable[..., Any] | None = None,
        *,
        scopes: Sequence[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        self.scopes = list(scopes or [])


class SecurityScopes:
    """Declared as a dependency's parameter type, receives the OAuth2 scopes required by
    the ``Security(...)`` declarations that lead to that dependency."""

    def __init__(self, scopes: list[str] | None = None) -> None:
        self.scopes: list[str] = scopes or []
        #: The scopes separated by spaces, as an OAuth2 ``scope`` parameter has them.
        self.scope_str = " ".join(self.scopes)


class SecurityBase:
    """The base of security schemes (:mod:`data_bridge.security`): a dependency that is
    an instance of it is documented under ``components.securitySchemes`` as ``model``
    (an OpenAPI Security Scheme Object), named ``scheme_name``, and required by the
    operations that depend on it."""

    model: dict[str, Any]
    scheme_name: str


@dataclass
class FormModel:
    """A pydantic model whose fields are form fields (``Annotated[Model, Form()]``)."""

    model: type[pydantic.BaseModel]
    # Each model field: the names it may be sent under, and whether it repeats.
    fields: list[tuple[list[str], bool]]
    # ``Model | None``: the parameter is ``None`` when none of its fields was sent.
    optional: bool


@dataclass
class ParamField:
    """One value read from the request and validated by its own ``TypeAdapter``."""

    name: str
    source: str
    alias: str
    adapter: pydantic.TypeAdapter[Any]
    info: FieldInfo
    is_sequence: bool
    embed: bool | None = None
    # The declared type with its non-marker ``Annotated`` metadata (for documentation).
    annotation: Any = None
    # ``File()`` typed ``bytes`` (or a list of them): given the files' content.
    file_bytes: bool = False
    form_model: FormModel | None = None

    @property
    def required(self) -> bool:
        return self.info.is_required()

    def default(self) -> Any:
        return self.info.get_default(call_default_factory=True)


@dataclass
class Dependant:
    """A callable and what its parameters need."""

    call: Callable[..., Any]
    fields: list[ParamField] = field(default_factory=list)
    dependencies: list[tuple[str | None, Dependant]] = field(default_factory=list)
    request_name: str | None = None
    response_name: str | None = None
    background_name: str | None = None
    security_scopes_name: str | None = None
    use_cache: bool = True
    # The scopes its own ``Security`` declares, and those of the declarations above it.
    own_scopes: list[str] = field(default_factory=list)
    parent_scopes: list[str] = field(default_factory=list)
    is_async: bool = False
    is_gen: bool = False
    is_async_gen: bool = False

    def walk(self) -> collections.abc.Iterator[Dependant]:
        """This dependant and every sub-dependency, depth first."""
        for _, sub in self.dependencies:
            yield from sub.walk()
        yield self

    @property
    def needs_async(self) -> bool:
        return any(d.is_async or d.is_async_gen for d in self.walk())

    @property
    def scopes(self) -> list[str]:
        """The scopes in force here: those above, then its own not yet among them."""
        scopes = list(self.parent_scopes)
        for scope in self.own_scopes:
            if scope not in scopes:
                scopes.append(scope)
        return scopes

    # Both are read once analysis is over (and its tree no longer changes).
    @functools.cached_property
    def uses_scopes(self) -> bool:
        """Whether scopes can change what it does: it declares or receives some, is a
        security scheme, or something below it does."""
        return bool(
            self.own_scopes
            or self.security_scopes_name is not None
            or isinstance(self.call, SecurityBase)
            or any(sub.uses_scopes for _, sub in self.dependencies)
        )

    @functools.cached_property
    def cache_key(self) -> tuple[Any, tuple[str, ...]]:
        """What identifies its value within a request: the callable, and the scopes in
        force when they can matter (as FastAPI: the same dependency required with other
        scopes runs again)."""
        scopes = tuple(sorted(set(self.scopes))) if self.uses_scopes else ()
        return self.call, scopes


def _strip_optional(t: Any) -> Any:
    if get_origin(t) in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if get_origin(t) is Annotated:
        return _strip_optional(get_args(t)[0])
    return t


def _is_sequence(t: Any) -> bool:
    t = _strip_optional(t)
    origin = get_origin(t) or t
    return (
        isinstance(origin, type)
        and issubclass(origin, _SEQUENCES)
        and not issubclass(origin, (str, bytes))
    )


def _is_complex(t: Any) -> bool:
    if get_origin(t) is Annotated:
        return _is_complex(get_args(t)[0])
    if get_origin(t) in (Union, types.UnionType):
        return any(_is_complex(a) for a in get_args(t))
    origin = get_origin(t) or t
    if not isinstance(origin, type):
        return False
    return (
        issubclass(origin, (pydantic.BaseModel, collections.abc.Mapping, *_SEQUENCES))
        and not issubclass(origin, (str, bytes))
    ) or dataclasses.is_dataclass(origin)


def _is_query_type(t: Any) -> bool:
    """Scalars and sequences of scalars come from the query string; the rest is body."""
    if not _is_complex(t):
        return True
    if _is_sequence(t):
        inner = _strip_optional(t)
        return all(not _is_complex(a) for a in get_args(inner) if a is not Ellipsis)
    return False


def _is_type(t: Any, cls: type) -> bool:
    return isinstance(t, type) and issubclass(t, cls)


def _union_args(t: Any) -> tuple[Any, ...]:
    return get_args(t) if get_origin(t) in (Union, types.UnionType) else (t,)


def _is_of(t: Any, cls: type) -> bool:
    """``cls``, or a union with it (``UploadFile | None``), or a sequence of it."""
    for arg in _union_args(t):
        if _is_type(arg, cls):
            return True
        if _is_sequence(arg) and any(_is_type(a, cls) for a in get_args(_strip_optional(arg))):
            return True
    return False


def _form_model(t: Any) -> FormModel | None:
    args = _union_args(t)
    models = [a for a in args if a is not type(None)]
    if len(models) != 1 or not _is_type(models[0], pydantic.BaseModel):
        return None
    model = models[0]
    fields = []
    for name, info in model.model_fields.items():
        choices = info.validation_alias
        if isinstance(choices, pydantic.AliasChoices) and all(
            isinstance(c, str) for c in choices.choices
        ):
            names = [str(c) for c in choices.choices]
        elif isinstance(choices, str):
            names = [choices]
        else:
            names = [info.alias or name]
        fields.append((names, _is_sequence(info.annotation)))
    return FormModel(model, fields, optional=len(args) > 1)


def _injected(t: Any, cls: type) -> bool:
    return isinstance(t, type) and issubclass(t, cls)


# The parameters given by the framework, not the request data: each annotation with the
# `Dependant` field that records the parameter's name. `HTTPConnection` stands for a
# Request, or a WebSocket on a WebSocket route: the connection itself.
_INJECTED: tuple[tuple[type, str], ...] = (
    (SecurityScopes, "security_scopes_name"),
    (HTTPConnection, "request_name"),
    (Response, "response_name"),
    (BackgroundTasks, "background_name"),
)


def _unwrap_call(call: Callable[..., Any]) -> Callable[..., Any]:
    """The function whose flavour (async, generator) decides how ``call`` runs."""
    if inspect.isroutine(call) or inspect.isclass(call):
        return call
    dunder = getattr(call, "__call__", None)  # noqa: B004 - instances with __call__
    return dunder if dunder is not None else call


def analyze(
    call: Callable[..., Any],
    path_names: set[str],
    use_cache: bool = True,
    *,
    own_scopes: Sequence[str] = (),
    parent_scopes: Sequence[str] = (),
) -> Dependant:
    """Reads ``call``'s signature into a :class:`Dependant`; raises ``TypeError`` on a
    parameter it cannot place. ``own_scopes`` are those its ``Security`` declares,
    ``parent_scopes`` those declared above it."""
    flavour = _unwrap_call(call)
    dep = Dependant(
        call=call,
        use_cache=use_cache,
        own_scopes=list(own_scopes),
        parent_scopes=list(parent_scopes),
        is_async=inspect.iscoroutinefunction(flavour),
        is_gen=inspect.isgeneratorfunction(flavour),
        is_async_gen=inspect.isasyncgenfunction(flavour),
    )
    target = call.__init__ if inspect.isclass(call) else flavour  # type: ignore[misc]
    hints = typing.get_type_hints(target, include_extras=True)
    for p in inspect.signature(call).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, Any)
        marker: Any = None
        extra: list[Any] = []
        if get_origin(annotation) is Annotated:
            annotation, *meta = get_args(annotation)
            for m in meta:
                if isinstance(m, (Param, Depends)):
                    marker = m
                else:
                    extra.append(m)
        default = p.default
        if isinstance(default, (Param, Depends)):
            marker, default = default, p.empty
        if isinstance(marker, Depends):
            dep.dependencies.append((p.name, analyze_depends(marker, path_names, annotation, dep)))
            continue
        if marker is None:
            injected = next((name for cls, name in _INJECTED if _injected(annotation, cls)), None)
            if injected is not None:
                setattr(dep, injected, p.name)
                continue
            if p.name in path_names:
                marker = Path()
            elif _is_of(annotation, UploadFile):
                marker = File()
            elif _is_query_type(annotation):
                marker = Query()
            else:
                marker = Body()
        dep.fields.append(_param_field(p.name, annotation, extra, marker, default))
    # FastAPI validates (and reports) path, query, header, cookie, then body.
    dep.fields.sort(key=lambda f: _ORDER[f.source])
    return dep


def analyze_depends(
    marker: Depends,
    path_names: set[str],
    annotation: Any = None,
    parent: Dependant | None = None,
) -> Dependant:
    """The dependant a ``Depends``/``Security`` declares: under ``parent`` (a dependency
    or endpoint, which passes its scopes down), or of a route when ``parent`` is None.
    ``Depends()`` without a callable depends on ``annotation``."""
    own = marker.scopes if isinstance(marker, Security) else ()
    # Passed down whole, as FastAPI does; ``Dependant.scopes`` drops the repeats.
    above = [*parent.parent_scopes, *parent.own_scopes] if parent is not None else []
    call = marker.dependency or annotation
    return analyze(call, path_names, marker.use_cache, own_scopes=own, parent_scopes=above)


def _param_field(
    name: str, annotation: Any, extra: list[Any], marker: Param, default: Any
) -> ParamField:
    info = FieldInfo.merge_field_infos(marker)
    if default is not inspect.Parameter.empty:
        info.default = default
    if isinstance(marker, Path):
        info.default = PydanticUndefined
    full = Annotated[(annotation, *extra, info)] if extra else Annotated[annotation, info]
    alias = marker.alias or name
    if isinstance(marker, Header) and marker.alias is None and marker.convert_underscores:
        alias = name.replace("_", "-")
    return ParamField(
        name=name,
        source=marker.source,
        alias=alias,
        adapter=pydantic.TypeAdapter(full),
        info=info,
        is_sequence=_is_sequence(annotation),
        embed=marker.embed if isinstance(marker, Body) else None,
        annotation=Annotated[(annotation, *extra)] if extra else annotation,
        file_bytes=isinstance(marker, File) and _is_of(annotation, bytes),
        form_model=(
            _form_model(annotation) if isinstance(marker, Form) and not marker.embed else None
        ),
    )


def is_form_body(bodies: list[ParamField]) -> bool:
    """Whether the body is read as a form: some body parameter is a ``Form``/``File``."""
    return any(isinstance(f.info, Form) for f in bodies)


def embed_body(bodies: list[ParamField]) -> bool:
    """Whether the body is an object holding each body parameter under its name (else
    it is the one parameter's value): with several parameters, with ``embed=True``,
    and for a form, unless its one parameter is a model of the form's fields."""
    if not bodies:
        return False
    first = bodies[0]
    if len({f.name for f in bodies}) > 1 or first.embed:
        return True
    return isinstance(first.info, Form) and first.form_model is None


def flat_body_fields(dependant: Dependant) -> list[ParamField]:
    """Every body parameter of a route and its dependencies."""
    return [f for d in dependant.walk() for f in d.fields if f.source == "body"]


def path_only(dependant: Dependant) -> bool:
    """Whether ``dependant`` needs nothing but its path parameters."""
    return (
        not dependant.dependencies
        and dependant.request_name is None
        and dependant.response_name is None
        and dependant.background_name is None
        and dependant.security_scopes_name is None
        and all(f.source == "path" for f in dependant.fields)
    )
