"""The request object handlers receive when they declare a ``Request`` parameter."""

from __future__ import annotations

import http.cookies
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from data_bridge import _native
from data_bridge.url import URL

__all__ = ["HTTPConnection", "Headers", "QueryParams", "Request", "State"]


class Headers:
    """Case-insensitive, multi-valued request headers."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self._pairs:
            if k == name:
                return v
        return default

    def getlist(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._pairs if k == name]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._pairs)


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

    def __init__(self, native: _native.RequestData, app: Any = None) -> None:
        super().__init__(native, app)
        self._body: bytes | None = None
        self._stream_consumed = False

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
        return json.loads(await self.body())
