"""An app's lifespan: entered before serving, left after draining; the state it yields
seeds every request's ``request.state``; it replaces ``on_event`` hooks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

import data_bridge
from data_bridge import App, Request

from .conftest import run_server, serve_in_thread


def _state_app(lifespan: Any, events: list[str]) -> App:
    app = App(lifespan=lifespan)

    @app.on_event("startup")
    def ignored() -> None:
        events.append("on_event startup")

    @app.get("/state")
    def state(request: Request) -> dict[str, Any]:
        request.state.seen = True  # per request: must not leak into the next one
        return {k: v for k, v in vars(request.state).items() if k != "seen"}

    @app.get("/leak")
    def leak(request: Request) -> dict[str, bool]:
        return {"seen": hasattr(request.state, "seen")}

    return app


def _context_manager(events: list[str]) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        assert isinstance(app, App)
        await asyncio.sleep(0)
        events.append("start")
        yield {"db": "conn", "n": 1}
        events.append("stop")

    return lifespan


def _async_generator(events: list[str]) -> Any:
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"db": "conn", "n": 1}
        events.append("stop")

    return lifespan


def _sync_generator(events: list[str]) -> Any:
    def lifespan(app: App) -> Iterator[dict[str, Any]]:
        events.append("start")
        yield {"db": "conn", "n": 1}
        events.append("stop")

    return lifespan


@pytest.mark.parametrize("make", [_context_manager, _async_generator, _sync_generator])
def test_lifespan_runs_around_serving_and_its_state_reaches_requests(make: Any) -> None:
    events: list[str] = []
    app = _state_app(make(events), events)
    with run_server(app) as url:
        assert events == ["start"]
        with httpx.Client(base_url=url, timeout=5) as client:
            assert client.get("/state").json() == {"db": "conn", "n": 1}
            assert client.get("/leak").json() == {"seen": False}
    # As FastAPI: with a lifespan, on_event hooks do not run.
    assert events == ["start", "stop"]


def test_on_event_hooks_run_without_a_lifespan() -> None:
    app = App()
    events: list[str] = []
    app.on_event("startup")(lambda: events.append("up"))

    @app.on_event("shutdown")
    async def down() -> None:
        events.append("down")

    with run_server(app):
        assert events == ["up"]
    assert events == ["up", "down"]


def test_a_failing_startup_keeps_the_server_from_starting() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    app = App(lifespan=lifespan)
    with pytest.raises(RuntimeError, match="no database"), run_server(app):
        pass


def test_a_lifespan_yielding_something_else_than_a_mapping_is_refused() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[Any]:
        yield ["not", "a", "mapping"]

    with pytest.raises(TypeError, match="mapping"), run_server(App(lifespan=lifespan)):
        pass


def test_stop_drains_then_ends_the_lifespan() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        events.append("lifespan end")

    app = App(lifespan=lifespan)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.2)
        events.append("request done")
        return {"ok": True}

    async def starter() -> tuple[Any, Any]:
        return await data_bridge.start(app, port=0)

    with serve_in_thread(starter) as running:
        with httpx.Client(base_url=running.base_url, timeout=5) as client:
            reply: dict[str, Any] = {}
            thread = threading.Thread(target=lambda: reply.update(r=client.get("/slow")))
            thread.start()
            time.sleep(0.05)
            running.call(lambda: data_bridge.stop(app, running.server, 5.0))
            running.stopped = True
            thread.join(5)
        assert reply["r"].json() == {"ok": True}
    assert events == ["request done", "lifespan end"]
