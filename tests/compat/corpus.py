"""What a corpus app declares: the requests to send to both servers, and the rare,
documented allowances where data-bridge answers differently on purpose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The parts of a reply an allowance may exempt from comparison.
ASPECTS = (
    "status",
    "body",
    "content-type",
    "allow",
    "location",
    "set-cookie",
    "x-headers",
    "access-control",
    "vary",
    "content-encoding",
)


# The one systematic difference: data-bridge's 405 names every method the path serves.
ALLOW = (
    "405 Allow: data-bridge lists every method the path serves (with HEAD and OPTIONS, "
    "RFC 9110 section 15.5.6); Starlette lists the first matching route's methods"
)

# A route with several methods: FastAPI names its operations after the first method of
# a set, which varies from run to run; data-bridge after the first method declared.
MULTI_METHOD_ID = (
    "operation id of a route with several methods: data-bridge uses the first method "
    "declared; FastAPI the first of a set, which changes with the hash seed"
)

# Where, in an app's OpenAPI document, an allowance applies: keys from the root.
Pointer = tuple[str, ...]


@dataclass(frozen=True)
class Call:
    """One request. ``data`` is sent as form fields, ``files`` (httpx's form: ``[(field,
    (filename, content, content type)), ...]``) with them as ``multipart/form-data``.
    ``differs`` maps an aspect of the reply (see ``ASPECTS``) to why data-bridge's answer
    is allowed to differ there."""

    method: str
    path: str
    json: Any = None
    content: bytes | str | None = None
    data: dict[str, Any] | None = None
    files: list[tuple[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    differs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.differs) - set(ASPECTS)
        if unknown:
            raise ValueError(f"unknown aspects {sorted(unknown)}")

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"
