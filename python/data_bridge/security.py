"""Security dependencies, as FastAPI's ``fastapi.security``: each scheme is a callable
instance used with ``Depends`` (or ``Security``) that reads the credentials from the
request, and answers a request without them with FastAPI's exact 401, ``{"detail":
"Not authenticated"}`` and ``WWW-Authenticate`` challenge, or returns ``None`` when
``auto_error=False``.

``OAuth2PasswordRequestForm`` (and its strict variant) is the dependency that reads the
form of an OAuth2 password-flow token request.

Each scheme also carries its OpenAPI Security Scheme Object (``model``, a dict) and
``scheme_name`` (the class name unless given), from which the OpenAPI document declares
it under ``components.securitySchemes``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated, Any

import pydantic

from data_bridge.dependencies import Security, SecurityBase, SecurityScopes
from data_bridge.exceptions import HTTPException
from data_bridge.params import Form
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
    "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict",
    "Security",
    "SecurityBase",
    "SecurityScopes",
    "get_authorization_scheme_param",
]


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


class _Scheme(SecurityBase):
    def __init__(
        self,
        kind: str,
        details: dict[str, Any],
        *,
        scheme_name: str | None,
        description: str | None,
        auto_error: bool,
    ) -> None:
        self.model: dict[str, Any] = {"type": kind}
        if description is not None:
            self.model["description"] = description
        self.model.update(details)
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
        super().__init__(
            "http",
            {"scheme": "basic"},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )
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
        details = {"scheme": "bearer"}
        if bearerFormat is not None:
            details["bearerFormat"] = bearerFormat
        super().__init__(
            "http", details, scheme_name=scheme_name, description=description, auto_error=auto_error
        )
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
        self.token_url = tokenUrl
        self.refresh_url = refreshUrl
        self.scopes = dict(scopes or {})
        flow: dict[str, Any] = {"refreshUrl": refreshUrl} if refreshUrl is not None else {}
        flow.update(scopes=self.scopes, tokenUrl=tokenUrl)
        super().__init__(
            "oauth2",
            {"flows": {"password": flow}},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )

    async def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer":
            if self.auto_error:
                raise _not_authenticated("Bearer")
            return None
        return param


class OAuth2PasswordRequestForm:
    """The form of an OAuth2 password-flow token request, as a dependency (``form:
    Annotated[OAuth2PasswordRequestForm, Depends()]``): ``username`` and ``password``,
    the requested ``scopes`` (sent space-separated as ``scope``), and the optional
    ``grant_type`` (``"password"`` if sent), ``client_id`` and ``client_secret``."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form()],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        self.grant_type = grant_type
        self.username = username
        self.password = password
        self.scopes = scope.split()
        self.client_id = client_id
        self.client_secret = client_secret


class OAuth2PasswordRequestFormStrict(OAuth2PasswordRequestForm):
    """:class:`OAuth2PasswordRequestForm` that requires ``grant_type=password``, as the
    OAuth2 specification does."""

    def __init__(
        self,
        grant_type: Annotated[str, Form(pattern="^password$")],
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form()] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


class _APIKey(_Scheme):
    where: str  # the Security Scheme Object's ``in``

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            "apiKey",
            {"in": self.where, "name": name},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )
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

    where = "header"

    def _read(self, request: Request) -> str | None:
        return request.headers.get(self.name)


class APIKeyQuery(_APIKey):
    """An API key in the query parameter ``name``."""

    where = "query"

    def _read(self, request: Request) -> str | None:
        return request.query_params.get(self.name)


class APIKeyCookie(_APIKey):
    """An API key in the cookie ``name``."""

    where = "cookie"

    def _read(self, request: Request) -> str | None:
        return request.cookies.get(self.name)
