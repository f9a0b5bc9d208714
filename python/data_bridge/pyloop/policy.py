"""Adopting PyLoop: the event loop policy, ``install()``, ``new_event_loop()``, ``run()``."""

from __future__ import annotations

import asyncio
from asyncio import events
from collections.abc import Coroutine
from typing import Any, TypeVar

from data_bridge.pyloop.loop import Loop

__all__ = ["EventLoopPolicy", "install", "new_event_loop", "run"]

_T = TypeVar("_T")

# Renamed with a leading underscore when policies were deprecated (Python 3.14).
_BasePolicy: Any = getattr(
    events, "BaseDefaultEventLoopPolicy", getattr(events, "_BaseDefaultEventLoopPolicy", None)
)


def new_event_loop() -> Loop:
    """Returns a new PyLoop event loop."""
    return Loop()


class EventLoopPolicy(_BasePolicy):  # type: ignore[misc]
    """An asyncio event loop policy whose loops are PyLoop loops.

    ``asyncio.set_event_loop_policy(EventLoopPolicy())`` makes ``asyncio.run()``,
    ``asyncio.new_event_loop()`` and ``asyncio.get_event_loop()`` use PyLoop.
    """

    def _loop_factory(self) -> Loop:
        return new_event_loop()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"


def install() -> None:
    """Makes PyLoop asyncio's default loop for this process."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Runs ``main`` on a new PyLoop loop and closes it, like :func:`asyncio.run`."""
    if events._get_running_loop() is not None:
        # Checked before a loop is made, so nothing is left to clean up (as asyncio.run).
        raise RuntimeError("data_bridge.pyloop.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
