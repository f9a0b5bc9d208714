"""What handler code sees of the task that runs it: ``asyncio.current_task()``,
cancellation, ``asyncio.timeout``, ``TaskGroup``, anyio cancel scopes, child tasks,
bare ``yield`` (``sleep(0)``) and the errors asyncio raises for bad awaits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from data_bridge import App

from .conftest import run_server


class Seen:
    """What the handlers observed, read by the tests."""

    def __init__(self) -> None:
        self.cleanup = threading.Event()
        self.callback_arg: Any = None


def make_app(seen: Seen) -> App:
    app = App()

    @app.get("/current")
    async def current() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)
        again = asyncio.current_task()
        return {
            "same": again is task,
            "name": str(task.get_name()),
            "done": task.done(),
            "coro": task.get_coro() is not None,
        }

    @app.get("/sleep0")
    async def sleep0() -> int:
        for _ in range(100):
            await asyncio.sleep(0)
        return 100

    @app.get("/timeout")
    async def timeout() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return {"timed_out": True, "cancelling": task.cancelling()}
        return {"timed_out": False}

    @app.get("/wait-for")
    async def wait_for() -> str:
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.05)
        except TimeoutError:
            return "timeout"
        return "finished"

    @app.get("/taskgroup")
    async def taskgroup() -> list[int]:
        async def child(n: int) -> int:
            await asyncio.sleep(0.01 * n)
            return n * n

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(child(n)) for n in range(4)]
        return [t.result() for t in tasks]

    @app.get("/taskgroup-error")
    async def taskgroup_error() -> str:
        async def failing() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("child failed")

        async def sleeper() -> None:
            try:
                await asyncio.sleep(5)
            finally:
                seen.cleanup.set()

        caught = 0
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(failing())
                tg.create_task(sleeper())
        except* ValueError as group:
            caught = len(group.exceptions)
        return f"caught {caught}"

    @app.get("/anyio")
    async def anyio_scope() -> dict[str, Any]:
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(5)
        results: list[int] = []

        async def add(n: int) -> None:
            await anyio.sleep(0.01)
            results.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(add, n)
        return {"cancelled": scope.cancelled_caught, "results": sorted(results)}

    @app.get("/child-task")
    async def child_task() -> str:
        async def child() -> str:
            await asyncio.sleep(0.01)
            return "child done"

        return await asyncio.get_running_loop().create_task(child())

    @app.get("/shield")
    async def shield() -> str:
        inner = asyncio.ensure_future(asyncio.sleep(0.02, result="shielded"))
        return await asyncio.shield(inner)

    @app.get("/self-cancel")
    async def self_cancel() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            task.uncancel()
            return "recovered"
        return "not cancelled"

    @app.get("/done-callback")
    async def done_callback() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(lambda t: setattr(seen, "callback_arg", t.result()))
        return "finished"

    @app.get("/foreign-future")
    async def foreign_future() -> str:
        other = asyncio.new_event_loop()
        try:
            await other.create_future()
        finally:
            other.close()
        return "unreachable"

    @app.get("/exit-now")
    async def exit_now() -> str:
        raise SystemExit(3)

    @app.get("/interrupt-later")
    async def interrupt_later() -> str:
        await asyncio.sleep(0.01)
        raise KeyboardInterrupt

    @app.get("/bad-yield")
    async def bad_yield() -> str:
        class Odd:
            def __await__(self) -> Iterator[Any]:
                yield 42

        await Odd()
        return "unreachable"

    return app


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
def client(seen: Seen) -> Iterator[httpx.Client]:
    with run_server(make_app(seen)) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_current_task_is_the_same_across_awaits(client: httpx.Client) -> None:
    body = client.get("/current").json()
    assert body == {"same": True, "name": body["name"], "done": False, "coro": True}
    assert body["name"]


def test_bare_yields_resume_the_handler(client: httpx.Client) -> None:
    assert client.get("/sleep0").json() == 100


def test_asyncio_timeout_inside_a_handler(client: httpx.Client) -> None:
    assert client.get("/timeout").json() == {"timed_out": True, "cancelling": 0}


def test_wait_for_inside_a_handler(client: httpx.Client) -> None:
    assert client.get("/wait-for").json() == "timeout"


def test_taskgroup_inside_a_handler(client: httpx.Client) -> None:
    assert client.get("/taskgroup").json() == [0, 1, 4, 9]


def test_taskgroup_error_cancels_siblings(client: httpx.Client, seen: Seen) -> None:
    assert client.get("/taskgroup-error").json() == "caught 1"
    assert seen.cleanup.wait(2)


def test_anyio_cancel_scope_and_task_group(client: httpx.Client) -> None:
    assert client.get("/anyio").json() == {"cancelled": True, "results": [0, 1, 2]}


def test_awaiting_child_tasks_and_shield(client: httpx.Client) -> None:
    assert client.get("/child-task").json() == "child done"
    assert client.get("/shield").json() == "shielded"


def test_cancel_and_uncancel_own_task(client: httpx.Client) -> None:
    assert client.get("/self-cancel").json() == "recovered"


def test_done_callbacks_get_the_task(client: httpx.Client, seen: Seen) -> None:
    assert client.get("/done-callback").json() == "finished"
    for _ in range(50):
        if seen.callback_arg is not None:
            break
        client.get("/health")
    assert seen.callback_arg == "finished"


@pytest.mark.parametrize("path", ["/foreign-future", "/bad-yield", "/exit-now", "/interrupt-later"])
def test_bad_awaits_are_500(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 500
    assert resp.json() == {"detail": "Internal Server Error"}
    assert client.get("/health").status_code == 200
