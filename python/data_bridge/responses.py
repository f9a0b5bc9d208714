"""Response classes a handler may return instead of a plain value."""

from __future__ import annotations

import http.cookies
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pydantic_core

from data_bridge.background import BackgroundTask
from data_bridge.headers import MutableHeaders

if TYPE_CHECKING:
    from data_bridge._native import BodyWriter

__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]

logger = logging.getLogger("data_bridge")


class Response:
    """A complete response: status, headers and a body of bytes. ``background`` runs
    once the response has been sent."""

    media_type: str | None = None
    charset = "utf-8"
    background: BackgroundTask | None = None

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.status_code = status_code
        self.background = background
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.init_headers(headers)

    def init_headers(self, headers: dict[str, str] | None) -> None:
        """Sets ``raw_headers`` from ``headers`` plus the content type."""
        self.raw_headers: list[tuple[bytes, bytes]] = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        if self.media_type is not None and not any(
            k == b"content-type" for k, _ in self.raw_headers
        ):
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            self.raw_headers.append((b"content-type", content_type.encode("latin-1")))

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    @property
    def headers(self) -> MutableHeaders:
        """The headers, editable in place (``response.headers["X-A"] = "1"``)."""
        return MutableHeaders(self.raw_headers)

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            morsel["samesite"] = samesite
        self.raw_headers.append((b"set-cookie", morsel.OutputString().encode("latin-1")))


class JSONResponse(Response):
    """JSON-encodes ``content`` with pydantic-core (datetimes, UUIDs, models...)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class RedirectResponse(Response):
    """Redirects to ``url`` (307 by default, as Starlette)."""

    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, background=background)
        self.raw_headers.append((b"location", url.encode("latin-1")))


class FileResponse(Response):
    """The file at ``path``, sent by the server from Rust: opened off the event loop,
    streamed in chunks, with ``content-length``, ``etag``, ``last-modified`` and
    ``accept-ranges``; ``If-None-Match``, ``If-Modified-Since`` and ``Range`` are
    honoured when ``status_code`` is 200. The content type is guessed from
    ``filename`` (or ``path``) unless ``media_type`` is given. With ``filename``, a
    ``content-disposition`` header of ``content_disposition_type`` names it (RFC 6266,
    ``filename*=`` for names that need encoding). A file that does not exist when
    the response is sent gives a 500."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type, background)
        self.path = os.fspath(path)
        self.filename = filename
        if filename is not None and not any(
            k == b"content-disposition" for k, _ in self.raw_headers
        ):
            disposition = _content_disposition(content_disposition_type, filename)
            self.raw_headers.append((b"content-disposition", disposition.encode("latin-1")))


def _content_disposition(kind: str, filename: str) -> str:
    """``kind; filename="name"``, or ``kind; filename*=utf-8''<percent-encoded>`` when
    the name is not plain printable ASCII or holds a quote or backslash (RFC 6266,
    RFC 5987)."""
    if filename.isascii() and filename.isprintable() and not any(c in filename for c in '"\\'):
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


Content = AsyncIterable[str | bytes] | Iterable[str | bytes]


class StreamingResponse(Response):
    """Sends the status and headers at once, then the body as ``content`` yields it.

    ``content`` is an async iterable (e.g. an async generator) or a sync iterable of
    ``bytes`` or ``str`` chunks. The next chunk is only asked for once the client has
    taken the previous ones, so a slow client holds the producer back. Sync iterables
    run in a worker thread, never on the event loop. If the client goes away, an async
    producer is cancelled (its ``finally`` runs) and a sync one is closed at its next
    chunk; if the producer raises after the head was sent, the error is logged and the
    connection is aborted, so the client sees an incomplete body. The route timeout
    covers the handler that returns the response, not the stream.
    """

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        if isinstance(content, AsyncIterable):
            self._is_async = True
        elif isinstance(content, Iterable):
            self._is_async = False
        else:
            raise TypeError(f"StreamingResponse needs an iterable, not {type(content).__name__}")
        self.body_iterator = content
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = b""
        self.init_headers(headers)

    def _encode(self, chunk: str | bytes) -> bytes:
        if isinstance(chunk, bytes):
            return chunk
        if isinstance(chunk, (bytearray, memoryview)):
            return bytes(chunk)
        return chunk.encode(self.charset)

    async def _stream_async(self, writer: BodyWriter) -> None:
        """Runs as a task on the loop: feeds ``writer`` from the async iterable."""
        iterator: AsyncIterator[str | bytes] | None = None
        finished = False
        try:
            iterator = aiter(self.body_iterator)  # type: ignore[arg-type]
            async for chunk in iterator:
                waiter = writer.send(self._encode(chunk))
                if waiter is not None:
                    await waiter
            finished = True
        except Exception:
            _report_failure(writer)
        finally:
            _end(writer, finished)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    def _stream_sync(self, writer: BodyWriter) -> None:
        """Runs in a worker thread: feeds ``writer`` from the sync iterable."""
        iterator: Iterator[str | bytes] | None = None
        finished = False
        try:
            iterator = iter(self.body_iterator)  # type: ignore[arg-type]
            for chunk in iterator:
                writer.send_blocking(self._encode(chunk))
            finished = True
        except Exception:
            _report_failure(writer)
        finally:
            _end(writer, finished)
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def _report_failure(writer: BodyWriter) -> None:
    """Logs a producer's exception (called while handling it), unless the client's
    departure caused it."""
    if not writer.client_gone:
        logger.exception("Exception in streaming response")


def _end(writer: BodyWriter, finished: bool) -> None:
    """Ends the body: complete, or aborted so the client sees it is cut short."""
    if finished:
        writer.close()
    else:
        writer.abort()
