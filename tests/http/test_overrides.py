"""``dependency_overrides`` are read at each request: set, changed and cleared between
requests of a running app, as tests do with FastAPI."""

from __future__ import annotations

from typing import Annotated

from data_bridge import App, Depends, HTTPException
from data_bridge.security import HTTPAuthorizationCredentials, HTTPBearer
from data_bridge.testclient import TestClient

bearer = HTTPBearer()


def current_user(creds: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> str:
    if creds.credentials != "secret":
        raise HTTPException(403, "bad token")
    return "ann"


def make_app() -> App:
    app = App()

    @app.get("/me")
    def me(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
        return {"user": user}

    return app


def test_overrides_apply_from_the_next_request_on() -> None:
    app = make_app()
    with TestClient(app) as client:
        resp = client.get("/me")
        assert (resp.status_code, resp.headers["www-authenticate"]) == (401, "Bearer")
        assert client.get("/me", headers={"Authorization": "Bearer secret"}).json() == {
            "user": "ann"
        }

        app.dependency_overrides[current_user] = lambda: "tester"
        assert client.get("/me").json() == {"user": "tester"}

        async def other() -> str:
            return "async tester"

        app.dependency_overrides[current_user] = other
        assert client.get("/me").json() == {"user": "async tester"}

        # Overriding the scheme itself, below the dependency that uses it.
        app.dependency_overrides.clear()
        app.dependency_overrides[bearer] = lambda: HTTPAuthorizationCredentials(
            scheme="Bearer", credentials="nope"
        )
        assert client.get("/me").status_code == 403

        app.dependency_overrides.clear()
        assert client.get("/me").status_code == 401
