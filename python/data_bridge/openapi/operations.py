"""One route as an OpenAPI operation: its id, summary and description, security
requirements, parameters, request body and responses, following FastAPI's rules so that the same app documents
itself the same way on either framework.

:func:`describe` gathers what needs a JSON schema (as
:class:`~data_bridge.openapi.schemas.SchemaField`); once every route's schemas are
generated together, :func:`operation` writes the operation for one method.
"""

from __future__ import annotations

import copy
import dataclasses
import http
import inspect
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import pydantic

from data_bridge.dependencies import Dependant, ParamField, SecurityBase, embed_body
from data_bridge.params import Body, File, Form
from data_bridge.responses import JSONResponse, Response
from data_bridge.routing import DEFAULT, APIRoute

from .schemas import REF_PREFIX, SchemaField

__all__ = [
    "Documented",
    "deep_update",
    "describe",
    "operation",
    "path_format",
    "security_requirements",
]

_CONVERTER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*):[a-zA-Z_]+}")
_METHODS_WITH_BODY = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}
_PARAM_SOURCES = ("path", "query", "header", "cookie")
_STATUS_RANGES = {
    "1XX": "Information",
    "2XX": "Success",
    "3XX": "Redirection",
    "4XX": "Client Error",
    "5XX": "Server Error",
    "DEFAULT": "Default Response",
}


def path_format(path: str) -> str:
    """The route's path as OpenAPI writes it: ``/files/{name:path}`` → ``/files/{name}``."""
    return _CONVERTER.sub(r"{\1}", path)


