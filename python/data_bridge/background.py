"""Work that runs after the response has been sent: ``BackgroundTasks`` (inject it as a
handler or dependency parameter and ``add_task``), or ``Response(background=...)``.

The server starts a response's background work once the response body has been
written (see the native ``background`` module): ``async`` functions run on the event
loop, plain functions in a worker thread. The client never waits for them. Tasks of
one response run in order; a failing task is logged and ends that response's
background work, as in Starlette; the response itself is already gone.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec

from data_bridge.reporting import report

__all__ = ["BackgroundTask", "BackgroundTasks", "drain", "run_background", "running"]

P = ParamSpec("P")

# Background work scheduled and not yet finished, so shutdown can wait for it.
_running: set[asyncio.Task[None]] = set()


class BackgroundTask:
    """One call, ``func(*args, **kwargs)``, to make after the response is sent."""

    def __init__(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - instances with async __call__
        )

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            await asyncio.to_thread(functools.partial(self.func, *self.args, **self.kwargs))


class BackgroundTasks(BackgroundTask):
    """Calls to make, in order, after the response is sent. Declare a parameter of this
    type on a handler or dependency to receive the request's instance."""

    def __init__(self, tasks: list[BackgroundTask] | None = None) -> None:
        self.tasks = list(tasks or [])

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()


async def _run(background: BackgroundTask) -> None:
    try:
        await background()
    except Exception as exc:
        report(exc, "background task")


def run_background(background: BackgroundTask) -> asyncio.Task[None]:
    """Schedules ``background`` on the running loop (called by the server, on the loop
    thread, once the response carrying it has been sent). The server counts the work
    as in flight until the returned task is done."""
    task = asyncio.get_running_loop().create_task(_run(background))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


def running() -> int:
    """How many scheduled background tasks have not finished yet (on any loop)."""
    return len(_running)


async def drain(timeout: float | None = None) -> bool:
    """Waits for the background work scheduled so far; ``False`` if some is still
    running after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    mine = [t for t in _running if t.get_loop() is loop]
    if not mine:
        return True
    _, pending = await asyncio.wait(mine, timeout=timeout)
    return not pending
