"""Security dependencies, as FastAPI's ``fastapi.security``: each scheme is a callable
instance used with ``Depends`` (or ``Security``) that reads the credentials from the
request, and answers a request without them with FastAPI's exact 401, ``{"detail":
"Not authenticated"}`` and ``WWW-Authenticate`` challenge, or returns ``None`` when
``auto_error=False``.

Only request handling is here; describing the schemes in an OpenAPI document is not.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Callable, Sequence
from typing import Any

import pydantic

from data_bridge.dependencies import Depends
from data_bridge.exceptions import HTTPException
from data_bridge.requests import Request

__all__ = [
    "APIKeyCookie",
    "APIKeyHeader",
    "APIKeyQuery",
    "HTTPAuthorizationCredentials",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "OAuth2PasswordBearer",
    "Security",
    "get_authorization_scheme_param",
]


class Security(Depends):
    """``Depends`` for a security scheme, with the OAuth2 ``scopes`` it requires."""

    def __init__(
        self,
        dependency: Callable[..., Any] | None = None,
        *,
        scopes: Sequence[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        self.scopes = list(scopes or [])


def get_authorization_scheme_param(value: str | None) -> tuple[str, str]:
    """``("Bearer", "token")`` from ``"Bearer token"``; ``("", "")`` from nothing."""
    if not value:
        return "", ""
    scheme, _, param = value.partition(" ")
    return scheme, param.strip()


def _not_authenticated(challenge: str) -> HTTPException:
    return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": challenge})


class HTTPBasicCredentials(pydantic.BaseModel):
    """The user name and password of HTTP Basic authentication."""

    username: str
    password: str


class HTTPAuthorizationCredentials(pydantic.BaseModel):
    """An ``Authorization`` header split into its ``scheme`` and ``credentials``."""

    scheme: str
    credentials: str


class _Scheme:
    def __init__(
        self, *, scheme_name: str | None, description: str | None, auto_error: bool
    ) -> None:
        self.scheme_name = scheme_name or type(self).__name__
        self.description = description
        self.auto_error = auto_error


class HTTPBasic(_Scheme):
    """HTTP Basic authentication: returns :class:`HTTPBasicCredentials`."""

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        realm: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.realm = realm

    def _error(self) -> HTTPException:
        return _not_authenticated(f'Basic realm="{self.realm}"' if self.realm else "Basic")

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            if self.auto_error:
                raise self._error()
            return None
        # As FastAPI: malformed credentials are refused even with auto_error=False.
        try:
            data = b64decode(param).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise self._error() from None
        username, separator, password = data.partition(":")
        if not separator:
            raise self._error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(_Scheme):
    """A bearer token: returns :class:`HTTPAuthorizationCredentials`."""

    def __init__(
        self,
        *,
        bearerFormat: str | None = None,  # FastAPI's parameter name
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.bearer_format = bearerFormat

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        authorization = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
            if self.auto_error:
                raise _not_authenticated("Bearer")
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


class OAuth2PasswordBearer(_Scheme):
    """The bearer token of OAuth2's password flow: returns the token (a string)."""

    def __init__(
        self,
        tokenUrl: str,  # FastAPI's parameter name
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
        refreshUrl: str | None = None,  # FastAPI's parameter name
    ) -> None:
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.token_url = tokenUrl
        self.refresh_url = refreshUrl
        self.scopes = dict(scopes or {})

    async def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer":
            if self.auto_error:
                raise _not_authenticated("Bearer")
            return None
        return param


class _APIKey(_Scheme):
    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.name = name

    def _read(self, request: Request) -> str | None:
        raise NotImplementedError  # pragma: no cover

    async def __call__(self, request: Request) -> str | None:
        key = self._read(request)
        if not key:
            if self.auto_error:
                raise _not_authenticated("APIKey")
            return None
        return key


class APIKeyHeader(_APIKey):
    """An API key in the header ``name``."""

    def _read(self, request: Request) -> str | None:
        return request.headers.get(self.name)


class APIKeyQuery(_APIKey):
    """An API key in the query parameter ``name``."""

    def _read(self, request: Request) -> str | None:
        return request.query_params.get(self.name)


class APIKeyCookie(_APIKey):
    """An API key in the cookie ``name``."""

    def _read(self, request: Request) -> str | None:
        return request.cookies.get(self.name)
