"""Security schemes (HTTP Basic and Bearer, OAuth2 password bearer, API keys in a
header, the query or a cookie) with ``auto_error`` on and off: FastAPI's 401 bodies and
``WWW-Authenticate`` challenges."""

import base64
from typing import Any

from tests.compat.corpus import Call


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def build(api: Any) -> Any:
    sec = api.security
    basic_auth = sec.HTTPBasic()
    basic_realm = sec.HTTPBasic(realm="corpus", auto_error=False)
    bearer = sec.HTTPBearer()
    bearer_optional = sec.HTTPBearer(auto_error=False)
    oauth2 = sec.OAuth2PasswordBearer(tokenUrl="token")
    header_key = sec.APIKeyHeader(name="X-API-Key")
    query_key = sec.APIKeyQuery(name="api_key", auto_error=False)
    cookie_key = sec.APIKeyCookie(name="session")

    def current_user(token: str = api.Security(oauth2, scopes=["me"])) -> dict[str, str]:
        if token != "good":
            raise api.HTTPException(
                401, "Invalid token", headers={"WWW-Authenticate": 'Bearer error="invalid"'}
            )
        return {"user": "ann"}

    app = api.App()

    @app.get("/basic")
    def with_basic(creds: sec.HTTPBasicCredentials = api.Depends(basic_auth)) -> Any:
        return {"username": creds.username, "password": creds.password}

    @app.get("/basic-optional")
    def with_basic_optional(creds: Any = api.Depends(basic_realm)) -> Any:
        return {"creds": None if creds is None else creds.username}

    @app.get("/bearer")
    async def with_bearer(creds: sec.HTTPAuthorizationCredentials = api.Depends(bearer)) -> Any:
        return {"scheme": creds.scheme, "credentials": creds.credentials}

    @app.get("/bearer-optional")
    async def with_bearer_optional(creds: Any = api.Depends(bearer_optional)) -> Any:
        return {"creds": None if creds is None else creds.credentials}

    @app.get("/me")
    def me(user: dict[str, str] = api.Depends(current_user)) -> Any:
        return user

    @app.get("/header-key")
    def with_header_key(key: str = api.Depends(header_key)) -> Any:
        return {"key": key}

    @app.get("/query-key")
    def with_query_key(key: Any = api.Depends(query_key)) -> Any:
        return {"key": key}

    @app.get("/cookie-key")
    def with_cookie_key(key: str = api.Depends(cookie_key)) -> Any:
        return {"key": key}

    return app


REQUESTS = [
    Call("GET", "/basic", headers={"Authorization": basic("ann", "s3:cret")}),
    Call("GET", "/basic"),
    Call("GET", "/basic", headers={"Authorization": "Basic !!notbase64"}),
    Call(
        "GET", "/basic", headers={"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}
    ),
    Call("GET", "/basic", headers={"Authorization": "Bearer abc"}),
    Call("GET", "/basic-optional"),
    Call("GET", "/basic-optional", headers={"Authorization": "Basic %%%"}),
    Call("GET", "/basic-optional", headers={"Authorization": basic("bob", "x")}),
    Call("GET", "/bearer", headers={"Authorization": "Bearer tok"}),
    Call("GET", "/bearer", headers={"Authorization": "bearer  tok"}),
    Call("GET", "/bearer"),
    Call("GET", "/bearer", headers={"Authorization": "Bearer"}),
    Call("GET", "/bearer", headers={"Authorization": "Token tok"}),
    Call("GET", "/bearer-optional"),
    Call("GET", "/bearer-optional", headers={"Authorization": "Bearer t2"}),
    Call("GET", "/me", headers={"Authorization": "Bearer good"}),
    Call("GET", "/me", headers={"Authorization": "Bearer bad"}),
    Call("GET", "/me"),
    Call("GET", "/header-key", headers={"X-API-Key": "k1"}),
    Call("GET", "/header-key"),
    Call("GET", "/header-key", headers={"X-API-Key": ""}),
    Call("GET", "/query-key?api_key=q1"),
    Call("GET", "/query-key"),
    Call("GET", "/cookie-key", cookies={"session": "c1"}),
    Call("GET", "/cookie-key"),
]
