"""The request object handlers receive when they declare a ``Request`` parameter."""

from __future__ import annotations

import http.cookies
import json
from typing import Any
from urllib.parse import parse_qsl

from data_bridge import _native

__all__ = ["Headers", "QueryParams", "Request", "State"]


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


class Request:
    """An HTTP request. Nothing is copied from Rust until it is read."""

    def __init__(self, native: _native.RequestData, app: Any = None) -> None:
        self._native = native
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._path_params: dict[str, Any] | None = None
        self._cookies: dict[str, str] | None = None
        self.app = app
        # As Starlette: each request starts with a shallow copy of the lifespan state.
        lifespan = getattr(app, "lifespan", None)
        self.state = State(**lifespan.state) if lifespan is not None and lifespan.state else State()

    @property
    def method(self) -> str:
        return self._native.method

    @property
    def path(self) -> str:
        return self._native.path

    @property
    def url(self) -> str:
        host = self.headers.get("host", "")
        query = self._native.query_string
        return f"http://{host}{self.path}" + (f"?{query}" if query else "")

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
        return self._native.client

    async def body(self) -> bytes:
        return self._native.body_bytes()

    async def json(self) -> Any:
        return json.loads(self._native.body_bytes())
