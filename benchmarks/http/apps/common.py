"""What every benchmark app shares: the POST body model and the port to bind."""

# No `from __future__ import annotations`: the route signatures below name the
# framework's `Depends`/`Query` passed in at run time, which string annotations lose.
import os
from typing import Annotated, Any

from pydantic import BaseModel

HELLO = {"message": "Hello, World!"}
TEXT = "Hello, World!"


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def port() -> int:
    """The port the runner picked, passed in ``BENCH_PORT``."""
    return int(os.environ.get("BENCH_PORT", "8000"))


class ItemOut(BaseModel):
    """What ``GET /items/{item_id}`` returns; the handler's extra fields are filtered out."""

    id: int
    name: str
    price: float


def declare_api_routes(app: Any, depends: Any, query: Any) -> None:
    """The FastAPI-style routes, declared with the same code on FastAPI and data-bridge
    (``depends`` and ``query`` are the framework's ``Depends`` and ``Query``)."""

    def pagination(
        limit: Annotated[int, query(ge=1, le=100)] = 10, offset: int = 0
    ) -> dict[str, int]:
        return {"limit": limit, "offset": offset}

    @app.get("/search")
    async def search(
        q: str, page: Annotated[dict[str, int], depends(pagination)]
    ) -> dict[str, Any]:
        return {"q": q, **page}

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def read_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "price": 9.99, "secret": "filtered"}
