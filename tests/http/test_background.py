"""Background tasks run after the response has been sent: the client does not wait for
them, they run in order, sync ones off the loop thread, and their failures are logged
without touching the response."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest

from data_bridge import App, Depends, JSONResponse, Response
from data_bridge.background import BackgroundTask, BackgroundTasks
from tests.waiting import wait_until

from .conftest import run_server

SLOW = 1.0


def test_the_response_arrives_before_a_slow_background_task_ends() -> None:
    app = App()
    done = threading.Event()

    async def slow() -> None:
        await asyncio.sleep(SLOW)
        done.set()

    @app.get("/")
    async def root(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(slow)
        return {"ok": True}

    with run_server(app) as url:
        started = time.monotonic()
        resp = httpx.get(url + "/", timeout=5)
        elapsed = time.monotonic() - started
        assert resp.json() == {"ok": True}
        assert resp.headers["content-type"] == "application/json"
        assert elapsed < SLOW / 2, elapsed
        assert not done.is_set()
        assert done.wait(5)


def test_sync_tasks_run_off_the_loop_thread_in_order_after_async_ones() -> None:
    app = App()
    seen: list[tuple[str, str]] = []
    finished = threading.Event()

    async def first(tag: str) -> None:
        seen.append((tag, threading.current_thread().name))

    def second(tag: str, *, last: bool = False) -> None:
        time.sleep(0.05)
        seen.append((tag, threading.current_thread().name))
        if last:
            finished.set()

    @app.get("/")
    def root(tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(first, "a")
        tasks.add_task(second, "b", last=True)
        return {"n": len(tasks.tasks)}

    with run_server(app) as url:
        assert httpx.get(url + "/", timeout=5).json() == {"n": 2}
        assert finished.wait(5)
    assert [tag for tag, _ in seen] == ["a", "b"]
    assert seen[0][1] == "data-bridge-test-server"
    assert seen[1][1] != "data-bridge-test-server"


def test_dependencies_and_handler_share_the_request_tasks() -> None:
    app = App()
    log: list[str] = []

    def audit(tasks: BackgroundTasks) -> None:
        tasks.add_task(log.append, "dependency")

    @app.post("/items", status_code=201)
    async def create(tasks: BackgroundTasks, _: None = Depends(audit)) -> dict[str, str]:
        tasks.add_task(log.append, "handler")
        return {"made": "yes"}

    with run_server(app) as url:
        resp = httpx.post(url + "/items", timeout=5)
        assert (resp.status_code, resp.json()) == (201, {"made": "yes"})
        assert wait_until(lambda: len(log) == 2)
    assert log == ["dependency", "handler"]


@pytest.mark.parametrize("kind", ["plain", "json", "injected"])
def test_response_background(kind: str) -> None:
    app = App()
    log: list[str] = []

    @app.get("/")
    def root(tasks: BackgroundTasks) -> Response:
        tasks.add_task(log.append, "injected")
        if kind == "plain":
            return Response("hi", background=BackgroundTask(log.append, "own"))
        if kind == "json":
            return JSONResponse({"a": 1}, background=BackgroundTask(log.append, "own"))
        return Response("hi")

    with run_server(app) as url:
        resp = httpx.get(url + "/", timeout=5)
        assert resp.status_code == 200
        assert wait_until(lambda: bool(log))
        time.sleep(0.05)
    # As FastAPI: the response's own background wins over the injected tasks.
    assert log == (["injected"] if kind == "injected" else ["own"])


def test_background_of_a_fast_path_handler_and_head() -> None:
    app = App()
    log: list[str] = []

    @app.api_route("/", methods=["GET", "HEAD"])
    def root() -> Response:
        return Response("body", background=BackgroundTask(log.append, "ran"))

    with run_server(app) as url:
        assert httpx.get(url + "/", timeout=5).text == "body"
        assert httpx.head(url + "/", timeout=5).status_code == 200
        assert wait_until(lambda: len(log) == 2)


def test_a_failing_task_is_logged_and_stops_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    log: list[str] = []

    def boom() -> None:
        raise RuntimeError("background failure")

    @app.get("/")
    def root(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(boom)
        tasks.add_task(log.append, "after")
        return {"ok": True}

    with caplog.at_level(logging.ERROR, logger="data_bridge"), run_server(app) as url:
        assert httpx.get(url + "/", timeout=5).json() == {"ok": True}
        assert wait_until(lambda: "background failure" in caplog.text)
        # The server is unharmed.
        assert httpx.get(url + "/", timeout=5).json() == {"ok": True}
    assert "Exception in background task" in caplog.text
    assert log == []
