"""FastAPI, served by uvicorn or Granian (``benchmarks.http.apps.fastapi_app:app``)."""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI, Query
from fastapi.responses import PlainTextResponse

from benchmarks.http.apps.common import TEXT, Item, declare_api_routes

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/json")
async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


# FastAPI has no native route: the "native" scenario is the same async handler.
@app.get("/native")
async def native_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/sync")
def sync_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext() -> str:
    return TEXT


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, int]:
    return {"user_id": user_id}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item


@app.get("/sleep")
async def sleep() -> dict[str, str]:
    await asyncio.sleep(0.001)
    return {"message": "Hello, World!"}


declare_api_routes(app, Depends, Query)
