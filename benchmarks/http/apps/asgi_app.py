"""A raw ASGI app with no framework (``benchmarks.http.apps.asgi_app:app``).

Responses are JSON-encoded per request and the POST body is validated with pydantic,
as the frameworks do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic

from benchmarks.http.apps.common import TEXT, Item

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    method: str = scope["method"]
    if method == "GET" and path in ("/json", "/native"):
        await respond(send, 200, JSON_HEADERS, dumps({"message": "Hello, World!"}))
    elif method == "GET" and path == "/plaintext":
        await respond(send, 200, TEXT_HEADERS, TEXT.encode())
    elif method == "GET" and path.startswith("/users/"):
        try:
            user_id = int(path[len("/users/") :])
        except ValueError:
            await respond(send, 422, JSON_HEADERS, dumps({"detail": "user_id must be an int"}))
            return
        await respond(send, 200, JSON_HEADERS, dumps({"user_id": user_id}))
    elif method == "POST" and path == "/items":
        try:
            item = Item.model_validate_json(await read_body(receive))
        except pydantic.ValidationError as exc:
            await respond(send, 422, JSON_HEADERS, exc.json().encode())
            return
        await respond(send, 200, JSON_HEADERS, item.model_dump_json().encode())
    elif method == "GET" and path == "/sleep":
        await asyncio.sleep(0.001)
        await respond(send, 200, JSON_HEADERS, dumps({"message": "Hello, World!"}))
    else:
        await respond(send, 404, JSON_HEADERS, dumps({"detail": "Not Found"}))
