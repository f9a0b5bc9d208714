"""The request object handlers receive when they declare a ``Request`` parameter."""

from __future__ import annotations

import http.cookies
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from data_bridge import _native, jsonparser
from data_bridge.datastructures import FormData, QueryParams
from data_bridge.exceptions import HTTPException
from data_bridge.formparsers import MAX_PART_SIZE, FormError, parse_form
from data_bridge.headers import Headers
from data_bridge.url import URL

if TYPE_CHECKING:
    from data_bridge.responses import Response

__all__ = ["HTTPConnection", "Headers", "QueryParams", "Request", "State"]


class State:
    """Attributes set freely: ``app.state.db = ...``, ``request.state.user = ...``."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"State({self.__dict__!r})"


class HTTPConnection:
    """What requests and WebSockets share: headers, query and path parameters,
    cookies, the client's address, ``app`` and ``state``. Nothing is copied from Rust
    until it is read."""

    def __init__(self, native: _native.RequestData, app: Any = None) -> None:
        self._native = native
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._path_params: dict[str, Any] | None = None
        self._cookies: dict[str, str] | None = None
        self.app = app
        # As Starlette: each connection starts with a shallow copy of the lifespan state.
        lifespan = getattr(app, "lifespan", None)
        self.state = State(**lifespan.state) if lifespan is not None and lifespan.state else State()

    @property
    def path(self) -> str:
        return self._native.path

    @property
    def url(self) -> URL:
        """The URL the client asked for; behind a trusted proxy (``--proxy-headers``)
        with the scheme and host the proxy forwarded."""
        native = self._native
        return URL.build(native.scheme, native.host, native.path, native.query_string)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._native.header_pairs())
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self._native.query_string)
        return self._query

    @property
    def path_params(self) -> dict[str, Any]:
        if self._path_params is None:
            self._path_params = self._native.path_params()
        return self._path_params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            for value in self.headers.getlist("cookie"):
                cookie.load(value)
            self._cookies = {k: m.value for k, m in cookie.items()}
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        """``(host, port)`` of the client; behind a trusted proxy, the address from
        ``X-Forwarded-For`` with port 0."""
        return self._native.client


class Request(HTTPConnection):
    """An HTTP request. Nothing is copied from Rust until it is read."""

    def __init__(
        self,
        native: _native.RequestData,
        app: Any = None,
        *,
        call_route: Callable[[Request], Awaitable[Response]] | None = None,
    ) -> None:
        super().__init__(native, app)
        #: The matched route, answering with a ``Response``: what the innermost layer of
        #: the app's middleware stack awaits (the stack is built once per app, so the
        #: route travels with the request). ``None`` outside a middleware stack.
        self.call_route = call_route
        self._body: bytes | None = None
        self._stream_consumed = False
        self._form: FormData | None = None

    @property
    def method(self) -> str:
        return self._native.method

    async def stream(self) -> AsyncIterator[bytes]:
        """Yields the body in chunks as they arrive, without collecting it.

        Past the server's body size limit this raises ``HTTPException(413)`` (answered
        as the server's own 413 if the handler lets it propagate). The stream can be
        read once; afterwards ``body()`` raises ``RuntimeError("Stream consumed")``,
        unless ``body()`` ran first, in which case the stream yields the kept body.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._stream_consumed:
            raise RuntimeError("Stream consumed")
        self._stream_consumed = True
        body = self._native.body_bytes()
        if body is not None:
            if body:
                yield body
            return
        native = self._native
        while True:
            chunk = native.read_chunk()
            if not isinstance(chunk, bytes):
                chunk = await chunk
            if not chunk:
                return
            yield chunk

    async def body(self) -> bytes:
        """The whole body (kept, so later calls return the same bytes)."""
        if self._body is None:
            if self._stream_consumed:
                raise RuntimeError("Stream consumed")
            body = self._native.read_body()
            if not isinstance(body, bytes):
                body = await body
            self._body = body
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON; ``json.JSONDecodeError`` if it is not JSON (or is
        nested too deeply)."""
        return jsonparser.loads(await self.body())

    def form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = MAX_PART_SIZE,
    ) -> _FormReading:
        """The body parsed as a form (``multipart/form-data`` or
        ``application/x-www-form-urlencoded``; empty under any other content type),
        read from :meth:`stream` as it arrives. Await it, or use it as ``async with``
        to close the uploaded files at the end of the block.

        A malformed body, more than ``max_files`` files, more than ``max_fields`` text
        fields or a text field over ``max_part_size`` bytes raises
        ``HTTPException(400)``. The form is kept: later calls return it.
        """
        return _FormReading(self, max_files, max_fields, max_part_size)

    async def _read_form(
        self, max_files: int | float, max_fields: int | float, max_part_size: int
    ) -> FormData:
        if self._form is None:
            try:
                self._form = await parse_form(
                    self.headers,
                    self.stream(),
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=max_part_size,
                )
            except FormError as exc:
                raise HTTPException(400, exc.message) from None
        return self._form

    async def close(self) -> None:
        """Closes the files of the form, if it was read."""
        if self._form is not None:
            await self._form.close()


class _FormReading:
    """What ``request.form()`` returns: awaitable, or an async context manager that
    closes the form's files on exit."""

    def __init__(
        self,
        request: Request,
        max_files: int | float,
        max_fields: int | float,
        max_part_size: int,
    ) -> None:
        self._request = request
        self._limits = (max_files, max_fields, max_part_size)

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._request._read_form(*self._limits).__await__()

    async def __aenter__(self) -> FormData:
        return await self._request._read_form(*self._limits)

    async def __aexit__(self, *exc: object) -> None:
        await self._request.close()
