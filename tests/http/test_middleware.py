"""Python middleware: order (last added outermost), short-circuits, edits to the
response, failures (500), and apps without middleware keeping the native fast path."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest

from data_bridge import App, HTTPException, JSONResponse, PlainTextResponse, Request, Response
from data_bridge.middleware import BaseHTTPMiddleware, CallNext

from .conftest import run_server


class Tag(BaseHTTPMiddleware):
    def __init__(self, app: CallNext, name: str, log: list[str]) -> None:
        super().__init__(app)
        self.name = name
        self.log = log

    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        self.log.append(f"{self.name} in")
        response = await call_next(request)
        self.log.append(f"{self.name} out")
        response.headers.append("x-order", self.name)
        return response


def make_app(log: list[str]) -> App:
    app = App()
    app.add_middleware(Tag, name="first", log=log)
    app.add_middleware(Tag, name="second", log=log)

    @app.middleware("http")
    async def gate(request: Request, call_next: CallNext) -> Response:
        log.append("gate")
        if request.headers.get("x-block"):
            return PlainTextResponse("blocked", status_code=403)
        request.state.user = "ann"
        return await call_next(request)

    @app.middleware("http")
    async def failing(request: Request, call_next: CallNext) -> Response:
        if request.query_params.get("fail") == "before":
            raise RuntimeError("middleware failed")
        response = await call_next(request)
        response.headers["x-thread"] = threading.current_thread().name
        return response

    @app.get("/items/{item_id}")
    def item(item_id: int, request: Request) -> dict[str, Any]:
        log.append("handler")
        return {"item_id": item_id, "user": request.state.user}

    @app.get("/plain")
    def plain() -> dict[str, bool]:
        return {"fast": True}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(404, "nope", headers={"x-why": "gone"})

    @app.get("/crash")
    async def crash() -> None:
        raise ValueError("handler failed")

    return app


def test_the_last_added_runs_outermost_and_sees_the_response() -> None:
    log: list[str] = []
    with run_server(make_app(log)) as url:
        resp = httpx.get(url + "/items/3", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"item_id": 3, "user": "ann"}
    assert log == ["gate", "second in", "first in", "handler", "first out", "second out"]
    assert resp.headers.get_list("x-order") == ["first", "second"]
    # A sync handler still runs off the loop thread; the middleware runs on it.
    assert resp.headers["x-thread"] == "data-bridge-test-server"


def test_a_middleware_can_answer_without_calling_the_route() -> None:
    log: list[str] = []
    with run_server(make_app(log)) as url:
        resp = httpx.get(url + "/items/3", headers={"x-block": "1"}, timeout=5)
    assert (resp.status_code, resp.text) == (403, "blocked")
    assert "x-order" not in resp.headers
    assert log == ["gate"]


def test_routes_that_would_take_the_fast_path_run_through_middleware() -> None:
    log: list[str] = []
    with run_server(make_app(log)) as url:
        resp = httpx.get(url + "/plain", timeout=5)
        assert resp.json() == {"fast": True}
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers.get_list("x-order") == ["first", "second"]
        invalid = httpx.get(url + "/items/x", timeout=5)
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert invalid.headers.get_list("x-order") == ["first", "second"]


def test_middleware_sees_http_exceptions_as_responses() -> None:
    with run_server(make_app([])) as url:
        resp = httpx.get(url + "/missing", timeout=5)
    assert (resp.status_code, resp.json()) == (404, {"detail": "nope"})
    assert resp.headers["x-why"] == "gone"
    assert resp.headers.get_list("x-order") == ["first", "second"]


@pytest.mark.parametrize("path", ["/items/1?fail=before", "/crash"])
def test_failures_end_with_a_500(path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="data_bridge"), run_server(make_app([])) as url:
        resp = httpx.get(url + path, timeout=5)
        assert resp.status_code == 500
        assert resp.json() == {"detail": "Internal Server Error"}
        assert "x-order" not in resp.headers
        # The server keeps serving.
        assert httpx.get(url + "/items/2", timeout=5).status_code == 200
    assert "failed" in caplog.text


def test_middleware_may_catch_a_route_failure() -> None:
    app = App()

    @app.middleware("http")
    async def shield(request: Request, call_next: CallNext) -> Response:
        try:
            return await call_next(request)
        except ValueError as exc:
            return JSONResponse({"caught": str(exc)}, status_code=502)

    @app.get("/")
    def root() -> None:
        raise ValueError("bad")

    with run_server(app) as url:
        resp = httpx.get(url + "/", timeout=5)
    assert (resp.status_code, resp.json()) == (502, {"caught": "bad"})


def test_a_middleware_returning_something_else_is_a_500() -> None:
    app = App()

    @app.middleware("http")
    async def wrong(request: Request, call_next: CallNext) -> Any:
        return {"not": "a response"}

    @app.get("/")
    def root() -> dict[str, bool]:
        return {"ok": True}

    with run_server(app) as url:
        assert httpx.get(url + "/", timeout=5).status_code == 500


def test_an_app_without_middleware_keeps_the_fast_path() -> None:
    app = App()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    assert [r.mode for r in app.routes] == ["path"]
    app.middleware("http")(lambda request, call_next: call_next(request))
    assert [r.mode for r in app.routes] == ["request"]


def test_only_http_middleware_and_dispatch_classes_are_accepted() -> None:
    app = App()
    with pytest.raises(ValueError, match="unsupported"):
        app.middleware("websocket")

    class Asgi:
        def __init__(self, app: Any) -> None:
            self.app = app

    with pytest.raises(TypeError, match="ASGI middleware is not supported"):
        app.add_middleware(Asgi)
