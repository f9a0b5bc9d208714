"""data-bridge: ``python -m benchmarks.http.apps.data_bridge_app`` (one process, ``serve()``)."""

from __future__ import annotations

import asyncio
import os

from benchmarks.http.apps.common import HELLO, TEXT, Item, declare_api_routes, port
from data_bridge import App, Depends, PlainTextResponse, Query, serve

app = App()
app.constant("/native", HELLO)


@app.get("/json")
async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/sync")
def sync_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/plaintext")
async def plaintext() -> PlainTextResponse:
    return PlainTextResponse(TEXT)


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

if __name__ == "__main__":
    # No access log: the peers run without theirs too. HTTPS when the runner says.
    serve(
        app,
        host="127.0.0.1",
        port=port(),
        access_log=False,
        ssl_certfile=os.environ.get("BENCH_SSL_CERTFILE"),
        ssl_keyfile=os.environ.get("BENCH_SSL_KEYFILE"),
    )
