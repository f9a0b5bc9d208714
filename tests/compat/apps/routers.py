"""``APIRouter``: prefixes, nested routers, every method decorator, ``api_route``."""

from typing import Any

from tests.compat.corpus import ALLOW, MULTI_METHOD_ID, Call


def build(api: Any) -> Any:
    app = api.App()
    users = api.APIRouter(prefix="/users", tags=["users"])

    @users.get("/")
    def list_users() -> list[str]:
        return ["ann", "bob"]

    @users.get("/{user_id}")
    def get_user(user_id: int) -> dict[str, Any]:
        return {"user_id": user_id}

    @users.post("/", status_code=201)
    def create_user(name: str) -> dict[str, str]:
        return {"name": name}

    @users.put("/{user_id}")
    def put_user(user_id: int) -> dict[str, Any]:
        return {"put": user_id}

    @users.patch("/{user_id}")
    def patch_user(user_id: int) -> dict[str, Any]:
        return {"patch": user_id}

    @users.delete("/{user_id}", status_code=204)
    def delete_user(user_id: int) -> None:
        return None

    @users.api_route("/{user_id}/ping", methods=["GET", "POST"])
    def ping(user_id: int, request: api.Request) -> dict[str, Any]:
        return {"method": request.method, "user_id": user_id}

    admin = api.APIRouter()

    @admin.get("/stats")
    async def stats() -> dict[str, int]:
        return {"users": 2}

    @admin.options("/stats")
    def stats_options() -> dict[str, str]:
        return {"allow": "GET"}

    @app.get("/links")
    def links() -> dict[str, str]:
        return {
            "user": str(app.url_path_for("get_user", user_id=7)),
            "stats": str(app.url_path_for("stats")),
        }

    v1 = api.APIRouter(prefix="/v1")
    v1.include_router(admin, prefix="/admin")
    app.include_router(users)
    app.include_router(v1)
    return app


REQUESTS = [
    Call("GET", "/users/"),
    Call("GET", "/users/3"),
    Call("GET", "/users/x"),
    Call("POST", "/users/?name=cy"),
    Call("POST", "/users/"),
    Call("PUT", "/users/3"),
    Call("PATCH", "/users/3"),
    Call("DELETE", "/users/3"),
    Call("GET", "/users/3/ping"),
    Call("POST", "/users/3/ping"),
    Call("DELETE", "/users/3/ping", differs={"allow": ALLOW}),
    Call("GET", "/v1/admin/stats"),
    Call("OPTIONS", "/v1/admin/stats"),
    Call("GET", "/links"),
    Call("GET", "/v1/admin"),
    Call("GET", "/users/3/extra"),
]

_PING = ("paths", "/users/{user_id}/ping")
_PING_RESPONSE = ("responses", "200", "content", "application/json", "schema", "title")
OPENAPI_DIFFERS = {
    (*_PING, method, *part): MULTI_METHOD_ID
    for method in ("get", "post")
    for part in (("operationId",), _PING_RESPONSE)
}
