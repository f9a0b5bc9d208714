"""Durations given to the Python API (``App(timeout=)``, a route's ``timeout=``,
``serve()`` and ``stop()``'s ``graceful_timeout``) are checked when given: a value the
server could not hold (NaN, infinite, negative, over a year) raises ``ValueError``
there and never reaches the running server. The same bound applies from the command
line (``tests/cli/test_cli.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import data_bridge
from data_bridge import App
from data_bridge.durations import MAX_SECONDS

from .conftest import run_server_info

OUT_OF_RANGE = {
    "1e300": 1e300,
    "inf": float("inf"),
    "nan": float("nan"),
    "-1": -1,
    "a year and a second": MAX_SECONDS + 1,
    "10**400": 10**400,
}
MESSAGE = f"at most {MAX_SECONDS}"


@pytest.mark.parametrize("value", [*OUT_OF_RANGE.values(), 0], ids=[*OUT_OF_RANGE.keys(), "0"])
def test_handler_timeouts_are_checked_when_declared(value: Any) -> None:
    with pytest.raises(ValueError, match=f"timeout: expected a number of seconds > 0 .*{MESSAGE}"):
        App(timeout=value)
    app = App()
    with pytest.raises(ValueError, match=MESSAGE):

        @app.get("/route", timeout=value)
        def route() -> None: ...

    with pytest.raises(TypeError, match="timeout"):
        App(timeout="5")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_graceful_timeouts_are_checked_before_anything_runs(value: Any) -> None:
    app = App()
    # stop() on a running server refuses the value and leaves the server serving.
    with run_server_info(app) as running:
        with pytest.raises(ValueError, match=f"graceful_timeout: .*{MESSAGE}"):
            running.call(lambda: data_bridge.stop(app, running.server, value))
        assert httpx.get(running.base_url + "/health", timeout=5).status_code == 200

    # serve() refuses it before binding or running the startup hooks, not at shutdown.
    started: list[int] = []
    app.on_event("startup")(lambda: started.append(1))
    with pytest.raises(ValueError, match=f"graceful_timeout: .*{MESSAGE}"):
        data_bridge.serve(app, port=0, graceful_timeout=value)
    assert started == []


def test_durations_up_to_a_year_are_served() -> None:
    app = App(timeout=MAX_SECONDS)

    @app.get("/slow", timeout=0.2)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @app.get("/patient")
    async def patient() -> str:
        await asyncio.sleep(0.3)
        return "done"

    with run_server_info(app) as running, httpx.Client(base_url=running.base_url) as c:
        assert c.get("/slow", timeout=5).status_code == 504
        assert c.get("/patient", timeout=5).json() == "done"
        running.shutdown(MAX_SECONDS)
