"""pytest plugin for running another project's test suite on PyLoop.

Loaded with ``-p pyloop_policy`` by ``tests/pyloop/suites/run.py``. With
``DATA_BRIDGE_SUITE_LOOP=pyloop`` it installs PyLoop's event loop policy before the
suite's conftest runs, so every loop the suite makes through ``asyncio.new_event_loop()``
or ``asyncio.Runner`` (anyio's asyncio backend, aiohttp's default ``loop_factory``) is a
PyLoop loop; with ``asyncio`` it changes nothing. Either way it counts the loops of each
kind the suite ran on and fails the session if none was of the requested kind, so a suite
that quietly bypassed the policy cannot pass as a PyLoop run.
"""

from __future__ import annotations

import asyncio
import collections
import os

import pytest

import data_bridge.pyloop

_WANTED = os.environ.get("DATA_BRIDGE_SUITE_LOOP", "asyncio")
_SEEN: collections.Counter[str] = collections.Counter()


def pytest_configure(config: pytest.Config) -> None:
    if _WANTED not in ("asyncio", "pyloop"):
        raise pytest.UsageError(f"DATA_BRIDGE_SUITE_LOOP={_WANTED!r}: expected asyncio or pyloop")
    if _WANTED == "pyloop":
        data_bridge.pyloop.install()


def _note(loop: asyncio.AbstractEventLoop) -> None:
    _SEEN["pyloop" if isinstance(loop, data_bridge.pyloop.Loop) else "asyncio"] += 1


_original_new_event_loop = asyncio.new_event_loop


def _counting_new_event_loop() -> asyncio.AbstractEventLoop:
    loop = _original_new_event_loop()
    _note(loop)
    return loop


# asyncio.Runner calls events.new_event_loop; aiohttp's default loop_factory is whatever
# asyncio.new_event_loop is when its plugin parametrizes (after this module is imported).
asyncio.new_event_loop = asyncio.events.new_event_loop = _counting_new_event_loop


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.testscollected and not _SEEN[_WANTED]:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        raise pytest.UsageError(f"no test ran on a {_WANTED} loop (loops seen: {dict(_SEEN)})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"event loops made: {dict(_SEEN)} (wanted {_WANTED})")