def deep_update(target: dict[Any, Any], update: dict[Any, Any]) -> None:
    """Merges ``update`` into ``target``: nested dicts merge, lists concatenate, anything
    else replaces."""
    for key, value in update.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            deep_update(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            target[key] = current + value
        else:
            target[key] = value


@dataclass
class Documented:
    """A route and the schema fields its operations need."""

    route: APIRoute
    path: str
    unique_id: str
    parameters: list[tuple[ParamField, SchemaField]] = field(default_factory=list)
    body: SchemaField | None = None
    body_required: bool = False
    body_media_type: str = "application/json"
    response: SchemaField | None = None
    extra_responses: dict[int | str, SchemaField] = field(default_factory=dict)
    # Each security scheme in its dependency tree, with the scopes required of it.
    security: list[tuple[SecurityBase, list[str]]] = field(default_factory=list)


def _root(route: APIRoute) -> Dependant:
    # The route's own dependencies come first, as when it runs.
    return dataclasses.replace(
        route.dependant,
        dependencies=[*((None, d) for d in route.route_dependants), *route.dependant.dependencies],
    )


def _preorder(root: Dependant, *, skip_repeats: bool) -> list[tuple[Dependant, list[str]]]:
    """A dependant, then each dependency in declaration order, depth first, each with
    the scopes required of it from above. With ``skip_repeats``, a dependency is visited
    once per :attr:`~Dependant.cache_key` (once, unless scopes matter to it)."""
    seen: set[Any] = set()
    order: list[tuple[Dependant, list[str]]] = []
    stack: list[tuple[Dependant, list[str]]] = [(root, [])]
    while stack:
        dep, above = stack.pop()
        if skip_repeats:
            if dep.cache_key in seen:
                continue
            seen.add(dep.cache_key)
        scopes = list(above)
        for scope in dep.scopes:
            if scope not in scopes:
                scopes.append(scope)
        order.append((dep, scopes))
        stack.extend((sub, scopes) for _, sub in reversed(dep.dependencies))
    return order


def _return_annotation(func: Any) -> Any:
    try:
        annotation = inspect.signature(func, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):
        return None
    return None if annotation is inspect.Signature.empty else annotation


def _response_model(route: APIRoute) -> Any:
    """The documented response type: ``response_model``, else the return annotation
    unless it is a ``Response``."""
    if route.response_model is not DEFAULT:
        return route.response_model or None
    annotation = _return_annotation(route.endpoint)
    if isinstance(annotation, type) and issubclass(annotation, Response):
        return None
    return annotation or None


def _media_type(bodies: list[ParamField], embed: bool) -> str:
    """The request body's media type, chosen as FastAPI chooses it."""
    if not embed:
        info = bodies[0].info
        return info.media_type if isinstance(info, Body) else "application/json"
    if any(isinstance(f.info, File) for f in bodies):
        return "multipart/form-data"
    forms = [f.info.media_type for f in bodies if isinstance(f.info, Form)]
    if forms:
        if "multipart/form-data" in forms:
            return "multipart/form-data"
        return forms[0] if len(set(forms)) == 1 else "application/x-www-form-urlencoded"
    media_types = {f.info.media_type for f in bodies if isinstance(f.info, Body)}
    return media_types.pop() if len(media_types) == 1 else "application/json"


def _body_field(bodies: list[ParamField], unique_id: str) -> tuple[SchemaField, bool, str]:
    """The request body's schema field, whether it is required and its media type. Several
    body parameters (or an embedded one, or form fields) are one object,
    ``Body_<operation id>``."""
    first = bodies[0]
    embed = embed_body(bodies)
    media_type = _media_type(bodies, embed)
    if not embed:
        schema_field = SchemaField(first.alias, first.adapter.core_schema, title=first.info.title)
        return schema_field, first.required, media_type
    members = {f.name: (f.annotation, copy.copy(f.info)) for f in bodies}
    model = pydantic.create_model(f"Body_{unique_id}", **members)  # type: ignore[call-overload]
    required = any(f.required for f in bodies)
    annotation: Any = model if required else Annotated[model, pydantic.Field(default=None)]
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    return SchemaField("body", adapter.core_schema), required, media_type


def describe(route: APIRoute) -> Documented:
    """What documenting ``route`` needs, its schemas not yet generated."""
    path = path_format(route.path)
    unique_id = route.operation_id or (
        re.sub(r"\W", "_", f"{route.name}{path}") + "_" + route.methods[0].lower()
    )
    doc = Documented(route, path, unique_id)
    root = _root(route)
    visited = _preorder(root, skip_repeats=True)
    for dep, scopes in visited[1:]:
        if isinstance(dep.call, SecurityBase):
            doc.security.append((dep.call, scopes))
    for source in _PARAM_SOURCES:
        for dep, _ in visited:
            for f in dep.fields:
                if f.source == source:
                    # Titled by the name the request carries (``x-token`` → "X-Token").
                    schema_field = SchemaField(f.alias, f.adapter.core_schema, title=f.info.title)
                    doc.parameters.append((f, schema_field))
    bodies = [
        f for d, _ in _preorder(root, skip_repeats=False) for f in d.fields if f.source == "body"
    ]
    if bodies:
        doc.body, doc.body_required, doc.body_media_type = _body_field(bodies, unique_id)
    model = _response_model(route)
    if model is not None:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(model)
        doc.response = SchemaField(f"Response_{unique_id}", adapter.core_schema, "serialization")
    for code, spec in route.responses.items():
        if spec.get("model"):
            extra: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(spec["model"])
            doc.extra_responses[code] = SchemaField(
                f"Response_{code}_{unique_id}", extra.core_schema, "serialization"
            )
    return doc


def _parameters(
    doc: Documented, schemas: dict[SchemaField, dict[str, Any]]
) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    required: dict[tuple[str, str], dict[str, Any]] = {}
    for param, schema_field in doc.parameters:
        if not getattr(param.info, "include_in_schema", True):
            continue
        entry: dict[str, Any] = {
            "name": param.alias,
            "in": param.source,
            "required": param.required,
            "schema": schemas[schema_field],
        }
        if param.info.description:
            entry["description"] = param.info.description
        if param.info.deprecated:
            entry["deprecated"] = True
        # A parameter declared twice (by two dependencies) is documented once, where
        # it first appears: by its last declaration, or its last required one.
        found[(param.source, param.alias)] = entry
        if param.required:
            required[(param.source, param.alias)] = entry
    found.update(required)
    return list(found.values())


def security_requirements(doc: Documented) -> list[dict[str, list[str]]]:
    """The operation's ``security``: one requirement per scheme name, in the order the
    schemes first appear, with the scopes required of each (merged, first seen first)."""
    by_name: dict[str, list[str]] = {}
    for scheme, scopes in doc.security:
        merged = by_name.setdefault(scheme.scheme_name, [])
        for scope in scopes:
            if scope not in merged:
                merged.append(scope)
    return [{name: scopes} for name, scopes in by_name.items()]


def _default_status(response_class: type[Response]) -> str:
    param = inspect.signature(response_class.__init__).parameters.get("status_code")
    default = param.default if param is not None else None
    return str(default if isinstance(default, int) else 200)


def _body_allowed(status: int | None) -> bool:
    return status is None or not (status < 200 or status in (204, 205, 304))


def operation(
    doc: Documented, method: str, schemas: dict[SchemaField, dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The operation for ``method`` of a documented route, and whether it refers to the
    validation error schemas."""
    route = doc.route
    op: dict[str, Any] = {}
    if route.tags:
        op["tags"] = list(route.tags)
    op["summary"] = route.summary or str(route.name).replace("_", " ").title()
    description = route.description or inspect.cleandoc(route.endpoint.__doc__ or "")
    description = description.split("\f")[0].strip()
    if description:
        op["description"] = description
    op["operationId"] = route.operation_id or doc.unique_id
    if route.deprecated:
        op["deprecated"] = route.deprecated
    requirements = security_requirements(doc)
    if requirements:
        op["security"] = requirements
    parameters = _parameters(doc, schemas)
    if parameters:
        op["parameters"] = parameters
    if method in _METHODS_WITH_BODY and doc.body is not None:
        body: dict[str, Any] = {}
        if doc.body_required:
            body["required"] = True
        body["content"] = {doc.body_media_type: {"schema": schemas[doc.body]}}
        op["requestBody"] = body
    responses: dict[str, Any] = {}
    status = (
        str(route.status_code)
        if route.status_code is not None
        else _default_status(route.response_class)
    )
    responses[status] = {"description": route.response_description}
    media_type = route.response_class.media_type
    if _body_allowed(route.status_code) and media_type:
        response_schema: dict[str, Any] = {"type": "string"}
        if issubclass(route.response_class, JSONResponse):
            response_schema = schemas[doc.response] if doc.response is not None else {}
        responses[status]["content"] = {media_type: {"schema": response_schema}}
    for code, spec in route.responses.items():
        extra = copy.deepcopy(spec)
        extra.pop("model", None)
        key = str(code).upper()
        if key == "DEFAULT":
            key = "default"
        entry = responses.setdefault(key, {})
        schema_field = doc.extra_responses.get(code)
        if schema_field is not None:
            content = extra.setdefault("content", {}).setdefault(
                media_type or "application/json", {}
            )
            deep_update(content.setdefault("schema", {}), schemas[schema_field])
        status_text = _STATUS_RANGES.get(str(code).upper())
        if status_text is None:
            try:
                status_text = http.HTTPStatus(int(code)).phrase
            except ValueError:
                status_text = None
        description = (
            extra.get("description")
            or entry.get("description")
            or status_text
            or "Additional Response"
        )
        deep_update(entry, extra)
        entry["description"] = description
    op["responses"] = responses
    invalid = False
    if (doc.parameters or doc.body is not None) and not any(
        s in responses for s in ("422", "4XX", "default")
    ):
        responses["422"] = {
            "description": "Validation Error",
            "content": {
                "application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}
            },
        }
        invalid = True
    if route.openapi_extra:
        deep_update(op, copy.deepcopy(route.openapi_extra))
    return op, invalid
