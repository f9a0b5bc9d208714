"""``executor="process"`` routes run in the app's process pool: another PID, validated
arguments in, the result back; a crashed worker process gives 500 and a fresh pool."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from data_bridge import APIRouter, App

from .conftest import run_server


def compute(n: int, scale: int = 1) -> dict[str, int]:
    return {"pid": os.getpid(), "total": sum(range(n)) * scale}


def crash() -> None:
    os._exit(1)


@pytest.fixture
def app() -> Iterator[App]:
    app = App(process_pool_size=1)
    app.post("/compute/{n}", executor="process")(compute)
    router = APIRouter(prefix="/r")
    router.api_route("/crash", methods=["POST"], executor="process")(crash)
    app.include_router(router)
    yield app
    app.process_pool.shutdown()


def test_runs_in_another_process_and_heals_after_a_crash(app: App) -> None:
    with run_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/compute/10", params={"scale": 2})
        assert first.status_code == 200, first.text
        assert first.json()["total"] == 90
        assert first.json()["pid"] != os.getpid()
        assert client.post("/compute/abc").status_code == 422
        broken = client.post("/r/crash")
        assert broken.status_code == 500
        assert broken.json() == {"detail": "Internal Server Error"}
        healed = client.post("/compute/4")
        assert healed.status_code == 200, healed.text
        assert healed.json()["total"] == 6
        assert healed.json()["pid"] not in (os.getpid(), first.json()["pid"])
    app.process_pool.shutdown()
    assert not app.process_pool.started


def test_only_def_functions() -> None:
    app = App()

    async def handler() -> None:
        return None

    with pytest.raises(TypeError, match="executor"):
        app.get("/x", executor="process")(handler)
    with pytest.raises(ValueError, match="executor"):
        app.get("/y", executor="fork")(compute)
