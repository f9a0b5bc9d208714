"""``TestClient``: the app served for real behind an ``httpx.Client`` API, its lifespan
under ``with``, background tasks finished before a request returns, and handler
failures raised in the test unless ``raise_server_exceptions=False``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from data_bridge import App, HTTPException, Request, Response
from data_bridge.background import BackgroundTasks
from data_bridge.testclient import TestClient


class Boom(Exception):
    pass


def make_app(events: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"greeting": "hello"}
        events.append("stop")

    app = App(lifespan=lifespan)

    @app.get("/")
    def root(request: Request) -> dict[str, Any]:
        return {
            "greeting": getattr(request.state, "greeting", None),
            "host": request.headers.get("host"),
            "agent": request.headers.get("user-agent"),
        }

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.get("/later")
    def later(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(time.sleep, 0.3)
        tasks.add_task(events.append, "background")
        return {"queued": True}

    @app.get("/cookie")
    def cookie(response: Response) -> dict[str, bool]:
        response.set_cookie("session", "abc")
        return {"set": True}

    @app.get("/whoami")
    def whoami(request: Request) -> dict[str, str | None]:
        return {"session": request.cookies.get("session")}

    @app.get("/redirect")
    def redirect() -> Response:
        return Response(status_code=307, headers={"location": "/items/7"})

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("handler failed")

    @app.get("/boom-sync")
    def boom_sync() -> None:
        raise Boom("sync handler failed")

    @app.get("/forbidden")
    def forbidden() -> None:
        raise HTTPException(403, "no")

    @app.get("/bad-background")
    def bad_background(tasks: BackgroundTasks) -> dict[str, bool]:
        def fail() -> None:
            raise Boom("background failed")

        tasks.add_task(fail)
        return {"ok": True}

    return app


def test_with_block_runs_the_lifespan_and_serves_requests() -> None:
    events: list[str] = []
    with TestClient(make_app(events)) as client:
        assert events == ["start"]
        assert str(client.base_url) == "http://testserver"
        assert client.get("/").json() == {
            "greeting": "hello",
            "host": "testserver",
            "agent": "testclient",
        }
        assert client.get("/items/3").json() == {"item_id": 3}
        assert client.get("/items/x").status_code == 422
        assert client.post("/echo", json={"a": [1, 2]}).json() == {"a": [1, 2]}
        assert client.get("/forbidden").json() == {"detail": "no"}
    assert events == ["start", "stop"]


def test_without_with_the_server_starts_on_demand_without_the_lifespan() -> None:
    events: list[str] = []
    client = TestClient(make_app(events))
    try:
        assert client.get("/").json()["greeting"] is None
        assert events == []
    finally:
        client.close()
    assert events == []


def test_a_request_returns_after_its_background_tasks() -> None:
    events: list[str] = []
    with TestClient(make_app(events)) as client:
        started = time.monotonic()
        assert client.get("/later").json() == {"queued": True}
        assert time.monotonic() - started >= 0.3
        assert events == ["start", "background"]


def test_cookies_persist_and_redirects_are_followed() -> None:
    with TestClient(make_app([])) as client:
        assert client.get("/cookie").json() == {"set": True}
        assert client.cookies.get("session") == "abc"
        assert client.get("/whoami").json() == {"session": "abc"}
        resp = client.get("/redirect")
        assert (resp.status_code, resp.json(), str(resp.url)) == (
            200,
            {"item_id": 7},
            "http://testserver/items/7",
        )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/boom", "handler failed"),
        ("/boom-sync", "sync handler failed"),
        ("/bad-background", "background failed"),
    ],
)
def test_server_exceptions_are_raised_in_the_test(path: str, message: str) -> None:
    with TestClient(make_app([])) as client:
        with pytest.raises(Boom, match=message):
            client.get(path)
        # The client keeps working afterwards.
        assert client.get("/items/1").json() == {"item_id": 1}


def test_server_exceptions_become_500_when_not_raised() -> None:
    with TestClient(make_app([]), raise_server_exceptions=False) as client:
        resp = client.get("/boom")
        assert resp.status_code == 500
        assert resp.json() == {"detail": "Internal Server Error"}
        assert client.get("/bad-background").json() == {"ok": True}


def test_the_app_runs_on_its_own_thread_and_entering_twice_fails() -> None:
    app = App()

    @app.get("/thread")
    async def thread() -> dict[str, str]:
        return {"name": threading.current_thread().name}

    client = TestClient(app)
    with client:
        assert client.get("/thread").json() == {"name": "data-bridge-testclient"}
        with pytest.raises(RuntimeError, match="already serving"):
            client.__enter__()
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.get("/thread")
