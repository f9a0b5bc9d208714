"""``CORSMiddleware`` allowing every origin, method and header: ``*`` on simple
requests, preflights echoing the requested headers, and the server's own 404."""

from typing import Any

from tests.compat.corpus import Call

ORIGIN = "https://anyone.example"


def build(api: Any) -> Any:
    app = api.App()
    app.add_middleware(
        api.CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_private_network=True,
    )

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


REQUESTS = [
    Call("GET", "/hello", headers={"Origin": ORIGIN}),
    Call("GET", "/hello", headers={"Origin": ORIGIN}, cookies={"a": "b"}),
    Call("GET", "/hello"),
    Call("GET", "/missing", headers={"Origin": ORIGIN}),
    Call("OPTIONS", "/missing", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}),
    Call(
        "OPTIONS",
        "/hello",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "X-Anything, Authorization",
            "Access-Control-Request-Private-Network": "true",
        },
    ),
    Call("OPTIONS", "/hello", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "QUERY"}),
]
