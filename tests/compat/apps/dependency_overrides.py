"""``app.dependency_overrides``: a replaced dependency (sync by async and back), a
replaced sub-dependency, a replacement with its own parameters, and one that receives
the scopes required of what it replaces."""

from typing import Annotated, Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    def real_db() -> str:
        return "production"

    async def real_user(db: Annotated[str, api.Depends(real_db)]) -> dict[str, str]:
        return {"name": "real", "db": db}

    def settings() -> dict[str, int]:
        return {"limit": 10}

    def permissions() -> list[str]:
        return []

    def scoped(granted: Annotated[list[str], api.Security(permissions, scopes=["read"])]) -> Any:
        return granted

    app = api.App()

    @app.get("/db")
    def db_route(db: Annotated[str, api.Depends(real_db)]) -> dict[str, str]:
        return {"db": db}

    @app.get("/user")
    async def user_route(user: Annotated[dict[str, str], api.Depends(real_user)]) -> Any:
        return user

    @app.get("/settings")
    def settings_route(s: Annotated[dict[str, int], api.Depends(settings)]) -> Any:
        return s

    @app.get("/scoped")
    def scoped_route(granted: Annotated[Any, api.Security(scoped, scopes=["write"])]) -> Any:
        return {"granted": granted}

    async def fake_db() -> str:
        return "test"

    def fake_settings(limit: int = 5) -> dict[str, int]:
        return {"limit": limit, "fake": 1}

    def fake_permissions(security_scopes: api.security.SecurityScopes) -> list[str]:
        return [*security_scopes.scopes, security_scopes.scope_str]

    app.dependency_overrides[real_db] = fake_db
    app.dependency_overrides[permissions] = fake_permissions
    app.dependency_overrides[settings] = fake_settings
    return app


REQUESTS = [
    Call("GET", "/db"),
    Call("GET", "/user"),
    Call("GET", "/settings"),
    Call("GET", "/settings?limit=7"),
    Call("GET", "/settings?limit=many"),
    Call("GET", "/scoped"),
]
