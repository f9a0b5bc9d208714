"""``TrustedHostMiddleware``: listed hosts (ports ignored), subdomain wildcards, the
redirect to a listed ``www.`` form, and the ``400`` for any other host."""

from typing import Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    app = api.App()
    app.add_middleware(
        api.TrustedHostMiddleware,
        allowed_hosts=["127.0.0.1", "example.com", "*.example.org", "www.example.net"],
    )

    @app.get("/where")
    def where(request: api.Request) -> dict[str, str]:
        return {"host": request.headers["host"].split(":")[0]}

    return app


REQUESTS = [
    Call("GET", "/where"),
    Call("GET", "/where", headers={"Host": "example.com"}),
    Call("GET", "/where", headers={"Host": "example.com:8443"}),
    Call("GET", "/where", headers={"Host": "api.example.org"}),
    Call("GET", "/where", headers={"Host": "example.org"}),
    Call("GET", "/where", headers={"Host": "evil.com"}),
    Call("GET", "/where?x=1", headers={"Host": "example.net"}),
    Call("GET", "/nowhere", headers={"Host": "evil.com"}),
]
