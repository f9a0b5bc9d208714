"""Scheduling primitives: call_soon/call_later/call_at, handles, stop/run semantics,
closing, exception handling and debug mode, on asyncio's loop and on PyLoop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any
from unittest import mock

import pytest

Run = Callable[[Coroutine[Any, Any, Any]], Any]

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def _stop_after(loop: asyncio.AbstractEventLoop, seconds: float = 5.0) -> asyncio.TimerHandle:
    """A safety net: stops the loop if a test would otherwise wait forever."""
    return loop.call_later(seconds, loop.stop)


# -- call_soon ------------------------------------------------------------------------


def test_call_soon_runs_in_fifo_order_with_args(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[Any, ...]] = []
    for i in range(200):
        loop.call_soon(lambda *a: calls.append(a), i, f"x{i}", None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [(i, f"x{i}", None) for i in range(200)]


def test_callback_scheduled_by_callback_runs_on_next_iteration(
    loop: asyncio.AbstractEventLoop,
) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(order.append, "nested")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    assert order == ["first", "second", "nested"]


def test_patched_time_drives_timers(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    # aiohttp's tests patch loop.time to move the clock; the loop takes its deadlines from
    # the patched clock, as asyncio's loop does, and from the real one again afterwards.
    async def main() -> None:
        fired: list[str] = []
        now = loop.time()
        with mock.patch.object(loop, "time") as fake:
            fake.return_value = now
            loop.call_at(now + 10, fired.append, "at")
            later = loop.call_later(10, fired.append, "later")
            assert later.when() == now + 10
            await asyncio.sleep(0)
            assert fired == []
            fake.return_value = now + 10
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert fired == ["at", "later"]
        started = time.monotonic()
        await asyncio.sleep(0.01)
        assert time.monotonic() - started >= 0.01

    run(main())


@pytest.mark.parametrize("kind", ["transport", "add_reader"])
def test_tick_runs_ready_callbacks_then_io_then_timers(
    loop: asyncio.AbstractEventLoop, run: Run, kind: str
) -> None:
    # asyncio's tick: the callbacks ready before the poll, then the I/O the poll
    # reported, then due timers; what they schedule waits for the next tick. aiohttp's
    # websocket close relies on it: a task woken just before the peer's data arrives
    # runs before that data is delivered.
    order: list[str] = []

    class Reader(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            order.append("data")
            loop.call_soon(order.append, "scheduled by data")

    async def main() -> None:
        a, b = socket.socketpair()
        with b:
            a.setblocking(False)
            if kind == "transport":
                tr, _ = await loop.create_unix_connection(Reader, sock=a)
            else:
                loop.add_reader(a, lambda: order.append("data") or a.recv(10))
            await asyncio.sleep(0)
            done = loop.create_future()
            b.send(b"x")
            loop.call_soon(order.append, "soon")
            loop.call_at(loop.time(), lambda: order.append("timer") or done.set_result(None))
            await asyncio.wait_for(done, 5)
            if kind == "transport":
                tr.close()
            else:
                loop.remove_reader(a)
                a.close()
        await asyncio.sleep(0)

    run(main())
    assert order[:3] == ["soon", "data", "timer"]


def test_call_soon_uses_given_context(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "in-ctx")
    seen: list[str] = []

    def cb() -> None:
        seen.append(VAR.get())
        VAR.set("changed-by-callback")

    handle = loop.call_soon(cb, context=ctx)
    if hasattr(asyncio.Handle, "get_context"):  # Python 3.12+
        assert handle.get_context() is ctx
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["in-ctx"]
    assert ctx[VAR] == "changed-by-callback"
    assert VAR.get() == "unset"


def test_call_soon_copies_current_context_at_schedule_time(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []

    def schedule() -> None:
        VAR.set("before")
        loop.call_soon(lambda: seen.append(VAR.get()))
        VAR.set("after")
        loop.call_soon(lambda: seen.append(VAR.get()))
        loop.call_soon(loop.stop)

    contextvars.copy_context().run(schedule)
    loop.run_forever()
    assert seen == ["before", "after"]
    assert VAR.get() == "unset"


@pytest.mark.parametrize("method", ["call_later", "call_at", "call_soon_threadsafe"])
def test_other_schedulers_accept_context(loop: asyncio.AbstractEventLoop, method: str) -> None:
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, method)
    seen: list[str] = []
    cb = lambda: seen.append(VAR.get())  # noqa: E731
    if method == "call_later":
        loop.call_later(0.001, cb, context=ctx)
    elif method == "call_at":
        loop.call_at(loop.time() + 0.001, cb, context=ctx)
    else:
        loop.call_soon_threadsafe(cb, context=ctx)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == [method]


# -- timers -----------------------------------------------------------------------------


def test_time_uses_monotonic_clock(loop: asyncio.AbstractEventLoop) -> None:
    before = time.monotonic()
    now = loop.time()
    after = time.monotonic()
    assert before <= now <= after


def test_call_later_fires_in_deadline_order(loop: asyncio.AbstractEventLoop) -> None:
    order: list[Any] = []
    for delay in (0.03, 0.0, 0.01, 0.02, 0.005):
        loop.call_later(delay, order.append, delay)
    when = loop.time() + 0.015
    for i in range(20):  # equal deadlines: all fire, between their neighbours
        loop.call_at(when, order.append, f"tie{i}")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert order[:3] == [0.0, 0.005, 0.01] and order[-2:] == [0.02, 0.03]
    assert sorted(order[3:-2]) == sorted(f"tie{i}" for i in range(20))


@pytest.mark.parametrize("method", ["call_later", "call_at"])
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05])
def test_timer_timing(loop: asyncio.AbstractEventLoop, method: str, delay: float) -> None:
    fired: list[float] = []
    start = loop.time()
    cb = lambda: (fired.append(time.monotonic()), loop.stop())  # noqa: E731
    if method == "call_later":
        handle = loop.call_later(delay, cb)
        assert handle.when() == pytest.approx(start + delay, abs=0.01)
    else:
        handle = loop.call_at(start + delay, cb)
        assert handle.when() == start + delay
    _stop_after(loop)
    loop.run_forever()
    assert len(fired) == 1
    assert fired[0] >= handle.when() - 0.001  # loop.time() is time.monotonic()
    assert fired[0] - start < delay + 1.0


@pytest.mark.parametrize("method", ["call_later", "call_at"])
@pytest.mark.parametrize("offset", [-100.0, -0.001])
def test_past_deadlines_run_promptly(
    loop: asyncio.AbstractEventLoop, method: str, offset: float
) -> None:
    fired: list[str] = []
    if method == "call_later":
        loop.call_later(offset, fired.append, "past")
    else:
        loop.call_at(loop.time() + offset, fired.append, "past")
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    assert fired == ["past"]


@pytest.mark.parametrize("delay", [float("inf"), 1e12, 7 * 24 * 3600.0])
def test_huge_delays_do_not_fire_or_block(loop: asyncio.AbstractEventLoop, delay: float) -> None:
    fired: list[str] = []
    handle = loop.call_later(delay, fired.append, "never")
    t0 = time.monotonic()
    assert loop.run_until_complete(asyncio.sleep(0.01, "ok")) == "ok"
    assert time.monotonic() - t0 < 1.0
    assert fired == []
    assert handle.when() > loop.time() + min(delay, 1e5)
    handle.cancel()


def test_timers_are_not_starved_by_busy_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    spins = [0]

    def spin() -> None:
        spins[0] += 1
        loop.call_soon(spin)

    loop.call_soon(spin)
    loop.call_later(0.02, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 2.0
    assert spins[0] > 10


@pytest.mark.parametrize("method", ["call_later", "call_at"])
def test_none_delay_is_a_type_error(loop: asyncio.AbstractEventLoop, method: str) -> None:
    with pytest.raises(TypeError):
        getattr(loop, method)(None, lambda: None)


def test_handles_offer_the_asyncio_handle_api(loop: asyncio.AbstractEventLoop) -> None:
    # PyLoop's handles are native classes, like uvloop's, so they are not subclasses of
    # asyncio.Handle (a documented difference); every public method is there.
    soon = loop.call_soon(lambda: None)
    later = loop.call_later(10, lambda: None)
    for handle in (soon, later):
        assert callable(handle.cancel) and handle.cancelled() is False
        if sys.version_info >= (3, 12):
            assert handle.get_context() is not None
    assert later.when() == pytest.approx(loop.time() + 10, abs=1)
    soon.cancel()
    later.cancel()
    assert soon.cancelled() and later.cancelled()


def test_handle_cancel(loop: asyncio.AbstractEventLoop) -> None:
    fired: list[str] = []
    soon = loop.call_soon(fired.append, "soon")
    later = loop.call_later(0.001, fired.append, "later")
    assert not soon.cancelled() and not later.cancelled()
    soon.cancel()
    later.cancel()
    later.cancel()  # twice is harmless
    assert soon.cancelled() and later.cancelled()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert fired == []


def test_cancelling_a_timer_from_an_earlier_timer_in_same_batch(
    loop: asyncio.AbstractEventLoop,
) -> None:
    fired: list[str] = []
    when = loop.time() + 0.01
    victim: list[asyncio.TimerHandle] = []

    def killer() -> None:
        fired.append("killer")
        victim[0].cancel()

    loop.call_at(when, killer)
    victim.append(loop.call_at(when, fired.append, "victim"))
    loop.call_at(when + 0.01, loop.stop)
    time.sleep(0.02)  # both timers are due in the same iteration
    loop.run_forever()
    assert fired == ["killer"]


def test_cancel_releases_callback(loop: asyncio.AbstractEventLoop) -> None:
    class Callback:
        def __call__(self) -> None:
            pass

    cb = Callback()
    ref = weakref.ref(cb)
    handle = loop.call_later(3600, cb)
    del cb
    handle.cancel()
    assert ref() is None, "a cancelled handle must drop its callback"


@pytest.mark.parametrize("method", ["call_soon", "call_later"])
def test_reference_cycles_through_handles_are_collectable(
    loop: asyncio.AbstractEventLoop, method: str
) -> None:
    # The common protocol pattern ``self._timer = loop.call_later(t, self._on_timeout)``
    # makes a cycle object -> handle -> bound method -> object; gc must break it.
    class Protocol:
        handle: asyncio.Handle

        def on_event(self) -> None:
            pass

    proto = Protocol()
    if method == "call_soon":
        proto.handle = loop.call_soon(proto.on_event)
    else:
        proto.handle = loop.call_later(0.001, proto.on_event)
    ref = weakref.ref(proto)
    loop.run_until_complete(asyncio.sleep(0.01))  # the handle has run and left the loop
    del proto
    gc.collect()
    assert ref() is None, "object kept alive by a cycle through a handle"


def test_many_timers_fire_in_deadline_order(loop: asyncio.AbstractEventLoop) -> None:
    rng = random.Random(1234)
    fired: list[int] = []
    handles = [loop.call_later(rng.uniform(0.0, 0.05), fired.append, i) for i in range(10_000)]
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    assert sorted(fired) == list(range(10_000))
    whens = [handles[i].when() for i in fired]
    assert whens == sorted(whens)


def test_cancelling_many_timers_keeps_heap_consistent(loop: asyncio.AbstractEventLoop) -> None:
    rng = random.Random(99)
    fired: list[int] = []
    handles = [loop.call_later(rng.uniform(0.0, 0.04), fired.append, i) for i in range(3000)]
    cancelled = set(rng.sample(range(3000), 2200))  # most of the heap: triggers compaction
    for i in cancelled:
        handles[i].cancel()
    # more timers after compaction-worthy cancellations, some cancelled again later
    extra = [loop.call_later(rng.uniform(0.0, 0.04), fired.append, 3000 + i) for i in range(500)]
    for i in range(0, 500, 2):
        extra[i].cancel()
        cancelled.add(3000 + i)
    loop.call_soon(lambda: None)
    loop.call_later(0.08, loop.stop)
    loop.run_forever()
    all_handles = handles + extra
    expected = {i for i in range(3500) if i not in cancelled}
    assert set(fired) == expected
    assert len(fired) == len(expected)
    whens = [all_handles[i].when() for i in fired]
    assert whens == sorted(whens)


# -- threads ----------------------------------------------------------------------------


def test_call_soon_threadsafe_wakes_a_waiting_loop(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()

    def worker() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, 42)

    _stop_after(loop, 5.0)  # fails with "stopped before Future completed" if never woken
    t0 = time.monotonic()
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert loop.run_until_complete(fut) == 42
    finally:
        thread.join(5)
    assert time.monotonic() - t0 < 2.0


def test_call_soon_threadsafe_from_many_threads(loop: asyncio.AbstractEventLoop) -> None:
    got: dict[int, list[int]] = {t: [] for t in range(4)}
    done = loop.create_future()
    remaining = [4 * 500]

    def record(t: int, i: int) -> None:
        got[t].append(i)
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set_result(None)

    def worker(t: int) -> None:
        for i in range(500):
            loop.call_soon_threadsafe(record, t, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    _stop_after(loop, 5.0)
    try:
        loop.run_until_complete(done)
    finally:
        for th in threads:
            th.join(5)
    assert got == {t: list(range(500)) for t in range(4)}


def test_call_soon_threadsafe_keeps_order_with_call_soon(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # From the loop's own thread the thread-safe variant is still "call_soon": callbacks
    # run in the order they were registered.
    order: list[str] = []

    def schedule() -> None:
        loop.call_soon(order.append, "a")
        loop.call_soon_threadsafe(order.append, "b")
        loop.call_soon(order.append, "c")
        loop.call_soon(loop.call_soon, loop.stop)

    loop.call_soon(schedule)
    loop.run_forever()
    assert order == ["a", "b", "c"]


def test_run_coroutine_threadsafe(loop: asyncio.AbstractEventLoop) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        result = asyncio.run_coroutine_threadsafe(add(2, 3), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert result == 5
    assert not thread.is_alive()


def test_debug_call_soon_from_other_thread_raises(
    loop: asyncio.AbstractEventLoop, run: Run
) -> None:
    loop.set_debug(True)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            loop.call_soon(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    async def main() -> None:
        thread = threading.Thread(target=worker)
        thread.start()
        await loop.run_in_executor(None, thread.join, 5)

    run(main())
    assert len(errors) == 1
    assert "thread" in str(errors[0])


# -- stop, run_forever, run_until_complete ----------------------------------------------


def test_stop_runs_the_current_batch(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    def a() -> None:
        order.append("a")
        loop.call_soon(order.append, "scheduled-by-a")

    loop.call_soon(a)
    loop.call_soon(loop.stop)
    loop.call_soon(order.append, "b")
    loop.run_forever()
    assert order == ["a", "b"]
    assert not loop.is_running()
    # what was scheduled during the stopping iteration runs on the next run
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["a", "b", "scheduled-by-a"]


def test_stop_before_run_forever_runs_one_iteration(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []
    loop.stop()
    loop.call_soon(lambda: (order.append("first"), loop.call_soon(order.append, "second")))
    loop.call_later(30, order.append, "timer")
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 1.0
    assert order == ["first"]


def test_loop_runs_normally_after_stop(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    t0 = time.monotonic()
    loop.run_until_complete(asyncio.sleep(0.05))
    assert time.monotonic() - t0 >= 0.04


def test_stop_from_timer_and_from_thread(loop: asyncio.AbstractEventLoop) -> None:
    t0 = time.monotonic()
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert 0.025 <= time.monotonic() - t0 < 2.0

    timer = threading.Timer(0.03, loop.call_soon_threadsafe, args=(loop.stop,))
    safety = _stop_after(loop, 5.0)
    t0 = time.monotonic()
    timer.start()
    loop.run_forever()
    timer.join(5)
    safety.cancel()
    assert time.monotonic() - t0 < 2.0


def test_stop_flag_is_reset_when_run_forever_raises(loop: asyncio.AbstractEventLoop) -> None:
    def boom() -> None:
        raise KeyboardInterrupt

    loop.call_soon(loop.stop)
    loop.call_soon(boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    # The loop must not remember the stop() of the interrupted run.
    assert loop.run_until_complete(asyncio.sleep(0.02, "ok")) == "ok"


def test_run_until_complete_coroutine_and_future(loop: asyncio.AbstractEventLoop) -> None:
    async def coro() -> str:
        await asyncio.sleep(0.001)
        return "coro"

    assert loop.run_until_complete(coro()) == "coro"

    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "future")
    assert loop.run_until_complete(fut) == "future"

    done = loop.create_future()
    done.set_result("done")
    assert loop.run_until_complete(done) == "done"

    failing = loop.create_future()
    loop.call_soon(failing.set_exception, ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        loop.run_until_complete(failing)

    cancelled = loop.create_future()
    loop.call_soon(cancelled.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(cancelled)


def test_run_until_complete_edge_cases(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_later(3600, lambda: None)  # a far timer must not delay completion
    t0 = time.monotonic()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert time.monotonic() - t0 < 1.0

    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(fut)

    with pytest.raises(TypeError):
        loop.run_until_complete(42)  # type: ignore[arg-type]
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError):
            loop.run_until_complete(other.create_future())
    finally:
        other.close()


def test_is_running_and_nested_runs(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    def inside() -> None:
        seen.append(loop.is_running())
        seen.append(asyncio.get_running_loop() is loop)
        for call in (loop.run_forever, lambda: loop.run_until_complete(loop.create_future())):
            try:
                call()
            except RuntimeError as exc:
                seen.append(str(exc))
        try:
            loop.close()
        except RuntimeError as exc:
            seen.append(str(exc))
        loop.stop()

    assert not loop.is_running()
    loop.call_soon(inside)
    loop.run_forever()
    assert seen[:2] == [True, True]
    assert seen[2:] == [
        "This event loop is already running",
        "This event loop is already running",
        "Cannot close a running event loop",
    ]
    assert not loop.is_running()
    assert not loop.is_closed()


def test_cannot_run_inside_another_running_loop(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    other = type(loop)()

    async def main() -> None:
        with pytest.raises(RuntimeError, match="another loop is running"):
            other.run_until_complete(other.create_future())

    try:
        run(main())
    finally:
        other.close()


# -- closing ----------------------------------------------------------------------------


def _closed_loop_ops(loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Any]]:
    fut = loop.create_future()
    return {
        "call_soon": lambda: loop.call_soon(lambda: None),
        "call_later": lambda: loop.call_later(1, lambda: None),
        "call_at": lambda: loop.call_at(loop.time() + 1, lambda: None),
        "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(lambda: None),
        "run_forever": loop.run_forever,
        "run_until_complete": lambda: loop.run_until_complete(fut),
        "run_in_executor": lambda: loop.run_in_executor(None, lambda: None),
        "create_task": lambda: _create_task_closing(loop),
    }


def _create_task_closing(loop: asyncio.AbstractEventLoop) -> None:
    coro = asyncio.sleep(0)
    try:
        loop.create_task(coro)
    finally:
        coro.close()


@pytest.mark.parametrize(
    "op",
    [
        "call_soon",
        "call_later",
        "call_at",
        "call_soon_threadsafe",
        "run_forever",
        "run_until_complete",
        "run_in_executor",
        "create_task",
    ],
)
def test_closed_loop_raises(loop: asyncio.AbstractEventLoop, op: str) -> None:
    ops = _closed_loop_ops(loop)
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        ops[op]()


def test_close_is_idempotent_and_drops_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    fired: list[str] = []
    loop.call_soon(fired.append, "soon")
    loop.call_later(0.001, fired.append, "later")
    assert not loop.is_closed()
    loop.close()
    loop.close()
    assert loop.is_closed()
    assert fired == []


# -- errors in callbacks -----------------------------------------------------------------


def test_callback_exception_goes_to_exception_handler(loop: asyncio.AbstractEventLoop) -> None:
    contexts: list[dict[str, Any]] = []

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        assert lp is loop
        contexts.append(context)

    def bad(x: int) -> None:
        raise ValueError(f"bad {x}")

    assert loop.get_exception_handler() is None
    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    h1 = loop.call_soon(bad, 1)
    h2 = loop.call_later(0.001, bad, 2)
    after: list[str] = []
    loop.call_later(0.01, after.append, "still running")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert after == ["still running"]
    assert len(contexts) == 2
    for ctx, handle, n in zip(contexts, (h1, h2), (1, 2), strict=True):
        assert ctx["message"].startswith("Exception in callback")
        assert "bad" in ctx["message"]
        assert isinstance(ctx["exception"], ValueError)
        assert str(ctx["exception"]) == f"bad {n}"
        assert ctx["handle"] is handle
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)  # type: ignore[arg-type]


def test_default_exception_handler_logs(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")

    def bad() -> None:
        raise ZeroDivisionError("oops")

    loop.call_soon(bad)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_exception_handler({"message": "custom message", "extra_key": "extra value"})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 2
    assert "Exception in callback" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is ZeroDivisionError
    assert "custom message" in records[1].getMessage()
    assert "extra_key: 'extra value'" in records[1].getMessage()


def test_failing_exception_handler_is_logged(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        raise RuntimeError("handler broke")

    loop.set_exception_handler(handler)
    loop.call_soon(lambda: 1 / 0)
    after: list[int] = []
    loop.call_soon(after.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert after == [1]
    assert any("Unhandled error in exception handler" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("source", ["callback", "task"])
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException], source: str
) -> None:
    handled: list[Any] = []
    loop.set_exception_handler(lambda lp, ctx: handled.append(ctx))

    def boom() -> None:
        raise exc_type("out")

    async def main() -> None:
        await asyncio.sleep(0)
        boom()

    with pytest.raises(exc_type):
        if source == "callback":
            loop.call_soon(boom)
            loop.run_until_complete(asyncio.sleep(0.05))
        else:
            loop.run_until_complete(main())
    assert handled == []
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "reusable")) == "reusable"


def test_interrupted_batch_resumes_on_next_run(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    def boom() -> None:
        order.append("boom")
        raise KeyboardInterrupt

    loop.call_soon(order.append, "a")
    loop.call_soon(boom)
    loop.call_soon(order.append, "b")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert order == ["a", "boom"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["a", "boom", "b"]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread()
    or signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs the default SIGINT handler on the main thread",
)
def test_sigint_interrupts_a_waiting_loop(loop: asyncio.AbstractEventLoop) -> None:
    timer = threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(3))
    finally:
        timer.join(5)
    assert time.monotonic() - t0 < 2.0


# -- debug mode -------------------------------------------------------------------------


def test_debug_exception_context_has_source_traceback(loop: asyncio.AbstractEventLoop) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.set_debug(True)

    def bad() -> None:
        raise ValueError("debug")

    loop.call_soon(bad)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)
    tb = contexts[0].get("source_traceback")
    assert tb, "debug mode records where the failing callback was scheduled"
    assert any(frame.name == "test_debug_exception_context_has_source_traceback" for frame in tb)


def test_debug_rejects_bad_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    async def coro_fn() -> None:
        pass

    loop.set_debug(True)
    assert loop.get_debug() is True
    for method in ("call_soon", "call_soon_threadsafe"):
        with pytest.raises(TypeError):
            getattr(loop, method)(42)
        with pytest.raises(TypeError, match="coroutines cannot be used"):
            getattr(loop, method)(coro_fn)
    with pytest.raises(TypeError):
        loop.call_later(0.1, 42)
    with pytest.raises(TypeError):
        loop.call_at(loop.time(), coro_fn)
    loop.set_debug(False)
    assert loop.get_debug() is False
    loop.call_soon(42).cancel()  # type: ignore[arg-type]  # unchecked outside debug mode


@pytest.mark.parametrize("debug", [True, False])
def test_slow_callback_warning(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(debug)
    loop.slow_callback_duration = 0.02  # type: ignore[attr-defined]

    def slow() -> None:
        time.sleep(0.05)

    def fast() -> None:
        pass

    loop.call_soon(fast)
    loop.call_soon(slow)
    loop.call_soon(loop.stop)
    loop.run_forever()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    slow_msgs = [m for m in messages if re.match(r"Executing .* took \d+\.\d{3} seconds", m)]
    if not debug:
        assert slow_msgs == []
        return
    assert len(slow_msgs) == 1
    assert "slow" in slow_msgs[0]
    assert "fast" not in slow_msgs[0]


def test_slow_task_step_warning_names_the_task(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.02  # type: ignore[attr-defined]

    async def slowpoke() -> None:
        time.sleep(0.05)

    loop.run_until_complete(loop.create_task(slowpoke(), name="slowpoke"))
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    slow_msgs = [m for m in messages if m.startswith("Executing <Task")]
    assert len(slow_msgs) == 1
    assert "name='slowpoke'" in slow_msgs[0]
