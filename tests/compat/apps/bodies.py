"""Request bodies: a model, nested models, lists, ``Body()`` scalars, ``embed``,
several bodies at once, malformed JSON and non-JSON content types."""

import datetime
from typing import Annotated, Any

import pydantic

from tests.compat.corpus import ALLOW, Call


class Image(pydantic.BaseModel):
    url: str
    width: int = 0


class Item(pydantic.BaseModel):
    name: str
    price: float = pydantic.Field(gt=0)
    tags: list[str] = []
    image: Image | None = None


class User(pydantic.BaseModel):
    username: str
    joined: datetime.date | None = None


def build(api: Any) -> Any:
    app = api.App()

    @app.post("/items")
    async def create(item: Item) -> dict[str, Any]:
        return {"name": item.name, "price": item.price, "tags": item.tags}

    @app.put("/items/{item_id}")
    def update(item_id: int, item: Item, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "item": item.model_dump(), "q": q}

    @app.post("/embedded")
    def embedded(item: Annotated[Item, api.Body(embed=True)]) -> Item:
        return item

    @app.post("/both")
    async def both(item: Item, user: User, importance: Annotated[int, api.Body(gt=0)]) -> Any:
        return {"item": item.name, "user": user.username, "importance": importance}

    @app.post("/many")
    def many(items: list[Item]) -> int:
        return len(items)

    @app.post("/scores")
    def scores(scores: dict[str, float]) -> dict[str, float]:
        return scores

    @app.post("/optional")
    def optional(item: Item | None = None) -> dict[str, Any]:
        return {"item": item.name if item else None}

    return app


GOOD = {"name": "pen", "price": 1.5, "tags": ["a"]}

REQUESTS = [
    Call("POST", "/items", json=GOOD),
    Call("POST", "/items", json={"name": "pen", "price": "2"}),
    Call("POST", "/items", json={"name": "pen"}),
    Call("POST", "/items", json={"name": 1, "price": "x", "tags": "no"}),
    Call("POST", "/items", json={"name": "pen", "price": -1}),
    Call("POST", "/items", json={"name": "pen", "price": 1, "image": {"width": "w"}}),
    Call("POST", "/items", json=[1, 2]),
    Call("POST", "/items", json=None),
    Call("POST", "/items"),
    Call("POST", "/items", content=b"{bad json", headers={"content-type": "application/json"}),
    Call(
        "POST", "/items", content=b'{"name": "pen",}', headers={"content-type": "application/json"}
    ),
    Call("POST", "/items", content=b"", headers={"content-type": "application/json"}),
    Call(
        "POST",
        "/items",
        content=b'{"name":"pen","price":1}',
        headers={"content-type": "text/plain"},
    ),
    Call("POST", "/items", content=b'{"name":"pen","price":1}'),
    Call(
        "POST",
        "/items",
        content=b'{"name":"pen","price":1}',
        headers={"content-type": "application/vnd.api+json"},
    ),
    Call("POST", "/items", content=b"null", headers={"content-type": "application/json"}),
    Call("PUT", "/items/3?q=x", json=GOOD),
    Call("PUT", "/items/x", json={"price": 0}),
    Call("POST", "/embedded", json={"item": GOOD}),
    Call("POST", "/embedded", json=GOOD),
    Call("POST", "/embedded", json=[1]),
    Call("POST", "/both", json={"item": GOOD, "user": {"username": "ann"}, "importance": 3}),
    Call("POST", "/both", json={"item": GOOD, "user": {}, "importance": 0}),
    Call("POST", "/both", json={}),
    Call("POST", "/both"),
    Call("POST", "/many", json=[GOOD, GOOD]),
    Call("POST", "/many", json=[GOOD, {"name": "x"}]),
    Call("POST", "/scores", json={"a": 1, "b": "2.5"}),
    Call("POST", "/scores", json={"a": "x"}),
    Call("POST", "/optional", json=GOOD),
    Call("POST", "/optional"),
    Call("GET", "/items", differs={"allow": ALLOW}),
]
