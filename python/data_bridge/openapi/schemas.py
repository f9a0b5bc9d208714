"""JSON schemas for an OpenAPI document: every parameter, body and response of the
documented routes is a :class:`SchemaField`; :func:`generate` turns them all into
schemas in one pass of pydantic's generator, so that a model used in several places is
one entry of ``components/schemas`` and is referenced by ``$ref``.

Models whose input and output schemas differ (defaults, computed fields, serializers)
come out as ``Name-Input`` and ``Name-Output``, as pydantic names them in one pass over
validation-mode and serialization-mode schemas; FastAPI documents them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = [
    "REF_PREFIX",
    "VALIDATION_ERROR_SCHEMAS",
    "SchemaField",
    "generate",
]

REF_PREFIX = "#/components/schemas/"

Mode = Literal["validation", "serialization"]

# What ``{"detail": [errors]}`` of a 422 reply looks like.
VALIDATION_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "HTTPValidationError": {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {
                "title": "Detail",
                "type": "array",
                "items": {"$ref": REF_PREFIX + "ValidationError"},
            }
        },
    },
    "ValidationError": {
        "title": "ValidationError",
        "type": "object",
        "properties": {
            "loc": {
                "title": "Location",
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
            "input": {"title": "Input"},
            "ctx": {"title": "Context", "type": "object"},
        },
        "required": ["loc", "msg", "type"],
    },
}


@dataclass(eq=False)
class SchemaField:
    """A value the document describes: ``name`` gives the title of an inline schema
    (``limit`` → ``"Limit"``) unless ``title`` is set; a schema that is a ``$ref`` gets
    no title. Fields hash by identity: two parameters of one type are two entries."""

    name: str
    core_schema: CoreSchema
    mode: Mode = "validation"
    title: str | None = None


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with ``bytes`` described the OpenAPI 3.1 way (binary
    content of a string) rather than as JSON Schema draft 4's ``format: binary``."""

    def bytes_schema(self, schema: Any) -> JsonSchemaValue:
        json_schema: dict[str, Any] = {
            "type": "string",
            "contentMediaType": "application/octet-stream",
        }
        encoding = (
            self._config.ser_json_bytes
            if self.mode == "serialization"
            else self._config.val_json_bytes
        )
        if encoding == "base64":
            json_schema["contentEncoding"] = "base64"
        self.update_with_validations(json_schema, schema, self.ValidationsMapping.bytes)
        return json_schema


def generate(
    fields: Sequence[SchemaField],
) -> tuple[dict[SchemaField, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The schema of each field and the named schemas they reference."""
    generator = _Generator(ref_template=REF_PREFIX + "{model}")
    inputs = [(f, f.mode, f.core_schema) for f in fields]
    mapping, definitions = generator.generate_definitions(inputs=inputs)
    schemas: dict[SchemaField, dict[str, Any]] = {}
    for (field, _), schema in mapping.items():
        schema = dict(schema)
        if "$ref" not in schema:
            schema["title"] = field.title or field.name.title().replace("_", " ")
        schemas[field] = schema
    named: dict[str, dict[str, Any]] = {}
    for name, schema in definitions.items():
        schema = dict(schema)
        if "description" in schema:
            # A form feed ends the part of a docstring meant for readers of the API.
            schema["description"] = str(schema["description"]).split("\f")[0]
        named[name] = schema
    return schemas, named
