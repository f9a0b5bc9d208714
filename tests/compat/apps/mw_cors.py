"""``CORSMiddleware`` with listed origins, an origin pattern and credentials, around a
Python middleware: simple requests from allowed, unknown and absent origins,
preflights that pass and that fail on origin, method or headers, and error replies.
(The server's own 404 does not pass through Python middleware: see ``mw_cors_any``.)"""

from typing import Any

from tests.compat.corpus import Call

ALLOWED = "https://a.example"
PREFLIGHT = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}


def build(api: Any) -> Any:
    app = api.App()

    @app.middleware("http")
    async def stamp(request: api.Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Stamp"] = "python"
        return response

    app.add_middleware(
        api.CORSMiddleware,
        allow_origins=[ALLOWED],
        allow_origin_regex=r"https://.*\.b\.example",
        allow_methods=["GET", "POST"],
        allow_headers=["X-Token"],
        allow_credentials=True,
        expose_headers=["X-Total", "X-Page"],
        max_age=300,
    )

    @app.get("/items")
    def items() -> list[int]:
        return [1, 2]

    @app.post("/items")
    def create(payload: dict[str, int]) -> dict[str, int]:
        return payload

    @app.get("/teapot")
    def teapot() -> None:
        raise api.HTTPException(418, "short and stout")

    return app


REQUESTS = [
    Call("GET", "/items", headers={"Origin": ALLOWED}),
    Call("GET", "/items", headers={"Origin": "https://x.b.example"}),
    Call("GET", "/items", headers={"Origin": "https://evil.example"}),
    Call("GET", "/items"),
    Call("GET", "/items", headers={"Origin": ALLOWED}, cookies={"session": "s"}),
    Call("POST", "/items", json={"a": 1}, headers={"Origin": ALLOWED}),
    Call("POST", "/items", json=[1], headers={"Origin": ALLOWED}),
    Call("GET", "/teapot", headers={"Origin": ALLOWED}),
    Call("OPTIONS", "/items", headers=PREFLIGHT),
    Call("OPTIONS", "/items", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-token"}),
    Call(
        "OPTIONS",
        "/items",
        headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Token, Content-Type"},
    ),
    Call("OPTIONS", "/items", headers={**PREFLIGHT, "Origin": "https://x.b.example"}),
    Call("OPTIONS", "/items", headers={**PREFLIGHT, "Origin": "https://evil.example"}),
    Call("OPTIONS", "/items", headers={**PREFLIGHT, "Access-Control-Request-Method": "PUT"}),
    Call("OPTIONS", "/items", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-other"}),
    Call(
        "OPTIONS",
        "/items",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-other",
        },
    ),
    Call(
        "OPTIONS", "/items", headers={**PREFLIGHT, "Access-Control-Request-Private-Network": "true"}
    ),
]
