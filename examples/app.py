"""The example app that `make run` serves on http://127.0.0.1:8000.

Try:
    curl localhost:8000/                    # async def handler on PyLoop
    curl localhost:8000/version             # constant, served from Rust
    curl localhost:8000/health              # native liveness probe
    curl localhost:8000/users/42            # typed path parameter (422 for /users/x)
    curl localhost:8000/reports/7           # def handler, run off the loop thread
    curl -X POST localhost:8000/items -d '{"name": "pen", "price": 1.5}'
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

import data_bridge
from data_bridge import App, HTTPException

app = App()
app.constant("/version", {"name": "data-bridge", "version": data_bridge.__version__})


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, int | str]:
    if user_id <= 0:
        raise HTTPException(404, "User not found")
    await asyncio.sleep(0)
    return {"user_id": user_id, "name": f"user-{user_id}"}


@app.get("/reports/{report_id}")
def build_report(report_id: int) -> dict[str, int]:
    # A blocking handler: runs in a worker thread, never on the event loop.
    return {"report_id": report_id, "total": sum(range(report_id * 1000))}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


if __name__ == "__main__":
    data_bridge.serve(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000"))
    )
