"""Adopting PyLoop: new_event_loop(), the event loop policy, install(), run() and
subclassing Loop. These tests are PyLoop-only (not parametrized over loops)."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import data_bridge.pyloop
from data_bridge.pyloop import EventLoopPolicy, Loop


def _get_policy() -> asyncio.AbstractEventLoopPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies: deprecated in 3.14
        return asyncio.get_event_loop_policy()


def _set_policy(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(policy)


@pytest.fixture
def restore_policy() -> Iterator[None]:
    """Restores asyncio's policy (and clears the current loop) after the test."""
    previous = _get_policy()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop(None)
        _set_policy(previous)


@pytest.fixture
def pyloop_policy(restore_policy: None) -> EventLoopPolicy:
    policy = EventLoopPolicy()
    _set_policy(policy)
    return policy


# -- new_event_loop() and Loop -------------------------------------------------------------


def test_new_event_loop_returns_a_loop() -> None:
    lp = data_bridge.pyloop.new_event_loop()
    other = data_bridge.pyloop.new_event_loop()
    try:
        assert type(lp) is Loop
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert isinstance(lp, asyncio.BaseEventLoop)
        assert lp is not other
        assert not lp.is_running() and not lp.is_closed()
        assert lp.run_until_complete(asyncio.sleep(0, "works")) == "works"
        assert "Loop" in repr(lp)
    finally:
        lp.close()
        other.close()
    assert lp.is_closed()


def test_loop_constructor_directly() -> None:
    lp = Loop()
    try:
        assert lp.run_until_complete(asyncio.sleep(0.001, 5)) == 5
    finally:
        lp.close()


def test_public_names() -> None:
    assert set(data_bridge.pyloop.__all__) == {
        "EventLoopPolicy",
        "Loop",
        "install",
        "new_event_loop",
        "run",
    }
    for name in data_bridge.pyloop.__all__:
        assert hasattr(data_bridge.pyloop, name)


# -- the policy --------------------------------------------------------------------------


def test_policy_is_an_asyncio_policy() -> None:
    assert isinstance(EventLoopPolicy(), asyncio.AbstractEventLoopPolicy)


def test_policy_new_event_loop(pyloop_policy: EventLoopPolicy) -> None:
    for lp in (asyncio.new_event_loop(), pyloop_policy.new_event_loop()):
        try:
            assert isinstance(lp, Loop)
        finally:
            lp.close()


def test_policy_makes_asyncio_run_use_pyloop(pyloop_policy: EventLoopPolicy) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> str:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0.001)
        return "done"

    assert asyncio.run(main()) == "done"
    assert isinstance(seen[0], Loop)
    assert seen[0].is_closed()


def test_policy_get_event_loop_in_main_thread(pyloop_policy: EventLoopPolicy) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lp = pyloop_policy.get_event_loop()
    try:
        assert isinstance(lp, Loop)
        assert pyloop_policy.get_event_loop() is lp
    finally:
        lp.close()


def test_policy_in_another_thread(pyloop_policy: EventLoopPolicy) -> None:
    results: list[Any] = []

    def worker() -> None:
        try:
            results.append(asyncio.run(_loop_type()))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert results == [Loop]


async def _loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_install(restore_policy: None) -> None:
    data_bridge.pyloop.install()
    assert isinstance(_get_policy(), EventLoopPolicy)
    assert asyncio.run(_loop_type()) is Loop


# -- run() ---------------------------------------------------------------------------------


def test_run_returns_result_and_closes_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main(x: int) -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.001)
        return x * 3

    assert data_bridge.pyloop.run(main(7)) == 21
    assert isinstance(loops[0], Loop)
    assert loops[0].is_closed()
    assert data_bridge.pyloop.run(main(1)) == 3
    assert loops[1] is not loops[0]


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug(debug: bool) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert data_bridge.pyloop.run(main(), debug=debug) is debug


def test_run_propagates_exceptions() -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        data_bridge.pyloop.run(main())


def test_run_cancels_leftover_tasks_and_finalizes_asyncgens() -> None:
    events: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    gens: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().create_task(background())
        gen = agen()
        gens.append(gen)
        await gen.__anext__()
        await asyncio.sleep(0)

    data_bridge.pyloop.run(main())
    assert sorted(events) == ["agen closed", "cancelled"]


def test_run_rejects_non_coroutines() -> None:
    with pytest.raises(ValueError):
        data_bridge.pyloop.run(42)  # type: ignore[arg-type]


def test_run_inside_running_loop_raises() -> None:
    # Like asyncio.run(): fail fast, without making (and trying to shut down) a new loop.
    messages: list[str] = []

    async def outer() -> None:
        coro = asyncio.sleep(0)
        try:
            data_bridge.pyloop.run(coro)
        except RuntimeError as exc:
            messages.append(str(exc))
        finally:
            coro.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data_bridge.pyloop.run(outer())
        gc.collect()
    assert len(messages) == 1
    assert "cannot be called from a running event loop" in messages[0]
    leaked = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert leaked == []


def test_run_is_independent_of_current_loop() -> None:
    current = asyncio.new_event_loop()
    asyncio.set_event_loop(current)
    try:
        assert data_bridge.pyloop.run(_loop_type()) is Loop
        assert not current.is_closed()
    finally:
        asyncio.set_event_loop(None)
        current.close()


# -- subclassing -------------------------------------------------------------------------


class CountingLoop(Loop):
    """A Loop subclass with its own constructor arguments and an overridden method."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.soon_calls = 0

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
        self.soon_calls += 1
        return super().call_soon(callback, *args, context=context)


def test_loop_can_be_subclassed() -> None:
    lp = CountingLoop("mine")
    try:
        assert isinstance(lp, Loop) and isinstance(lp, asyncio.AbstractEventLoop)
        assert lp.tag == "mine"

        async def main() -> str:
            assert asyncio.get_running_loop() is lp
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            return "sub"

        assert lp.run_until_complete(main()) == "sub"
        assert lp.soon_calls > 0
        assert "CountingLoop" in repr(lp)
    finally:
        lp.close()
    assert lp.is_closed()


def test_subclass_overrides_are_used_by_the_loop() -> None:
    class Recording(Loop):
        def __init__(self) -> None:
            super().__init__()
            self.reported: list[dict[str, Any]] = []

        def call_exception_handler(self, context: dict[str, Any]) -> None:
            self.reported.append(context)

    lp = Recording()
    try:
        lp.call_soon(lambda: 1 / 0)
        lp.call_soon(lp.stop)
        lp.run_forever()
    finally:
        lp.close()
    assert len(lp.reported) == 1
    assert isinstance(lp.reported[0]["exception"], ZeroDivisionError)


def test_policy_subclass_with_loop_subclass(restore_policy: None) -> None:
    class Policy(EventLoopPolicy):
        def _loop_factory(self) -> Loop:
            return CountingLoop("from-policy")

    _set_policy(Policy())

    async def main() -> str:
        lp = asyncio.get_running_loop()
        assert isinstance(lp, CountingLoop)
        return lp.tag

    assert asyncio.run(main()) == "from-policy"
