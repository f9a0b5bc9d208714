"""Dependencies beyond what the compatibility corpus observes from outside: when yield
cleanups run, per-request caching, and which calling convention each route gets."""

# No ``from __future__ import annotations``: the handlers' ``Annotated[..., Depends(f)]``
# name functions local to each test, which string annotations could not resolve.
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pytest

from data_bridge import APIRouter, App, Depends, HTTPException, Query

from .conftest import run_server


def test_yield_cleanups_run_after_the_handler_in_reverse_order() -> None:
    events: list[str] = []
    app = App()

    def outer() -> Iterator[str]:
        events.append("outer:start")
        yield "o"
        events.append("outer:end")

    async def inner(o: Annotated[str, Depends(outer)]) -> AsyncIterator[str]:
        events.append("inner:start")
        yield o + "i"
        events.append("inner:end")

    @app.get("/async")
    async def handler(value: Annotated[str, Depends(inner)]) -> str:
        events.append("handler")
        return value

    def sync_dep() -> Iterator[int]:
        events.append("sync:start")
        yield 1
        events.append("sync:end")

    @app.get("/sync")
    def sync_handler(value: Annotated[int, Depends(sync_dep)]) -> int:
        events.append("sync-handler")
        return value

    with run_server(app) as url:
        assert httpx.get(url + "/async", timeout=5).json() == "oi"
        assert events == ["outer:start", "inner:start", "handler", "inner:end", "outer:end"]
        events.clear()
        assert httpx.get(url + "/sync", timeout=5).json() == 1
        assert events == ["sync:start", "sync-handler", "sync:end"]


def test_a_yield_dependency_sees_the_handler_error() -> None:
    seen: list[str] = []
    app = App()

    def guard() -> Iterator[None]:
        try:
            yield
        except HTTPException as exc:
            seen.append(f"caught {exc.status_code}")
            raise

    @app.get("/fail", dependencies=[Depends(guard)])
    def fail() -> None:
        raise HTTPException(409, "conflict")

    with run_server(app) as url:
        r = httpx.get(url + "/fail", timeout=5)
    assert (r.status_code, r.json()) == (409, {"detail": "conflict"})
    assert seen == ["caught 409"]


def test_dependencies_run_once_per_request_unless_uncached() -> None:
    runs: list[str] = []
    app = App()

    def token(t: str = Query("x")) -> str:
        runs.append(t)
        return t

    def a(t: Annotated[str, Depends(token)]) -> str:
        return t

    def b(t: Annotated[str, Depends(token)]) -> str:
        return t

    @app.get("/cached")
    def cached(x: Annotated[str, Depends(a)], y: Annotated[str, Depends(b)]) -> list[str]:
        return [x, y]

    @app.get("/uncached")
    def uncached(
        x: Annotated[str, Depends(token)],
        y: Annotated[str, Depends(token, use_cache=False)],
    ) -> list[str]:
        return [x, y]

    with run_server(app) as url:
        assert httpx.get(url + "/cached?t=1", timeout=5).json() == ["1", "1"]
        assert runs == ["1"]
        assert httpx.get(url + "/cached?t=2", timeout=5).json() == ["2", "2"]
        assert runs == ["1", "2"]
        runs.clear()
        assert httpx.get(url + "/uncached?t=3", timeout=5).json() == ["3", "3"]
        assert runs == ["3", "3"]


def _modes(app: App) -> dict[str, str]:
    return {r.path: r.mode for r in app.routes}


def test_plain_routes_keep_the_native_calling_conventions() -> None:
    app = App()

    @app.get("/none")
    def none() -> int:
        return 1

    @app.get("/path/{a}/{b}")
    async def path(a: int, b: str) -> list[Any]:
        return [a, b]

    @app.get("/query")
    def query(q: int = 0) -> int:
        return q

    @app.get("/limited/{a}")
    def limited(a: Annotated[int, Query(ge=1)]) -> int:
        return a

    assert _modes(app) == {
        "/none": "none",
        "/path/{a}/{b}": "path",
        "/query": "request",
        "/limited/{a}": "request",
    }
    # An exception handler needs the request, so every route then goes through Python.
    app.exception_handler(ValueError)(lambda request, exc: None)
    assert set(_modes(app).values()) == {"request"}


def test_url_path_for_and_router_prefixes() -> None:
    app = App()
    router = APIRouter(prefix="/items")

    @router.get("/{item_id}")
    def item(item_id: int) -> int:
        return item_id

    app.include_router(router, prefix="/v1")
    assert app.url_path_for("item", item_id=3) == "/v1/items/3"
    with pytest.raises(LookupError):
        app.url_path_for("nothing")
    with pytest.raises(ValueError):
        APIRouter(prefix="/trailing/")
