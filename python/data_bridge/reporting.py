"""Where failures the client cannot see end up: an exception escaping a handler (the
client gets a 500) or a background task. Both are logged on the ``data_bridge`` logger
and passed to the registered listeners (the test client re-raises them in the test)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

__all__ = ["add_listener", "remove_listener", "report"]

logger = logging.getLogger("data_bridge")

Listener = Callable[[BaseException], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Calls ``listener(exc)`` for every failure reported from now on."""
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def report(exc: BaseException, what: str = "handler") -> str:
    """Logs ``exc`` with its traceback, tells the listeners, returns the traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.error("Exception in %s\n%s", what, text.rstrip())
    for listener in list(_listeners):
        listener(exc)
    return text
