"""The OpenAPI 3.1 document of an app, built once, when the server starts, and then
served by Rust as a constant (see :meth:`data_bridge.App.route_table`).

It follows FastAPI's rules, so an app documents itself the same on either framework:
operation ids, summaries, parameters, request bodies, responses,
``components/schemas`` from pydantic and ``components/securitySchemes`` from the
security dependencies. The Swagger UI and ReDoc pages that read it are
in :mod:`data_bridge.openapi.docs`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from data_bridge.routing import APIRoute

from .operations import describe, operation
from .schemas import VALIDATION_ERROR_SCHEMAS, generate

__all__ = ["openapi_document"]

OPENAPI_VERSION = "3.1.0"


def _without_none(value: Any) -> Any:
    # FastAPI leaves out every null-valued key (``"default": null`` among them).
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def openapi_document(
    routes: Sequence[APIRoute],
    *,
    title: str,
    version: str,
    summary: str | None = None,
    description: str | None = None,
    terms_of_service: str | None = None,
    contact: dict[str, Any] | None = None,
    license_info: dict[str, Any] | None = None,
    servers: list[dict[str, Any]] | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document describing ``routes`` (those with ``include_in_schema``)."""
    info: dict[str, Any] = {"title": title}
    if summary:
        info["summary"] = summary
    if description:
        info["description"] = description
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    info["version"] = version
    docs = [describe(r) for r in routes if r.include_in_schema]
    # Bodies, then responses, then parameters: the order FastAPI generates them in,
    # which decides the names of models that share a name.
    fields = [d.body for d in docs if d.body is not None]
    for d in docs:
        if d.response is not None:
            fields.append(d.response)
        fields.extend(d.extra_responses.values())
    fields.extend(s for d in docs for _, s in d.parameters)
    schemas, definitions = generate(fields)
    paths: dict[str, dict[str, Any]] = {}
    # By scheme name; a later scheme of the same name replaces an earlier one.
    security_schemes: dict[str, Any] = {}
    for d in docs:
        for scheme, _ in d.security:
            security_schemes[scheme.scheme_name] = copy.deepcopy(scheme.model)
        for method in d.route.methods:
            op, invalid = operation(d, method, schemas)
            paths.setdefault(d.path, {})[method.lower()] = op
            if invalid:
                definitions.update(VALIDATION_ERROR_SCHEMAS)
    document: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": info}
    if servers:
        document["servers"] = servers
    document["paths"] = paths
    components: dict[str, Any] = {}
    if security_schemes:
        components["securitySchemes"] = security_schemes
    if definitions:
        components["schemas"] = dict(sorted(definitions.items()))
    if components:
        document["components"] = components
    if tags:
        document["tags"] = tags
    return _without_none(document)  # type: ignore[no-any-return]
