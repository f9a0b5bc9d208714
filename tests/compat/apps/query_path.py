"""Query and path parameters: defaults, Optional, repeated keys, bool spellings, enums,
constraints and aliases; typed path parameters (native conversion) and Path()
constraints."""

# No ``from __future__ import annotations``: the handlers' annotations name ``api.*``
# objects local to ``build`` and must be evaluated where they are written.
import enum
import uuid
from typing import Annotated, Any

from tests.compat.corpus import ALLOW, Call


class Color(str, enum.Enum):
    red = "red"
    green = "green"


def build(api: Any) -> Any:
    app = api.App()

    @app.get("/items")
    def items(skip: int = 0, limit: int = 10, q: str | None = None) -> dict[str, Any]:
        return {"skip": skip, "limit": limit, "q": q}

    @app.get("/required")
    async def required(needed: str, count: int) -> dict[str, Any]:
        return {"needed": needed, "count": count}

    @app.get("/tags")
    def tags(tag: Annotated[list[str], api.Query()] = []) -> list[str]:  # noqa: B006
        return tag

    @app.get("/ints")
    def ints(n: Annotated[list[int] | None, api.Query()] = None) -> Any:
        return n

    @app.get("/flag")
    def flag(on: bool = False) -> dict[str, bool]:
        return {"on": on}

    @app.get("/color")
    def color(c: Color = Color.red) -> dict[str, str]:
        return {"c": c.value}

    @app.get("/bounded")
    async def bounded(
        limit: Annotated[int, api.Query(ge=1, le=100, alias="page-size")] = 10,
        name: Annotated[str, api.Query(min_length=2, max_length=5, pattern="^[a-z]+$")] = "ab",
    ) -> dict[str, Any]:
        return {"limit": limit, "name": name}

    @app.get("/price")
    def price(p: float = api.Query(gt=0)) -> dict[str, float]:
        return {"p": p}

    @app.get("/users/{user_id}")
    def user(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    @app.get("/ratio/{x}")
    async def ratio(x: float) -> dict[str, float]:
        return {"x": x}

    @app.get("/colors/{c}")
    def path_color(c: Color) -> dict[str, str]:
        return {"c": c.value}

    @app.get("/ids/{ident}")
    def ident(ident: uuid.UUID) -> dict[str, str]:
        return {"ident": str(ident)}

    @app.get("/files/{file_path:path}")
    def files(file_path: str) -> dict[str, str]:
        return {"file_path": file_path}

    @app.get("/pages/{page}")
    def page(page: Annotated[int, api.Path(ge=1, le=50)], size: int = 20) -> dict[str, int]:
        return {"page": page, "size": size}

    @app.get("/orders/{order_id}/lines/{line}")
    async def lines(line: int, order_id: str) -> dict[str, Any]:
        return {"order_id": order_id, "line": line}

    return app


REQUESTS = [
    Call("GET", "/items"),
    Call("GET", "/items?skip=5&limit=2&q=hello"),
    Call("GET", "/items?skip=abc"),
    Call("GET", "/items?skip=1.5&limit=x"),
    Call("GET", "/items?limit=3&limit=4"),
    Call("GET", "/items?q="),
    Call("GET", "/required"),
    Call("GET", "/required?needed=x"),
    Call("GET", "/required?needed=x&count=7"),
    Call("GET", "/tags"),
    Call("GET", "/tags?tag=a&tag=b&tag=c"),
    Call("GET", "/ints?n=1&n=2"),
    Call("GET", "/ints?n=1&n=two"),
    Call("GET", "/ints"),
    *(Call("GET", f"/flag?on={v}") for v in ("true", "1", "yes", "on", "off", "0", "False", "y")),
    Call("GET", "/flag?on=maybe"),
    Call("GET", "/color?c=green"),
    Call("GET", "/color?c=blue"),
    Call("GET", "/bounded?page-size=50&name=abc"),
    Call("GET", "/bounded?page-size=0"),
    Call("GET", "/bounded?page-size=101&name=a"),
    Call("GET", "/bounded?name=abcdef"),
    Call("GET", "/bounded?name=ABC"),
    Call("GET", "/bounded?limit=5"),
    Call("GET", "/price?p=2.5"),
    Call("GET", "/price?p=0"),
    Call("GET", "/price"),
    Call("GET", "/users/42"),
    Call("GET", "/users/abc"),
    Call("GET", "/users/4.2"),
    Call("GET", "/ratio/2.5"),
    Call("GET", "/ratio/x"),
    Call("GET", "/colors/green"),
    Call("GET", "/colors/blue"),
    Call("GET", "/ids/12345678-1234-5678-1234-567812345678"),
    Call("GET", "/ids/nope"),
    Call("GET", "/files/a/b/c.txt"),
    Call("GET", "/pages/3?size=5"),
    Call("GET", "/pages/0"),
    Call("GET", "/pages/51?size=x"),
    Call("GET", "/orders/o-1/lines/2"),
    Call("GET", "/orders/o-1/lines/two"),
    Call("GET", "/nowhere"),
    Call("POST", "/items", differs={"allow": ALLOW}),
]
