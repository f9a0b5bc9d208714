"""Running pytest-asyncio tests on PyLoop, the way users would set it up.

pytest-asyncio 1.x (installed here: 1.5) offers two ways:

* the ``pytest_asyncio_loop_factories`` hook in a ``conftest.py``, which is the
  supported API from 1.x on (shown by running a tiny project in a child pytest), and
* overriding the ``event_loop_policy`` fixture to return
  ``data_bridge.pyloop.EventLoopPolicy()`` - still honoured, but deprecated since
  pytest-asyncio 1.x, so its deprecation warning is silenced for that test only.

These tests manage their own loops (through pytest-asyncio), so they do not take the
``loop`` fixture.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path

import pytest
import pytest_asyncio

import data_bridge.pyloop

PYTEST_ASYNCIO_MAJOR = int(version("pytest-asyncio").split(".")[0])


# -- the event_loop_policy fixture --------------------------------------------------------


@pytest.fixture
def event_loop_policy() -> data_bridge.pyloop.EventLoopPolicy:
    """Makes every pytest-asyncio test in this module run on a PyLoop loop."""
    return data_bridge.pyloop.EventLoopPolicy()


@pytest_asyncio.fixture
async def echo_server() -> AsyncIterator[int]:
    """An async fixture: runs on the same PyLoop loop as the test that uses it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    assert isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


# pytest-asyncio's own event_loop_policy fixture is autouse, so the override (and its
# deprecation warning) applies to every test in this module.
pytestmark = pytest.mark.filterwarnings(
    'ignore:Overriding the "event_loop_policy" fixture is deprecated'
    ":pytest.PytestDeprecationWarning"
)


@pytest.mark.asyncio
async def test_runs_on_pyloop() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, data_bridge.pyloop.Loop)
    assert asyncio.get_event_loop() is loop
    await asyncio.sleep(0.01)
    assert await asyncio.to_thread(lambda: 6 * 7) == 42


@pytest.mark.asyncio
async def test_async_fixture_shares_the_loop(echo_server: int) -> None:
    assert isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
    writer.write(b"over pyloop\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"over pyloop\n"
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_tasks_and_timeouts_on_pyloop() -> None:
    async def worker(n: int) -> int:
        await asyncio.sleep(0.001 * n)
        return n * n

    assert await asyncio.gather(*(worker(n) for n in range(10))) == [n * n for n in range(10)]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)


# -- the pytest_asyncio_loop_factories hook (pytest-asyncio >= 1.x) ------------------------

CONFTEST = """
import data_bridge.pyloop


def pytest_asyncio_loop_factories(config, item):
    return {"pyloop": data_bridge.pyloop.new_event_loop}
"""

TEST_MODULE = """
import asyncio

import pytest

import data_bridge.pyloop


@pytest.mark.asyncio
async def test_on_pyloop():
    assert isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)
    await asyncio.sleep(0)


@pytest.mark.asyncio(loop_factories=["pyloop"])
async def test_selected_factory():
    assert isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)
"""

PYTEST_INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.mark.skipif(PYTEST_ASYNCIO_MAJOR < 1, reason="loop factory hook needs pytest-asyncio 1.x")
def test_loop_factories_hook_in_a_project(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_user.py").write_text(textwrap.dedent(TEST_MODULE))
    (tmp_path / "pytest.ini").write_text(textwrap.dedent(PYTEST_INI))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
