"""Security schemes as documented and scoped: ``Security(..., scopes=[...])`` along a
chain of dependencies (merged into the operation's ``security`` and handed to
``SecurityScopes``), schemes with ``scheme_name``, ``description``, ``bearerFormat``,
``refreshUrl`` and ``auto_error=False``, and schemes required by the app, a router,
``include_router`` and a route's ``dependencies``."""

from typing import Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    sec = api.security
    oauth2 = sec.OAuth2PasswordBearer(
        tokenUrl="token",
        scopes={"me": "Read yourself", "items": "Read items", "admin": "Administer"},
        refreshUrl="refresh",
        description="Password flow with scopes",
        auto_error=False,
    )
    jwt = sec.HTTPBearer(bearerFormat="JWT", scheme_name="jwt", description="A JSON Web Token")
    # Two schemes under one name: the document keeps the last one it meets.
    bearer_a = sec.HTTPBearer(scheme_name="shared", auto_error=False)
    bearer_b = sec.HTTPBearer(scheme_name="shared", bearerFormat="opaque", auto_error=False)
    basic = sec.HTTPBasic(scheme_name="basic", realm="corpus", auto_error=False)
    header_key = sec.APIKeyHeader(name="X-Key", description="A key", auto_error=False)
    cookie_key = sec.APIKeyCookie(name="session", scheme_name="session", auto_error=False)
    query_key = sec.APIKeyQuery(name="key", auto_error=False)
    hidden = sec.APIKeyHeader(name="X-Hidden", scheme_name="hidden", auto_error=False)

    def current(security_scopes: sec.SecurityScopes, token: Any = api.Depends(oauth2)) -> Any:
        return {
            "scopes": security_scopes.scopes,
            "scope_str": security_scopes.scope_str,
            "token": token,
        }

    def active(user: Any = api.Security(current, scopes=["me"])) -> Any:
        return {**user, "active": True}

    def audited(key: Any = api.Security(header_key, scopes=["audit"])) -> Any:
        return key

    app = api.App(dependencies=[api.Depends(cookie_key)])

    @app.get("/me")
    def me(user: Any = api.Security(active, scopes=["items"])) -> Any:
        return user

    @app.get("/twice")
    def twice(
        first: Any = api.Security(current, scopes=["items"]),
        second: Any = api.Security(current, scopes=["admin", "items"]),
        again: Any = api.Security(current, scopes=["items"]),
    ) -> Any:
        return {"first": first, "second": second, "again": again}

    @app.get("/plain")
    def plain(user: Any = api.Depends(current)) -> Any:
        return user

    @app.get("/jwt", dependencies=[api.Depends(jwt), api.Security(oauth2, scopes=["me"])])
    def with_jwt(creds: Any = api.Depends(jwt), token: Any = api.Depends(oauth2)) -> Any:
        return {"credentials": creds.credentials, "token": token}

    @app.get("/shared-a")
    def shared_a(creds: Any = api.Depends(bearer_a)) -> Any:
        return {"creds": None if creds is None else creds.credentials}

    @app.get("/shared-b")
    def shared_b(creds: Any = api.Depends(bearer_b)) -> Any:
        return {"creds": None if creds is None else creds.credentials}

    @app.get("/hidden", include_in_schema=False)
    def hidden_route(key: Any = api.Depends(hidden)) -> Any:
        return {"key": key}

    admin = api.APIRouter(prefix="/admin", dependencies=[api.Security(oauth2, scopes=["admin"])])

    @admin.get("/audit")
    def audit(key: Any = api.Depends(audited), query: Any = api.Depends(query_key)) -> Any:
        return {"key": key, "query": query}

    @admin.get("/whoami")
    def whoami(user: Any = api.Security(current, scopes=["me"])) -> Any:
        return user

    app.include_router(admin, dependencies=[api.Depends(basic)])
    return app


BEARER = {"Authorization": "Bearer t1"}

REQUESTS = [
    Call("GET", "/me", headers=BEARER),
    Call("GET", "/me"),
    Call("GET", "/twice", headers=BEARER),
    Call("GET", "/plain", headers=BEARER),
    Call("GET", "/jwt", headers=BEARER),
    Call("GET", "/jwt"),
    Call("GET", "/shared-a", headers=BEARER),
    Call("GET", "/shared-b"),
    Call("GET", "/hidden", headers={"X-Hidden": "h"}),
    Call("GET", "/admin/audit?key=q", headers={"X-Key": "k"}),
    Call("GET", "/admin/audit"),
    Call("GET", "/admin/whoami", headers=BEARER, cookies={"session": "s"}),
]
