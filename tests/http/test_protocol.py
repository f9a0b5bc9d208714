"""Native routes (constants, health, readiness) and the transport: HTTP/1.1 framing,
keep-alive and pipelining, HTTP/2 prior knowledge, Unix sockets, and many concurrent
requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

import data_bridge.pyloop
from data_bridge import App, PlainTextResponse, Request

from .conftest import connect, recv_all, run_server, run_server_info


class Item(pydantic.BaseModel):
    name: str
    price: float


def make_app() -> App:
    app = App()
    app.constant("/version", {"version": "1.0", "n": [1, 2]})
    app.constant("/robots.txt", b"User-agent: *", media_type="text/plain", status_code=203)

    @app.get("/async")
    async def async_handler() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"pyloop": isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)}

    @app.get("/sync")
    def sync_handler() -> dict[str, Any]:
        return {"thread": threading.get_ident()}

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse("hi")

    @app.get("/ctx/{value}")
    async def ctx(value: str) -> str:
        await asyncio.sleep(0.05)
        return value

    @app.get("/scalar/{kind}")
    async def scalar(kind: str) -> Any:
        return {"none": None, "str": "text", "int": 7, "list": [1, "a"]}[kind]

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.put("/items/{item_id}")
    def replace(item_id: int, item: Item) -> dict[str, Any]:
        return {"item_id": item_id, "item": item}

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_server(make_app()) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_constant_route(client: httpx.Client) -> None:
    first = client.get("/version")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"version": "1.0", "n": [1, 2]}
    assert client.get("/version").content == first.content
    head = client.head("/version")
    assert (head.status_code, head.content) == (200, b"")
    assert client.post("/version").status_code == 405
    resp = client.get("/robots.txt")
    assert (resp.status_code, resp.content) == (203, b"User-agent: *")
    assert resp.headers["content-type"] == "text/plain"


def test_responses_carry_date_and_length(client: httpx.Client) -> None:
    for path in ["/async", "/sync", "/version", "/health", "/nope", "/text"]:
        resp = client.get(path)
        assert "date" in resp.headers, path
        assert resp.headers["content-length"] == str(len(resp.content)), path


def test_health_and_ready(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})
    assert resp.headers["content-type"] == "application/json"
    resp = client.get("/ready")
    assert (resp.status_code, resp.json()) == (200, {"status": "ready"})


def test_app_routes_replace_health_and_ready() -> None:
    app = App()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "custom"}

    with run_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/health").json() == {"status": "custom"}
        assert c.get("/ready").json() == {"status": "ready"}


def test_http2_prior_knowledge(client: httpx.Client) -> None:
    pytest.importorskip("h2")
    with httpx.Client(base_url=client.base_url, http1=False, http2=True, timeout=10) as h2:
        resp = h2.get("/async")
        assert resp.http_version == "HTTP/2"
        assert resp.json()["pyloop"] is True
        resp = h2.post("/items", json={"name": "h2", "price": 1})
        assert (resp.status_code, resp.json()["name"]) == (201, "h2")
        # Concurrent streams on one connection: the 20 sleeps overlap.
        start = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            values = [f"s{i}" for i in range(20)]
            results = list(pool.map(lambda v: h2.get(f"/ctx/{v}").json(), values))
        assert results == values
        assert time.monotonic() - start < 0.05 * 20


def test_unix_socket_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sock")
    app = App()

    @app.get("/who")
    async def who(request: Request) -> dict[str, Any]:
        return {"client": request.client}

    with run_server_info(app, uds=path) as running:
        assert running.bound == path
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=10) as c:
            assert c.get("/who").json() == {"client": None}
            assert c.get("/health").json() == {"status": "ok"}


def test_keep_alive_and_pipelining(client: httpx.Client) -> None:
    address = (client.base_url.host, client.base_url.port or 80)
    with connect(address) as sock:
        request = b"GET /scalar/%s HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request % b"int" + request % b"str" + request % b"none")
        sock.sendall(b"GET /scalar/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(sock)
    responses = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == 4
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [
        b"7",
        b'"text"',
        b"null",
        b'[1,"a"]',
    ]
    assert b"connection: close" in responses[-1].lower()


def test_many_concurrent_requests(client: httpx.Client) -> None:
    def one(i: int) -> tuple[int, Any, Any]:
        if i % 3 == 0:
            resp = client.put(f"/items/{i}", json={"name": f"n{i}", "price": i})
            return resp.status_code, resp.json()["item_id"], resp.json()["item"]["name"]
        if i % 3 == 1:
            resp = client.get(f"/ctx/c{i}")
            return resp.status_code, resp.json(), None
        resp = client.get("/version")
        return resp.status_code, resp.json()["version"], None

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(200)))
    for i, (status, value, extra) in enumerate(results):
        assert status == 200
        if i % 3 == 0:
            assert (value, extra) == (i, f"n{i}")
        elif i % 3 == 1:
            assert value == f"c{i}"
        else:
            assert value == "1.0"
