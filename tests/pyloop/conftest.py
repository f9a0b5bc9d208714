"""Fixtures for the loop tests: every test runs once on asyncio's own loop and once on
PyLoop; a test that passes on one and fails on the other is a PyLoop bug."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import data_bridge.pyloop

T = TypeVar("T")

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "pyloop": data_bridge.pyloop.new_event_loop,
}


@pytest.fixture(params=list(LOOPS))
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop of each kind, set as the current loop, closed afterwards."""
    lp = LOOPS[request.param]()
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.run_until_complete(lp.shutdown_asyncgens())
            lp.run_until_complete(lp.shutdown_default_executor())
            lp.close()
        asyncio.set_event_loop(None)
        gc.collect()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Runs a coroutine to completion on the test's loop, with a 20 s safety timeout."""

    def runner(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    return runner


def is_pyloop(loop: asyncio.AbstractEventLoop) -> bool:
    return isinstance(loop, data_bridge.pyloop.Loop)
