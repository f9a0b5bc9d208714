"""Output: ``response_model`` filtering and its exclude options, status codes,
``response_class``, exception handlers (custom, ``HTTPException``,
``RequestValidationError``) and ``app.state``."""

from typing import Any

import pydantic

from tests.compat.corpus import Call


class UserIn(pydantic.BaseModel):
    name: str
    password: str
    email: str | None = None


class UserOut(pydantic.BaseModel):
    name: str
    email: str | None = None


class Aliased(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)
    full_name: str = pydantic.Field(alias="fullName")
    note: str | None = None
    level: int = 1


class Teapot(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def build(api: Any) -> Any:
    app = api.App()
    app.state.greeting = "hello"

    @app.exception_handler(Teapot)
    async def teapot(request: Any, exc: Teapot) -> Any:
        return api.JSONResponse({"teapot": exc.name}, status_code=418)

    @app.post("/users", response_model=UserOut, status_code=201)
    def create(user: UserIn) -> Any:
        return user

    @app.get("/users/{name}")
    def read(name: str) -> UserOut:
        return UserIn(name=name, password="secret")  # type: ignore[return-value]

    @app.get("/users")
    async def many() -> list[UserOut]:
        return [{"name": "a", "password": "x"}, {"name": "b", "email": "b@x"}]  # type: ignore[list-item]

    @app.get("/unset", response_model=Aliased, response_model_exclude_unset=True)
    def unset() -> Any:
        return Aliased(full_name="Ann", level=1)

    @app.get("/none", response_model=Aliased, response_model_exclude_none=True)
    def none() -> Any:
        return {"fullName": "Bob"}

    @app.get("/by-name", response_model=Aliased, response_model_by_alias=False)
    def by_name() -> Any:
        return {"fullName": "Cy", "note": "n"}

    @app.get("/broken", response_model=UserOut)
    def broken() -> Any:
        return {"email": "x"}

    @app.get("/html", response_class=api.HTMLResponse)
    def html() -> str:
        return "<p>hi</p>"

    @app.get("/plain", response_class=api.PlainTextResponse, status_code=202)
    async def plain() -> str:
        return "accepted"

    @app.get("/teapot/{name}")
    def brew(name: str) -> Any:
        raise Teapot(name)

    @app.get("/missing")
    def missing() -> Any:
        raise api.HTTPException(404, detail={"what": "thing"}, headers={"X-Why": "gone"})

    @app.get("/greeting")
    def greeting(request: api.Request) -> dict[str, str]:
        return {"greeting": request.app.state.greeting}

    @app.get("/count")
    def count(n: int) -> dict[str, int]:
        return {"n": n}

    return app


def build_overrides(api: Any) -> Any:
    """An app that answers validation errors and HTTP errors its own way."""
    app = api.App()

    @app.exception_handler(api.RequestValidationError)
    def invalid(request: Any, exc: Any) -> Any:
        return api.JSONResponse(
            {"problems": [list(e["loc"]) for e in exc.errors()]}, status_code=400
        )

    @app.exception_handler(api.HTTPException)
    async def http_error(request: Any, exc: Any) -> Any:
        return api.PlainTextResponse(f"oops: {exc.detail}", status_code=exc.status_code)

    @app.get("/count")
    def count(n: int, m: int = 0) -> dict[str, int]:
        return {"n": n + m}

    @app.get("/fail")
    async def fail() -> Any:
        raise api.HTTPException(409, "conflict")

    return app


REQUESTS = [
    Call("POST", "/users", json={"name": "ann", "password": "pw", "email": "a@x"}),
    Call("POST", "/users", json={"name": "ann"}),
    Call("GET", "/users/zed"),
    Call("GET", "/users"),
    Call("GET", "/unset"),
    Call("GET", "/none"),
    Call("GET", "/by-name"),
    Call(
        "GET",
        "/broken",
        differs={
            "body": "an unhandled error: Starlette answers text/plain 'Internal Server Error', "
            'data-bridge {"detail": "Internal Server Error"}',
            "content-type": "see body",
        },
    ),
    Call("GET", "/html"),
    Call("GET", "/plain"),
    Call("GET", "/teapot/earl"),
    Call("GET", "/missing"),
    Call("GET", "/greeting"),
    Call("GET", "/count?n=1"),
    Call("GET", "/count?n=x"),
]
