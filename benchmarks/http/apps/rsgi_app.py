"""A raw RSGI app for Granian (``granian --interface rsgi benchmarks.http.apps.rsgi_app:app``).

Responses are JSON-encoded per request and the POST body is validated with pydantic,
as the frameworks do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pydantic
from granian.rsgi import HTTPProtocol, Scope

from benchmarks.http.apps.common import TEXT, Item

JSON_HEADERS = [("content-type", "application/json")]
TEXT_HEADERS = [("content-type", "text/plain; charset=utf-8")]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def app(scope: Scope, proto: HTTPProtocol) -> None:
    path = scope.path
    method = scope.method
    if method == "GET" and path in ("/json", "/native"):
        proto.response_str(200, JSON_HEADERS, dumps({"message": "Hello, World!"}))
    elif method == "GET" and path == "/plaintext":
        proto.response_str(200, TEXT_HEADERS, TEXT)
    elif method == "GET" and path.startswith("/users/"):
        try:
            user_id = int(path[len("/users/") :])
        except ValueError:
            proto.response_str(422, JSON_HEADERS, dumps({"detail": "user_id must be an int"}))
            return
        proto.response_str(200, JSON_HEADERS, dumps({"user_id": user_id}))
    elif method == "POST" and path == "/items":
        try:
            item = Item.model_validate_json(await proto())
        except pydantic.ValidationError as exc:
            proto.response_str(422, JSON_HEADERS, exc.json())
            return
        proto.response_str(200, JSON_HEADERS, item.model_dump_json())
    elif method == "GET" and path == "/sleep":
        await asyncio.sleep(0.001)
        proto.response_str(200, JSON_HEADERS, dumps({"message": "Hello, World!"}))
    else:
        proto.response_str(404, JSON_HEADERS, dumps({"detail": "Not Found"}))
