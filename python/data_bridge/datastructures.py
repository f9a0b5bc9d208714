"""The request's multi-valued collections besides its headers (:mod:`data_bridge.headers`):
``QueryParams`` and the parsed form (``FormData``), whose files are :class:`UploadFile`
objects.

An ``UploadFile`` keeps its content in a ``tempfile.SpooledTemporaryFile``: in memory
up to 1 MiB, then on disk. Its async methods touch a file that has rolled to disk in a
worker thread, so a large upload never blocks the event loop (as Starlette does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import parse_qsl

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from data_bridge.headers import Headers

__all__ = ["FormData", "QueryParams", "UploadFile"]


class QueryParams(Headers):
    """Multi-valued query parameters (case-sensitive names)."""

    def __init__(self, query_string: str) -> None:
        super().__init__(parse_qsl(query_string, keep_blank_values=True))

    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in reversed(self._pairs):
            if k == name:
                return v
        return default

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]


class UploadFile:
    """A file sent in a ``multipart/form-data`` body.

    ``file`` is the underlying (blocking) file object, for ``def`` handlers; ``async
    def`` handlers use :meth:`read`, :meth:`write`, :meth:`seek` and :meth:`close`.
    Declared as a handler parameter type, it reads the form field of that name.
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        # Attributes in Starlette's order: a validation error that echoes an upload as
        # its input lists them as FastAPI does.
        #: The file name the client gave, as sent.
        self.filename = filename
        self.file = file
        #: The number of bytes written so far (the whole file once parsing is over).
        self.size = size
        #: The part's own headers (``content-disposition``, ``content-type``...).
        self.headers = headers if headers is not None else Headers([])
        # 0: no limit (a plain file, or a SpooledTemporaryFile that never spools).
        self._max_mem_size: int = getattr(file, "_max_size", 0)

    @property
    def content_type(self) -> str | None:
        """The part's ``Content-Type``, if it had one."""
        return self.headers.get("content-type")

    @property
    def in_memory(self) -> bool:
        """Whether the content is still in memory (a ``SpooledTemporaryFile`` that
        has not rolled over to disk)."""
        return not getattr(self.file, "_rolled", True)

    def _will_roll(self, adding: int) -> bool:
        if not self.in_memory:
            return True
        return bool(self._max_mem_size) and self.file.tell() + adding > self._max_mem_size

    async def write(self, data: bytes) -> None:
        """Appends ``data`` at the current position (in a thread when that is disk)."""
        if self.size is not None:
            self.size += len(data)
        if self._will_roll(len(data)):
            await asyncio.to_thread(self.file.write, data)
        else:
            self.file.write(data)

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all that is left by
        default)."""
        if self.in_memory:
            return self.file.read(size)
        return await asyncio.to_thread(self.file.read, size)

    async def seek(self, offset: int) -> None:
        """Moves to byte ``offset``."""
        if self.in_memory:
            self.file.seek(offset)
        else:
            await asyncio.to_thread(self.file.seek, offset)

    async def close(self) -> None:
        """Closes the file (a spooled file on disk is deleted)."""
        if self.in_memory:
            self.file.close()
        else:
            await asyncio.to_thread(self.file.close)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, size={self.size!r}, "
            f"headers={self.headers!r})"
        )

    # As a parameter type: any UploadFile is valid as is, and OpenAPI documents it as
    # binary content, as FastAPI does.
    @classmethod
    def _validate(cls, value: Any) -> UploadFile:
        if not isinstance(value, UploadFile):
            raise ValueError(f"Expected UploadFile, received: {type(value)}")
        return value

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(cls._validate)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "contentMediaType": "application/octet-stream"}


class FormData:
    """A parsed form: field names to text values or :class:`UploadFile` objects, in
    the order sent. A name may repeat: ``form["name"]`` and ``get`` give its last
    value, ``getlist`` every value."""

    def __init__(self, items: list[tuple[str, str | UploadFile]] | None = None) -> None:
        self._items = list(items or [])
        self._last = dict(self._items)

    def get(self, name: str, default: Any = None) -> Any:
        return self._last.get(name, default)

    def getlist(self, name: str) -> list[str | UploadFile]:
        return [v for k, v in self._items if k == name]

    def multi_items(self) -> list[tuple[str, str | UploadFile]]:
        """Every ``(name, value)`` pair, repeated names included."""
        return list(self._items)

    def keys(self) -> list[str]:
        return list(self._last)

    def values(self) -> list[str | UploadFile]:
        return list(self._last.values())

    def items(self) -> list[tuple[str, str | UploadFile]]:
        return list(self._last.items())

    def __getitem__(self, name: str) -> str | UploadFile:
        return self._last[name]

    def __contains__(self, name: object) -> bool:
        return name in self._last

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    async def close(self) -> None:
        """Closes every uploaded file."""
        for _, value in self._items:
            if isinstance(value, UploadFile):
                await value.close()
