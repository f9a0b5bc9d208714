"""The in-flight limit (``max_pending``, ``--limit-concurrency``) counts Python work
until it has really ended: a timed-out ``def`` handler until its thread returns, a
cancelled coroutine until it has finished unwinding, background tasks until they are
done, and sync streaming producers, which are also bounded by ``sync_threads``. Open
WebSockets are counted too (see ``test_websocket_limits``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from data_bridge import App, StreamingResponse
from data_bridge.background import BackgroundTasks
from tests.waiting import wait_until

from .conftest import run_server

TIMEOUT = 10.0


def limited_app() -> tuple[App, threading.Event]:
    """An app whose ``/ping`` answers at once, to probe the limit."""
    app = App()
    gate = threading.Event()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    return app, gate


def ping_status(client: httpx.Client) -> int:
    return client.get("/ping").status_code


def assert_held_until_done(
    app: App, path: str, gate: threading.Event, done: threading.Event
) -> None:
    """A request to ``path`` times out (504) yet holds the one pending slot (others get
    503) until ``gate`` opens and its handler has ended (``done``)."""
    with run_server(app, max_pending=1) as url, httpx.Client(base_url=url, timeout=5) as c:
        try:
            assert c.get(path).status_code == 504
            assert ping_status(c) == 503
        finally:
            gate.set()
        assert done.wait(5)
        assert wait_until(lambda: ping_status(c) == 200)


def test_a_timed_out_def_handler_counts_until_its_thread_returns() -> None:
    app, gate = limited_app()
    returned = threading.Event()

    @app.get("/stuck", timeout=0.2)
    def stuck() -> str:
        gate.wait(TIMEOUT)
        returned.set()
        return "late"

    # The thread still runs the handler, holding its request.
    assert_held_until_done(app, "/stuck", gate, returned)


def test_a_cancelled_coroutine_counts_until_it_has_finished() -> None:
    app, gate = limited_app()
    finished = threading.Event()

    @app.get("/slow-cleanup", timeout=0.2)
    async def slow_cleanup() -> str:
        try:
            await asyncio.sleep(TIMEOUT)
        except asyncio.CancelledError:
            while not gate.is_set():
                await asyncio.sleep(0.01)
            finished.set()
            raise
        return "late"

    assert_held_until_done(app, "/slow-cleanup", gate, finished)


def test_a_def_handler_still_waiting_for_a_thread_is_let_go_with_its_request() -> None:
    app, gate = limited_app()
    ran: list[str] = []

    @app.get("/hold")
    def hold() -> str:
        ran.append("hold")
        gate.wait(TIMEOUT)
        return "held"

    @app.get("/queued", timeout=0.2)
    def queued() -> str:
        ran.append("queued")
        return "ran"

    with (
        run_server(app, max_pending=2, sync_threads=1) as url,
        httpx.Client(base_url=url, timeout=5) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        held = pool.submit(c.get, "/hold")
        try:
            assert wait_until(lambda: ran == ["hold"])
            assert c.get("/queued").status_code == 504
            # The queued request gave its place back without waiting for the thread.
            assert ping_status(c) == 200
        finally:
            gate.set()
        assert held.result(5).status_code == 200
        time.sleep(0.2)
        assert ran == ["hold"], "a request that timed out in the queue still ran"


def test_background_tasks_count_until_they_finish() -> None:
    app, gate = limited_app()
    finished = threading.Event()

    async def slow() -> None:
        while not gate.is_set():
            await asyncio.sleep(0.01)
        finished.set()

    @app.get("/later")
    async def later(tasks: BackgroundTasks) -> str:
        tasks.add_task(slow)
        return "now"

    with run_server(app, max_pending=1) as url, httpx.Client(base_url=url, timeout=5) as c:
        try:
            assert c.get("/later").json() == "now"
            assert ping_status(c) == 503
        finally:
            gate.set()
        assert finished.wait(5)
        assert wait_until(lambda: ping_status(c) == 200)


@pytest.fixture
def streams() -> Iterator[tuple[App, threading.Event, list[int]]]:
    app = App()
    gate = threading.Event()
    # How many sync producers run now, and the most that ever ran at once.
    running = [0, 0]
    lock = threading.Lock()

    def produce() -> Iterator[bytes]:
        with lock:
            running[0] += 1
            running[1] = max(running)
        try:
            yield b"first"
            gate.wait(TIMEOUT)
            yield b"last"
        finally:
            with lock:
                running[0] -= 1

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(produce())

    yield app, gate, running
    gate.set()


def test_sync_stream_producers_are_bounded_by_sync_threads(
    streams: tuple[App, threading.Event, list[int]],
) -> None:
    app, gate, running = streams

    def fetch(client: httpx.Client) -> bytes:
        return client.get("/stream").content

    with (
        run_server(app, sync_threads=1) as url,
        httpx.Client(base_url=url, timeout=5) as first,
        httpx.Client(base_url=url, timeout=5) as second,
        ThreadPoolExecutor(2) as pool,
    ):
        a = pool.submit(fetch, first)
        b = pool.submit(fetch, second)
        assert wait_until(lambda: running[0] == 1)
        time.sleep(0.3)
        assert running[1] == 1, "a second sync producer got a thread of its own"
        gate.set()
        assert a.result(5) == b.result(5) == b"firstlast"
        assert running == [0, 1]
