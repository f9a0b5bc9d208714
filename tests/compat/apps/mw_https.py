"""``HTTPSRedirectMiddleware``: plain requests are redirected to ``https`` (default
ports dropped, path and query kept); requests a trusted proxy says came over HTTPS
are served."""

from typing import Any

from tests.compat.corpus import Call

HTTPS = {"X-Forwarded-Proto": "https"}
OPENAPI_HEADERS = HTTPS


def build(api: Any) -> Any:
    app = api.App()
    app.add_middleware(api.HTTPSRedirectMiddleware)

    @app.get("/secure")
    def secure(request: api.Request) -> dict[str, str]:
        return {"url": str(request.url)}

    return app


REQUESTS = [
    Call("GET", "/secure?a=1&b=2", headers={"Host": "example.com"}),
    Call("GET", "/secure", headers={"Host": "example.com:80"}),
    Call("GET", "/secure", headers={"Host": "example.com:443"}),
    Call("GET", "/secure", headers={"Host": "example.com:8080"}),
    Call("POST", "/secure", headers={"Host": "example.com"}),
    Call("GET", "/nowhere", headers={"Host": "example.com"}),
    Call("GET", "/secure", headers={"Host": "example.com", **HTTPS}),
]
