"""Parsing a form body as it streams in: ``application/x-www-form-urlencoded`` and
``multipart/form-data``, with python-multipart's incremental parsers (the ones
Starlette uses), fed chunk by chunk from ``request.stream()``.

A file part is written to its :class:`~data_bridge.datastructures.UploadFile` between
chunks, so a large upload spools to disk instead of sitting in memory; the callbacks
python-multipart calls are synchronous, so they only queue what the parse loop then
writes (in a thread once the file is on disk). A malformed body or a limit exceeded
raises :class:`FormError`, whose message is the ``detail`` of the 400 reply, worded as
Starlette words it.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from urllib.parse import unquote_plus

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from data_bridge.datastructures import FormData, UploadFile
from data_bridge.headers import Headers

__all__ = ["MAX_PART_SIZE", "SPOOL_MAX_SIZE", "FormError", "parse_form"]

#: The largest text field (or urlencoded name plus value) accepted, in bytes.
MAX_PART_SIZE = 1024 * 1024
#: How much of an uploaded file stays in memory before it rolls over to disk.
SPOOL_MAX_SIZE = 1024 * 1024


class FormError(Exception):
    """The form body is malformed or exceeds a limit (answered with 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _decode(raw: bytes | bytearray, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


async def parse_form(
    headers: Headers,
    stream: AsyncIterator[bytes],
    *,
    max_files: int | float = 1000,
    max_fields: int | float = 1000,
    max_part_size: int = MAX_PART_SIZE,
) -> FormData:
    """The form in ``stream``, read as its ``Content-Type`` says; an empty form for
    any other content type (as Starlette: the fields are then missing)."""
    content_type, _ = parse_options_header(headers.get("content-type"))
    if content_type == b"multipart/form-data":
        multipart = _Multipart(headers, max_files, max_fields, max_part_size)
        return await multipart.parse(stream)
    if content_type == b"application/x-www-form-urlencoded":
        return await _Urlencoded(max_fields, max_part_size).parse(stream)
    return FormData()


class _Urlencoded:
    def __init__(self, max_fields: int | float, max_part_size: int) -> None:
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self.items: list[tuple[str, str | UploadFile]] = []
        self.name = bytearray()
        self.value = bytearray()

    def _grow(self, target: bytearray, data: bytes, start: int, end: int) -> None:
        if len(self.name) + len(self.value) + end - start > self.max_part_size:
            raise FormError(f"Field exceeded maximum size of {self.max_part_size // 1024}KB.")
        target += data[start:end]

    def on_field_start(self) -> None:
        self.name = bytearray()
        self.value = bytearray()

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        self._grow(self.name, data, start, end)

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        self._grow(self.value, data, start, end)

    def on_field_end(self) -> None:
        if len(self.items) >= self.max_fields:
            raise FormError(f"Too many fields. Maximum number of fields is {self.max_fields}.")
        name = unquote_plus(self.name.decode("latin-1"))
        self.items.append((name, unquote_plus(self.value.decode("latin-1"))))

    async def parse(self, stream: AsyncIterator[bytes]) -> FormData:
        parser = python_multipart.QuerystringParser(
            {
                "on_field_start": self.on_field_start,
                "on_field_name": self.on_field_name,
                "on_field_data": self.on_field_data,
                "on_field_end": self.on_field_end,
            }
        )
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
        return FormData(self.items)


@dataclass
class _Part:
    disposition: bytes | None = None
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    file: UploadFile | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Multipart:
    def __init__(
        self, headers: Headers, max_files: int | float, max_fields: int | float, max_part_size: int
    ) -> None:
        self.headers = headers
        self.max_files = max_files
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self.items: list[tuple[str, str | UploadFile]] = []
        self.files = 0
        self.fields = 0
        self.charset = "utf-8"
        self.part = _Part()
        self.header_name = bytearray()
        self.header_value = bytearray()
        # File content seen in the last chunk, written once the parser returns.
        self.pending: list[tuple[UploadFile, bytes]] = []
        self.finished: list[UploadFile] = []
        self.opened: list[SpooledTemporaryFile[bytes]] = []

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part.file is not None:
            self.pending.append((part.file, data[start:end]))
            return
        if len(part.data) + end - start > self.max_part_size:
            raise FormError(f"Part exceeded maximum size of {self.max_part_size // 1024}KB.")
        part.data += data[start:end]

    def on_part_end(self) -> None:
        part = self.part
        if part.file is None:
            self.items.append((part.name, _decode(part.data, self.charset)))
        else:
            # Its content is complete once the pending writes are done.
            self.finished.append(part.file)
            self.items.append((part.name, part.file))

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = bytes(self.header_name).lower()
        if name == b"content-disposition":
            self.part.disposition = bytes(self.header_value)
        self.part.headers.append((name.decode("latin-1"), self.header_value.decode("latin-1")))
        self.header_name = bytearray()
        self.header_value = bytearray()

    def on_headers_finished(self) -> None:
        part = self.part
        _, options = parse_options_header(part.disposition)
        if b"name" not in options:
            raise FormError('The Content-Disposition header field "name" must be provided.')
        part.name = _decode(options[b"name"], self.charset)
        if b"filename" in options:
            self.files += 1
            if self.files > self.max_files:
                raise FormError(f"Too many files. Maximum number of files is {self.max_files}.")
            # Closed by whoever reads the form (or below, if parsing fails).
            spooled: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115
                max_size=SPOOL_MAX_SIZE
            )
            self.opened.append(spooled)
            part.file = UploadFile(
                spooled,
                size=0,
                filename=_decode(options[b"filename"], self.charset),
                headers=Headers(part.headers),
            )
        else:
            self.fields += 1
            if self.fields > self.max_fields:
                raise FormError(f"Too many fields. Maximum number of fields is {self.max_fields}.")

    async def _flush(self) -> None:
        for upload, data in self.pending:
            await upload.write(data)
        for upload in self.finished:
            await upload.seek(0)
        self.pending.clear()
        self.finished.clear()

    async def parse(self, stream: AsyncIterator[bytes]) -> FormData:
        _, params = parse_options_header(self.headers.get("content-type"))
        charset = params.get(b"charset", b"utf-8").decode("latin-1")
        try:
            self.charset = codecs.lookup(charset).name
        except LookupError:
            self.charset = "latin-1"
        boundary = params.get(b"boundary")
        if boundary is None:
            raise FormError("Missing boundary in multipart.")
        try:
            parser = python_multipart.MultipartParser(
                boundary,
                {
                    "on_part_begin": self.on_part_begin,
                    "on_part_data": self.on_part_data,
                    "on_part_end": self.on_part_end,
                    "on_header_field": self.on_header_field,
                    "on_header_value": self.on_header_value,
                    "on_header_end": self.on_header_end,
                    "on_headers_finished": self.on_headers_finished,
                },
            )
            async for chunk in stream:
                parser.write(chunk)
                await self._flush()
            parser.finalize()
        except BaseException as exc:
            # Nothing will read these files: a body that fails to parse (or to arrive,
            # as past the size limit) leaves no open temporary file behind.
            for spooled in self.opened:
                spooled.close()
            if isinstance(exc, FormParserError):
                raise FormError("Invalid multipart data.") from exc
            raise
        return FormData(self.items)
