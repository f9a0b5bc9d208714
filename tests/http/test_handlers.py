"""Handlers: async and sync execution, JSON encoding of return values, pydantic bodies,
Response classes, the Request object, native routes, HTTP/2, Unix sockets, keep-alive
and pipelining, and many concurrent requests."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import decimal
import enum
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pydantic
import pytest

import data_bridge.pyloop
from data_bridge import (
    App,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
)

from .conftest import run_server

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var")


class Color(enum.Enum):
    red = "red"


class Item(pydantic.BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Stamp(pydantic.BaseModel):
    at: datetime.datetime
    id: uuid.UUID


def make_app() -> App:
    app = App()

    @app.get("/async")
    async def async_handler() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {
            "pyloop": isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop),
            "task": asyncio.current_task() is not None,
            "thread": threading.get_ident(),
        }

    @app.get("/sync")
    def sync_handler() -> dict[str, Any]:
        return {"thread": threading.get_ident()}

    @app.get("/sleep-sync")
    def sleep_sync() -> str:
        time.sleep(0.6)
        return "slept"

    @app.get("/ctx/{value}")
    async def ctx(value: str) -> str:
        request_var.set(value)
        await asyncio.sleep(0.05)
        return request_var.get()

    @app.get("/encode")
    async def encode() -> dict[str, Any]:
        return {
            "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "naive": datetime.datetime(2024, 1, 2, 3, 4, 5, 600000),
            "date": datetime.date(2024, 1, 2),
            "uuid": uuid.UUID(int=1),
            "decimal": decimal.Decimal("1.50"),
            "enum": Color.red,
            "model": Stamp(
                at=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC), id=uuid.UUID(int=2)
            ),
            "tuple": (1, 2),
            "set": {3},
            "bytes": b"raw",
            "none": None,
            "unicode": "héllo ✓",
        }

    @app.get("/model")
    def model() -> Item:
        return Item(name="x", price=1.5)

    @app.get("/scalar/{kind}")
    async def scalar(kind: str) -> Any:
        return {"none": None, "str": "text", "int": 7, "list": [1, "a"]}[kind]

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.put("/items/{item_id}")
    def replace(item_id: int, item: Item, dry: bool = False) -> dict[str, Any]:
        return {"item_id": item_id, "item": item, "dry": dry}

    @app.get("/responses/{kind}")
    def responses(kind: str) -> Response:
        if kind == "text":
            return PlainTextResponse("hi", headers={"X-Custom": "1"})
        if kind == "html":
            return HTMLResponse("<p>hi</p>", status_code=202)
        if kind == "json":
            return JSONResponse({"at": datetime.date(2024, 1, 2)}, status_code=201)
        if kind == "bytes":
            return Response(b"\x00\x01", media_type="application/octet-stream")
        if kind == "empty":
            return Response(status_code=204)
        if kind == "redirect":
            return RedirectResponse("/new?x=1")
        if kind == "found":
            return RedirectResponse("/other", status_code=302)
        resp = PlainTextResponse("cookies")
        resp.set_cookie("sid", "x", httponly=True, max_age=60)
        resp.set_cookie("theme", "dark", secure=True, samesite="strict")
        return resp

    @app.api_route("/inspect/{name}", methods=["GET", "POST"])
    async def inspect(name: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "method": request.method,
            "path": request.path,
            "url": request.url,
            "path_params": request.path_params,
            "query": dict(request.query_params.items()),
            "tags": request.query_params.getlist("tag"),
            "x_tag": request.headers.getlist("x-tag"),
            "x_tag_upper": request.headers["X-TAG"],
            "has_missing": "x-missing" in request.headers,
            "cookies": request.cookies,
            "client": request.client,
            "body": body.decode(),
            "json": await request.json() if body else None,
        }

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_server(make_app()) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_async_handler_runs_as_a_task_on_pyloop(client: httpx.Client) -> None:
    resp = client.get("/async")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["pyloop"] is True
    assert body["task"] is True


def test_sync_handler_runs_off_the_loop_thread(client: httpx.Client) -> None:
    loop_thread = client.get("/async").json()["thread"]
    assert client.get("/sync").json()["thread"] != loop_thread


def test_sync_handler_does_not_block_the_loop(client: httpx.Client) -> None:
    with ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(client.get, "/sleep-sync")
        time.sleep(0.1)
        start = time.monotonic()
        assert client.get("/async").status_code == 200
        assert time.monotonic() - start < 0.4
        assert sleeping.result(5).json() == "slept"


def test_context_variables_are_isolated_per_request(client: httpx.Client) -> None:
    values = [f"v{i}" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda v: client.get(f"/ctx/{v}").json(), values))
    assert results == values


def test_special_values_are_encoded_like_fastapi(client: httpx.Client) -> None:
    assert client.get("/encode").json() == {
        "dt": "2024-01-02T03:04:05Z",
        "naive": "2024-01-02T03:04:05.600000",
        "date": "2024-01-02",
        "uuid": "00000000-0000-0000-0000-000000000001",
        "decimal": "1.50",
        "enum": "red",
        "model": {"at": "2024-01-02T00:00:00Z", "id": "00000000-0000-0000-0000-000000000002"},
        "tuple": [1, 2],
        "set": [3],
        "bytes": "raw",
        "none": None,
        "unicode": "héllo ✓",
    }


def test_models_and_scalars_are_json(client: httpx.Client) -> None:
    assert client.get("/model").json() == {"name": "x", "price": 1.5, "tags": []}
    for kind, expected in [("none", b"null"), ("str", b'"text"'), ("int", b"7")]:
        resp = client.get(f"/scalar/{kind}")
        assert resp.content == expected
        assert resp.headers["content-type"] == "application/json"
    assert client.get("/scalar/list").json() == [1, "a"]


def test_pydantic_body_is_validated_and_echoed(client: httpx.Client) -> None:
    resp = client.post("/items", json={"name": "pen", "price": "2.5", "tags": ["a"]})
    assert resp.status_code == 201
    assert resp.json() == {"name": "pen", "price": 2.5, "tags": ["a"]}
    resp = client.put("/items/3?dry=true", json={"name": "pen", "price": 1})
    assert resp.status_code == 200
    assert resp.json() == {
        "item_id": 3,
        "item": {"name": "pen", "price": 1.0, "tags": []},
        "dry": True,
    }


def test_missing_and_invalid_body_fields_are_422(client: httpx.Client) -> None:
    resp = client.post("/items", json={"price": "cheap"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    by_loc = {tuple(e["loc"]): e for e in detail}
    assert set(by_loc) == {("body", "name"), ("body", "price")}
    assert by_loc["body", "name"]["type"] == "missing"
    assert by_loc["body", "price"]["type"] == "float_parsing"
    assert by_loc["body", "price"]["input"] == "cheap"


def test_invalid_json_is_422(client: httpx.Client) -> None:
    resp = client.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"


def test_missing_body_is_422_missing(client: httpx.Client) -> None:
    resp = client.post("/items")
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert error["loc"] == ["body"]
    # FastAPI (and the python-api spec): {"type": "missing", "loc": ["body"], ...}
    assert error["type"] == "missing", error


def test_query_and_body_errors_are_reported_together(client: httpx.Client) -> None:
    resp = client.put("/items/3?dry=maybe", json={"name": "pen", "price": "x"})
    assert resp.status_code == 422
    locs = [e["loc"] for e in resp.json()["detail"]]
    assert ["body", "price"] in locs
    assert ["query", "dry"] in locs, locs


def test_response_classes(client: httpx.Client) -> None:
    resp = client.get("/responses/text")
    assert (resp.status_code, resp.text) == (200, "hi")
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-custom"] == "1"
    resp = client.get("/responses/html")
    assert (resp.status_code, resp.text) == (202, "<p>hi</p>")
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    resp = client.get("/responses/json")
    assert (resp.status_code, resp.json()) == (201, {"at": "2024-01-02"})
    assert resp.headers["content-type"] == "application/json"
    resp = client.get("/responses/bytes")
    assert resp.content == b"\x00\x01"
    assert resp.headers["content-type"] == "application/octet-stream"
    resp = client.get("/responses/empty")
    assert (resp.status_code, resp.content) == (204, b"")


def test_redirects(client: httpx.Client) -> None:
    resp = client.get("/responses/redirect")
    assert resp.status_code == 307
    assert resp.headers["location"] == "/new?x=1"
    resp = client.get("/responses/found")
    assert resp.status_code == 302
    assert resp.headers["location"] == "/other"


def test_set_cookie(client: httpx.Client) -> None:
    resp = client.get("/responses/cookies")
    cookies = resp.headers.get_list("set-cookie")
    assert len(cookies) == 2
    sid = next(c for c in cookies if c.startswith("sid="))
    assert sid.startswith("sid=x;")
    assert "HttpOnly" in sid
    assert "Max-Age=60" in sid
    assert "Path=/" in sid
    theme = next(c for c in cookies if c.startswith("theme="))
    assert "Secure" in theme
    assert "SameSite=strict" in theme


def test_request_object(client: httpx.Client) -> None:
    resp = client.post(
        "/inspect/some%20thing",
        params=[("tag", "a"), ("tag", "b"), ("q", "x y")],
        headers=[("X-Tag", "one"), ("X-Tag", "two"), ("Cookie", "sid=abc; theme=dark")],
        json={"a": 1},
    )
    assert resp.status_code == 200
    body = resp.json()
    host, port = client.base_url.host, client.base_url.port
    assert body["method"] == "POST"
    assert body["path"] == "/inspect/some%20thing"
    assert body["url"] == f"http://{host}:{port}/inspect/some%20thing?tag=a&tag=b&q=x+y"
    assert body["path_params"] == {"name": "some thing"}
    assert body["query"] == {"tag": "b", "q": "x y"}
    assert body["tags"] == ["a", "b"]
    assert body["x_tag"] == ["one", "two"]
    assert body["x_tag_upper"] == "one"
    assert body["has_missing"] is False
    assert body["cookies"] == {"sid": "abc", "theme": "dark"}
    assert body["client"][0] == "127.0.0.1"
    assert isinstance(body["client"][1], int) and body["client"][1] != port
    assert body["body"] == '{"a":1}'
    assert body["json"] == {"a": 1}


def test_chunked_request_body_is_reassembled(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"chunky", "price": 3}'

    resp = client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 201
    assert resp.json()["name"] == "chunky"


def test_sync_handlers_run_at_most_sync_threads_at_once() -> None:
    app = App()
    lock = threading.Lock()
    running = 0
    peak = 0

    @app.get("/work")
    def work() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return peak

    with (
        run_server(app, sync_threads=2) as url,
        httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=8)) as c,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(pool.map(lambda _: c.get("/work").status_code, range(16)))
    assert statuses == [200] * 16
    assert peak == 2
