"""JSON request bodies that are not JSON the server can take: too deeply nested,
invalid UTF-8, integers too long to convert. Each is answered as malformed JSON is
(``422`` ``json_invalid``) on every kind of body route, and ``request.json()`` raises
``json.JSONDecodeError`` for it, never a server error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pydantic
import pytest

from data_bridge import App, Body, Request

from .conftest import run_server

JSON = {"content-type": "application/json"}


class Item(pydantic.BaseModel):
    name: str


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def make_app() -> App:
    app = App()

    @app.post("/model")
    def model(item: Item) -> Item:
        return item

    @app.post("/dict")
    def as_dict(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.post("/list")
    def as_list(body: Annotated[list[Any], Body()]) -> list[Any]:
        return body

    @app.post("/request")
    async def read(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return {"error": type(exc).__name__, "msg": exc.msg}
        return {"parsed": body}

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_server(make_app()) as base, httpx.Client(base_url=base, timeout=10) as c:
        yield c


BAD_BODIES = {
    "arrays 100000 deep": b"[" * 100_000,
    "objects 100000 deep": b'{"a":' * 100_000,
    "arrays 250 deep, closed": b"[" * 250 + b"]" * 250,
    "objects 250 deep, closed": json.dumps(nested(250)).encode(),
    "invalid UTF-8": b'{"name": "\xff"}',
    "integer of 5000 digits": b'{"name": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("path", ["/model", "/dict", "/list"])
@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_unparsable_bodies_are_422_json_invalid(
    client: httpx.Client, path: str, body: bytes
) -> None:
    resp = client.post(path, content=body, headers=JSON)
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["msg"] == "JSON decode error"
    assert error["input"] == {}
    assert error["loc"][0] == "body"
    assert isinstance(error["loc"][1], int)
    assert isinstance(error["ctx"]["error"], str)


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_request_json_raises_json_decode_error(client: httpx.Client, body: bytes) -> None:
    resp = client.post("/request", content=body, headers=JSON)
    assert resp.status_code == 200
    assert resp.json()["error"] == "JSONDecodeError"


def test_the_error_names_the_problem(client: httpx.Client) -> None:
    resp = client.post("/dict", content=b"[" * 100_000, headers=JSON)
    assert resp.json()["detail"][0]["ctx"] == {"error": "Nesting too deep"}
    resp = client.post("/dict", content=b'{"name": "\xff"}', headers=JSON)
    [error] = resp.json()["detail"]
    assert error["loc"] == ["body", 10]
    assert error["ctx"]["error"].startswith("Invalid utf-8")


def test_nesting_within_the_limit_is_parsed(client: httpx.Client) -> None:
    body = nested(100)
    resp = client.post("/dict", json=body)
    assert resp.status_code == 200
    assert resp.json() == body
    assert client.post("/request", json=body).json() == {"parsed": body}
    # A body that parses but fails validation is echoed in the error.
    resp = client.post("/model", json=[[[[]]]])
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["input"] == [[[[]]]]
