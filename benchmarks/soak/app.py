"""The app the soak runs: every kind of route a real service has (JSON, validated
bodies, streaming, files, errors, timeouts), plus ``/_soak/stats`` for the numbers
only the process itself can read. ``python -m benchmarks.soak.app``."""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from data_bridge import App, FileResponse, HTTPException, Request, StreamingResponse, serve

app = App()
FILE = os.path.join(tempfile.mkdtemp(prefix="data-bridge-soak-"), "file.bin")
with open(FILE, "wb") as f:
    f.write(os.urandom(256 * 1024))


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/json")
async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/sync")
def sync_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.post("/items")
async def echo(item: Item) -> Item:
    return item


@app.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, int]:
    return {"user_id": user_id}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b"x" * 4096
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@app.get("/file")
async def file() -> FileResponse:
    return FileResponse(FILE)


@app.get("/raise")
async def raises() -> None:
    raise RuntimeError("a handler that fails")


@app.get("/http-error")
async def http_error() -> None:
    raise HTTPException(409, "conflict")


@app.get("/slow", timeout=0.05)
async def slow() -> None:
    await asyncio.sleep(10)


@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


@app.get("/_soak/stats")
def stats() -> dict[str, Any]:
    gc.collect()
    return {"objects": len(gc.get_objects()), "threads": threading.active_count()}


if __name__ == "__main__":
    # As it ships: the access log on (written to a pipe the runner drains).
    serve(app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]))
