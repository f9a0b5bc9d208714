"""Robyn: ``python -m benchmarks.http.apps.robyn_app --processes 1 --workers 1``.

Async handlers as everywhere else; ``/sync`` is a plain ``def`` handler and ``/native``
is a Robyn const route (computed once, then served from Rust), its counterpart of
data-bridge's ``app.constant``.
"""

# No ``from __future__ import annotations`` here: Robyn reads handler annotations with
# ``inspect.signature`` and does not resolve strings, so ``user_id: int`` and
# ``item: Item`` must stay real types.
import asyncio

from robyn import Robyn

from benchmarks.http.apps.common import TEXT, Item, port

app = Robyn(__file__)


@app.get("/json")
async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/native", const=True)
def native_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/sync")
def sync_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/plaintext")
async def plaintext() -> str:
    return TEXT


@app.get("/users/:user_id")
async def get_user(user_id: int) -> dict[str, int]:
    return {"user_id": user_id}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item


@app.get("/sleep")
async def sleep() -> dict[str, str]:
    await asyncio.sleep(0.001)
    return {"message": "Hello, World!"}


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=port(), _check_port=False)
