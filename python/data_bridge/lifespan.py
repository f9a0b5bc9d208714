"""Start-up and shutdown of an app: its ``lifespan`` context, or else its ``on_event``
hooks.

As in FastAPI, ``lifespan`` is a function of the app returning an async context manager
(an ``@asynccontextmanager``, or a plain async or sync generator function). The server
enters it before it accepts the first connection and leaves it after the last request
has drained. A mapping it yields is the lifespan state: every request's
``request.state`` starts with a shallow copy of it. An app with a ``lifespan`` ignores
its ``on_event`` hooks, as FastAPI does.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Lifespan", "LifespanFactory"]

LifespanFactory = Callable[[Any], Any]
Hook = Callable[[], Awaitable[None] | None]


async def _run_hooks(hooks: list[Hook]) -> None:
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


def _as_async_context(factory: LifespanFactory) -> Callable[[Any], Any]:
    if inspect.isasyncgenfunction(factory):
        return contextlib.asynccontextmanager(factory)
    if inspect.isgeneratorfunction(factory):
        sync_cm = contextlib.contextmanager(factory)

        @contextlib.asynccontextmanager
        async def wrapped(app: Any) -> AsyncIterator[Any]:
            with sync_cm(app) as value:
                yield value

        return wrapped
    return factory


class Lifespan:
    """Runs one app's start-up and shutdown; each ``startup()`` pairs with one
    ``shutdown()``."""

    def __init__(self, factory: LifespanFactory | None) -> None:
        self.factory = factory
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.state: dict[str, Any] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    async def startup(self, app: Any) -> None:
        """Enters the lifespan context (or runs the start-up hooks)."""
        if self.factory is None:
            await _run_hooks(self.startup_hooks)
            return
        stack = contextlib.AsyncExitStack()
        value = await stack.enter_async_context(_as_async_context(self.factory)(app))
        self._stack = stack
        if value is not None:
            if not isinstance(value, Mapping):
                await stack.aclose()
                self._stack = None
                raise TypeError(f"a lifespan must yield None or a mapping, not {value!r}")
            self.state = dict(value)

    async def shutdown(self) -> None:
        """Leaves the lifespan context (or runs the shutdown hooks)."""
        if self.factory is None:
            await _run_hooks(self.shutdown_hooks)
            return
        stack, self._stack = self._stack, None
        self.state = {}
        if stack is not None:
            await stack.aclose()
