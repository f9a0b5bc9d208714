"""Errors and limits: handler exceptions, HTTPException, route timeouts, cancellation
on client disconnect, body and in-flight limits, malformed and slow requests. After
every rejection the server must keep serving."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from data_bridge import App, HTTPException, Request, Response

from .conftest import (
    Running,
    connect,
    raw_request,
    recv_all,
    run_native_server,
    run_server,
    run_server_info,
    status_of,
)


@dataclass
class Flags:
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    calls: int = 0


def slow_route(app: App, path: str, flags: Flags, seconds: float = 10.0, **kw: Any) -> None:
    """Adds an ``async def`` route that sleeps, recording start and cancellation."""

    @app.get(path, **kw)
    async def slow() -> str:
        flags.calls += 1
        flags.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            flags.cancelled.set()
            raise
        finally:
            flags.finished.set()
        return "done"


def error_app(debug: bool = False) -> App:
    app = App(debug=debug)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/boom-sync")
    def boom_sync() -> None:
        raise RuntimeError("sync boom")

    @app.get("/unencodable")
    async def unencodable() -> Any:
        return {"x": object()}

    @app.get("/bad-header")
    async def bad_header() -> Response:
        return Response("x", headers={"x-bad": "a\nb"})

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(
            418, "teapot", headers={"X-Reason": "tea", "WWW-Authenticate": "Bearer"}
        )

    @app.get("/own-content-type")
    async def own_content_type() -> None:
        raise HTTPException(400, "plain", headers={"Content-Type": "text/plain"})

    @app.get("/default-detail")
    def default_detail() -> None:
        raise HTTPException(404)

    @app.get("/structured")
    async def structured() -> None:
        raise HTTPException(409, {"code": "conflict", "ids": [1, 2]})

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_server(error_app()) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_handler_exception_is_500_without_traceback(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="data_bridge"):
        for path in ["/boom", "/boom-sync", "/unencodable"]:
            resp = client.get(path)
            assert resp.status_code == 500, path
            assert resp.headers["content-type"] == "application/json"
            assert resp.json() == {"detail": "Internal Server Error"}
    assert "RuntimeError: boom" in caplog.text
    assert "sync boom" in caplog.text
    assert client.get("/ok").json() == "ok"


def test_invalid_response_header_is_500(client: httpx.Client) -> None:
    resp = client.get("/bad-header")
    assert resp.status_code == 500
    assert client.get("/ok").json() == "ok"


def test_debug_mode_includes_the_traceback() -> None:
    with run_server(error_app(debug=True)) as url, httpx.Client(base_url=url, timeout=10) as c:
        body = c.get("/boom").json()
        assert body["detail"] == "Internal Server Error"
        assert "RuntimeError: boom" in body["traceback"]
        assert "Traceback" in body["traceback"]
        assert "sync boom" in c.get("/boom-sync").json()["traceback"]
        assert c.get("/ok").json() == "ok"


def test_http_exception(client: httpx.Client) -> None:
    resp = client.get("/teapot")
    assert resp.status_code == 418
    assert resp.json() == {"detail": "teapot"}
    assert resp.headers["x-reason"] == "tea"
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.headers["content-type"] == "application/json"
    resp = client.get("/default-detail")
    assert (resp.status_code, resp.json()) == (404, {"detail": "Not Found"})
    resp = client.get("/structured")
    assert (resp.status_code, resp.json()) == (409, {"detail": {"code": "conflict", "ids": [1, 2]}})


def test_http_exception_content_type_header_is_not_duplicated(client: httpx.Client) -> None:
    resp = client.get("/own-content-type")
    assert resp.status_code == 400
    # As in FastAPI, a content-type given in the headers replaces the JSON one.
    assert resp.headers.get_list("content-type") == ["text/plain"]


def test_route_timeout_is_504_and_cancels_the_handler() -> None:
    app = App()
    flags = Flags()
    slow_route(app, "/slow", flags, timeout=0.2)
    with run_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        start = time.monotonic()
        resp = c.get("/slow")
        elapsed = time.monotonic() - start
        assert resp.status_code == 504
        assert resp.json() == {"detail": "Gateway Timeout"}
        assert 0.15 < elapsed < 2.0
        assert flags.cancelled.wait(3), "the handler was not cancelled"
        assert c.get("/health").status_code == 200


def test_app_timeout_applies_to_every_route() -> None:
    app = App(timeout=0.2)
    flags, patient = Flags(), Flags()
    slow_route(app, "/slow", flags)
    slow_route(app, "/patient", patient, seconds=0.4, timeout=3.0)

    @app.get("/sync-slow")
    def sync_slow() -> str:
        time.sleep(0.5)
        return "late"

    with run_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/slow").status_code == 504
        assert flags.cancelled.wait(3)
        resp = c.get("/patient")
        assert (resp.status_code, resp.json()) == (200, "done")
        assert not patient.cancelled.is_set()
        start = time.monotonic()
        assert c.get("/sync-slow").status_code == 504
        assert time.monotonic() - start < 0.45
        time.sleep(0.4)  # let the worker thread finish before the server stops


def test_client_disconnect_cancels_the_handler() -> None:
    app = App()
    flags = Flags()
    slow_route(app, "/slow", flags)
    with run_server_info(app) as running:
        sock = connect(running.address)
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert flags.started.wait(5)
        sock.close()
        assert flags.cancelled.wait(3), "the handler was not cancelled after the disconnect"
        with httpx.Client(base_url=running.base_url, timeout=10) as c:
            assert c.get("/health").status_code == 200


# -- body size ------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited() -> Iterator[tuple[Running, Flags]]:
    app = App()
    flags = Flags()

    @app.post("/upload")
    async def upload(request: Request) -> int:
        flags.calls += 1
        return len(await request.body())

    with run_server_info(app, max_body_size=1024) as running:
        yield running, flags


def test_body_within_limit_is_accepted(limited: tuple[Running, Flags]) -> None:
    running, _ = limited
    with httpx.Client(base_url=running.base_url, timeout=10) as c:
        assert c.post("/upload", content=b"a" * 1024).json() == 1024


def test_declared_large_body_is_413_without_running_the_handler(
    limited: tuple[Running, Flags],
) -> None:
    running, flags = limited
    before = flags.calls
    with httpx.Client(base_url=running.base_url, timeout=10) as c:
        resp = c.post("/upload", content=b"a" * 4096)
        assert resp.status_code == 413
        assert resp.json() == {"detail": "Request body too large"}
        assert flags.calls == before
        assert c.post("/upload", content=b"ok").json() == 2


def test_chunked_large_body_is_413(limited: tuple[Running, Flags]) -> None:
    # A body of unknown length is streamed to the handler: its read raises the 413.
    running, flags = limited
    before = flags.calls

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"b" * 512

    with httpx.Client(base_url=running.base_url, timeout=10) as c:
        resp = c.post("/upload", content=chunks())
        assert resp.status_code == 413
        assert resp.json() == {"detail": "Request body too large"}
        assert flags.calls == before + 1
        assert c.post("/upload", content=b"ok").json() == 2


def test_connection_is_closed_after_413(limited: tuple[Running, Flags]) -> None:
    running, _ = limited
    request = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" + b"a" * 4096
    with connect(running.address) as sock:
        sock.sendall(request)
        try:
            response = recv_all(sock, timeout=3)
        except TimeoutError as exc:
            pytest.fail(f"the connection stayed open after the 413: {exc}")
    assert status_of(response) == 413


# -- in-flight limit ----------------------------------------------------------------


def test_overload_is_503_with_retry_after() -> None:
    app = App()
    app.constant("/constant", [1])
    started, gate = threading.Event(), threading.Event()

    @app.get("/work")
    async def work() -> str:
        started.set()
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return "worked"

    with (
        run_server(app, max_pending=1) as url,
        httpx.Client(base_url=url, timeout=10) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        held = pool.submit(c.get, "/work")
        try:
            assert started.wait(5)
            resp = c.get("/work")
            assert resp.status_code == 503
            assert resp.json() == {"detail": "Service Unavailable"}
            assert int(resp.headers["retry-after"]) >= 0
            # Native routes do not count against the limit.
            assert c.get("/health").status_code == 200
            assert c.get("/constant").json() == [1]
        finally:
            gate.set()
        assert held.result(5).json() == "worked"
        assert c.get("/work").json() == "worked"


# -- malformed and slow requests -------------------------------------------------------


@pytest.fixture(scope="module")
def raw_server() -> Iterator[Running]:
    with run_server_info(error_app()) as running:
        yield running


def assert_serving(running: Running) -> None:
    response = raw_request(
        running.address, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(response) == 200
    assert response.endswith(b'"ok"')


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x00\x01\x02\x03\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    ],
    ids=["garbage", "binary", "bad-version", "bad-header", "huge-header"],
)
def test_malformed_requests_are_rejected(raw_server: Running, data: bytes, status: int) -> None:
    response = raw_request(raw_server.address, data)  # read until the server closes
    assert status_of(response) == status
    assert_serving(raw_server)


def test_slow_header_sender_does_not_block_others(raw_server: Running) -> None:
    # The default header timeout (30 s) is too long to wait for here.
    with connect(raw_server.address) as slow, connect(raw_server.address) as silent:
        slow.sendall(b"GET /ok HT")
        time.sleep(0.2)
        with httpx.Client(base_url=raw_server.base_url, timeout=5) as c:
            for _ in range(5):
                assert c.get("/ok").json() == "ok"
        slow.sendall(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_all(slow).endswith(b'"ok"')
        silent.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(recv_all(silent)) == 200


@pytest.mark.parametrize(
    "data",
    [b"GET /ok HT", b"GET /ok HTTP/1.1\r\nHost: x\r\n", b"", b"PRI * HTTP/2.0\r\n"],
    ids=["partial-request-line", "partial-headers", "nothing", "partial-h2-preface"],
)
def test_header_timeout_closes_slow_connections(data: bytes) -> None:
    app = error_app()
    with run_native_server(app, header_timeout=0.3) as running:
        with connect(running.address) as sock:
            if data:
                sock.sendall(data)
            start = time.monotonic()
            try:
                leftover = recv_all(sock, timeout=3)
            except TimeoutError:
                pytest.fail(f"the server kept a connection that sent {data!r} open for 3 s")
            assert time.monotonic() - start < 2.5
            assert leftover == b"" or status_of(leftover) in (400, 408)
        assert_serving(running)
