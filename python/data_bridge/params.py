"""Where a handler parameter comes from: ``Query``, ``Header``, ``Cookie``, ``Path``,
``Body``, ``Form`` and ``File`` markers, used as a default (``q: int = Query(5, ge=1)``) or inside
``Annotated`` (``q: Annotated[int, Query(ge=1)] = 5``).

Each marker is a pydantic ``FieldInfo``, so its constraints (``ge``, ``max_length``,
``pattern``...) are enforced by pydantic-core exactly as in FastAPI.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["Body", "Cookie", "File", "Form", "Header", "Param", "Path", "Query"]


class Param(FieldInfo):
    """A parameter read from one part of the request (``source``)."""

    source = "query"

    def __init__(
        self,
        default: Any = PydanticUndefined,
        *,
        default_factory: Any = None,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        multiple_of: float | None = None,
        strict: bool | None = None,
        examples: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        json_schema_extra: dict[str, Any] | None = None,
    ) -> None:
        if default is ...:
            default = PydanticUndefined
        self.include_in_schema = include_in_schema
        kwargs: dict[str, Any] = {
            "alias": alias,
            "title": title,
            "description": description,
            "gt": gt,
            "ge": ge,
            "lt": lt,
            "le": le,
            "min_length": min_length,
            "max_length": max_length,
            "pattern": pattern,
            "multiple_of": multiple_of,
            "strict": strict,
            "examples": examples,
            "deprecated": deprecated,
            "json_schema_extra": json_schema_extra,
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if default_factory is not None:
            kwargs["default_factory"] = default_factory
        else:
            kwargs["default"] = default
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r})"


class Query(Param):
    """A query-string parameter; a ``list[...]`` type collects repeated keys."""

    source = "query"


class Path(Param):
    """A path parameter (required: it is part of the route's template)."""

    source = "path"


class Header(Param):
    """A request header. Unless ``convert_underscores=False`` or an alias is given,
    the parameter ``user_agent`` reads the header ``user-agent``."""

    source = "header"

    def __init__(
        self, default: Any = PydanticUndefined, *, convert_underscores: bool = True, **kw: Any
    ) -> None:
        self.convert_underscores = convert_underscores
        super().__init__(default, **kw)


class Cookie(Param):
    """A request cookie."""

    source = "cookie"


class Body(Param):
    """(Part of) the JSON request body. ``embed=True`` expects ``{"<name>": value}``
    even when it is the only body parameter."""

    source = "body"

    def __init__(
        self,
        default: Any = PydanticUndefined,
        *,
        embed: bool | None = None,
        media_type: str = "application/json",
        **kw: Any,
    ) -> None:
        self.embed = embed
        self.media_type = media_type
        super().__init__(default, **kw)


class Form(Body):
    """A field of a form body (``application/x-www-form-urlencoded`` or
    ``multipart/form-data``). With a pydantic model as its type, each of the model's
    fields is a form field."""

    def __init__(
        self,
        default: Any = PydanticUndefined,
        *,
        media_type: str = "application/x-www-form-urlencoded",
        **kw: Any,
    ) -> None:
        super().__init__(default, media_type=media_type, **kw)


class File(Form):
    """A file of a ``multipart/form-data`` body: an ``UploadFile`` (or a list of them),
    or its content as ``bytes``."""

    def __init__(
        self,
        default: Any = PydanticUndefined,
        *,
        media_type: str = "multipart/form-data",
        **kw: Any,
    ) -> None:
        super().__init__(default, media_type=media_type, **kw)
