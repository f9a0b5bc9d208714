"""Headers, cookies, and the injected ``Request`` and ``Response``."""

from typing import Annotated, Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    app = api.App()

    @app.get("/ua")
    def ua(user_agent: Annotated[str | None, api.Header()] = None) -> dict[str, Any]:
        return {"ua": user_agent}

    @app.get("/token")
    async def token(x_token: str = api.Header()) -> dict[str, str]:
        return {"token": x_token}

    @app.get("/tokens")
    def tokens(x_token: Annotated[list[str] | None, api.Header()] = None) -> Any:
        return {"tokens": x_token}

    @app.get("/raw-name")
    def raw_name(
        strange_header: Annotated[str | None, api.Header(convert_underscores=False)] = None,
    ) -> Any:
        return {"value": strange_header}

    @app.get("/limit")
    def limit(x_limit: Annotated[int, api.Header(ge=1)] = 5) -> dict[str, int]:
        return {"limit": x_limit}

    @app.get("/session")
    def session(session_id: Annotated[str | None, api.Cookie()] = None) -> Any:
        return {"session_id": session_id}

    @app.get("/visits")
    def visits(visits: int = api.Cookie()) -> Any:
        return {"visits": visits}

    @app.get("/echo/{name}")
    async def echo(name: str, request: api.Request) -> dict[str, Any]:
        return {
            "name": name,
            "method": request.method,
            "path": request.url.path if hasattr(request.url, "path") else request.path,
            "q": request.query_params.get("q"),
            "path_params": dict(request.path_params),
            "accept": request.headers.get("x-accept"),
        }

    @app.get("/login")
    def login(response: api.Response) -> dict[str, str]:
        response.set_cookie("session", "abc123", httponly=True)
        response.headers["X-Login"] = "yes"
        return {"status": "logged in"}

    @app.post("/created")
    async def created(response: api.Response, name: str = "x") -> dict[str, str]:
        response.status_code = 201
        response.headers["X-Name"] = name
        return {"name": name}

    @app.get("/html")
    def html() -> Any:
        return api.HTMLResponse("<h1>hi</h1>")

    @app.get("/text")
    def text() -> Any:
        return api.PlainTextResponse("plain", headers={"X-Extra": "1"})

    @app.get("/go")
    def go() -> Any:
        return api.RedirectResponse("/ua")

    @app.get("/custom")
    def custom(response: api.Response) -> Any:
        response.headers["X-From-Sub"] = "1"
        return api.JSONResponse({"ok": True}, status_code=202, headers={"X-Own": "2"})

    return app


REQUESTS = [
    Call("GET", "/ua", headers={"User-Agent": "corpus/1.0"}),
    Call("GET", "/token", headers={"X-Token": "secret"}),
    Call("GET", "/token"),
    Call("GET", "/tokens", headers={"X-Token": "a"}),
    Call("GET", "/tokens"),
    Call("GET", "/raw-name", headers={"strange_header": "v"}),
    Call("GET", "/raw-name", headers={"strange-header": "v"}),
    Call("GET", "/limit", headers={"X-Limit": "7"}),
    Call("GET", "/limit", headers={"X-Limit": "0"}),
    Call("GET", "/limit", headers={"X-Limit": "many"}),
    Call("GET", "/session", cookies={"session_id": "s1"}),
    Call("GET", "/session"),
    Call("GET", "/visits", cookies={"visits": "3"}),
    Call("GET", "/visits", cookies={"visits": "lots"}),
    Call("GET", "/visits"),
    Call("GET", "/echo/bob?q=1", headers={"X-Accept": "json"}),
    Call("GET", "/login"),
    Call("POST", "/created?name=zed"),
    Call("GET", "/html"),
    Call("GET", "/text"),
    Call("GET", "/go"),
    Call("GET", "/custom"),
]
