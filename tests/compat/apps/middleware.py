"""``@app.middleware("http")`` and ``add_middleware`` classes: order, headers added to
responses (including error responses), short-circuits, and ``request.state``."""

from typing import Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    class Stamp(api.BaseHTTPMiddleware):
        def __init__(self, app: Any, name: str) -> None:
            super().__init__(app)
            self.name = name

        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-" + self.name] = request.method
            order = response.headers.get("x-order")
            response.headers["x-order"] = f"{order},{self.name}" if order else self.name
            return response

    app = api.App()
    app.add_middleware(Stamp, name="inner")
    app.add_middleware(Stamp, name="outer")

    @app.middleware("http")
    async def gate(request: api.Request, call_next: Any) -> Any:
        if request.headers.get("x-token") == "bad":
            return api.JSONResponse({"detail": "go away"}, status_code=401)
        request.state.token = request.headers.get("x-token", "none")
        response = await call_next(request)
        response.headers["X-Gate"] = "passed"
        return response

    @app.get("/items/{item_id}")
    def item(item_id: int, request: api.Request) -> dict[str, Any]:
        return {"item_id": item_id, "token": request.state.token}

    @app.get("/plain")
    def plain() -> str:
        return "text"

    @app.get("/teapot")
    async def teapot() -> None:
        raise api.HTTPException(418, "short and stout", headers={"X-Kind": "tea"})

    @app.post("/made", status_code=201)
    async def made(payload: dict[str, int]) -> dict[str, int]:
        return payload

    return app


REQUESTS = [
    Call("GET", "/items/5", headers={"X-Token": "t1"}),
    Call("GET", "/items/5"),
    Call("GET", "/items/abc"),
    Call("GET", "/items/5", headers={"X-Token": "bad"}),
    Call("GET", "/plain"),
    Call("GET", "/teapot"),
    Call("POST", "/made", json={"a": 1}),
    Call("POST", "/made", json=[1]),
]
