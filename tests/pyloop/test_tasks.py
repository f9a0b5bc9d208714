"""Tasks, futures, cancellation, timeouts, executors and async generators, on asyncio's
loop and on PyLoop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

import data_bridge.pyloop

from .conftest import is_pyloop

Run = Callable[[Coroutine[Any, Any, Any]], Any]

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


# -- creating tasks ---------------------------------------------------------------------


def test_create_task_name_and_result(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    async def main() -> None:
        named = loop.create_task(work(1), name="worker-1")
        unnamed = loop.create_task(work(2))
        assert named.get_name() == "worker-1"
        assert unnamed.get_name().startswith("Task-")
        assert named.get_loop() is loop
        assert named in asyncio.all_tasks()
        assert await named == 2
        assert await unnamed == 4
        assert named.done() and named.result() == 2
        named.set_name("renamed")
        assert named.get_name() == "renamed"

    run(main())


def test_create_task_with_context(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "given")

    async def child() -> str:
        seen = VAR.get()
        VAR.set("child-changed")
        return seen

    async def main() -> None:
        VAR.set("parent")
        assert await loop.create_task(child(), context=ctx) == "given"
        assert ctx[VAR] == "child-changed"
        assert await loop.create_task(child()) == "parent"
        assert VAR.get() == "parent"

    run(main())


def test_task_factory(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    created: list[asyncio.Task[Any]] = []

    class MyTask(asyncio.Task):  # type: ignore[type-arg]
        pass

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = MyTask(coro, loop=lp, **kwargs)
        created.append(task)
        return task

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def main() -> str:
        inner = asyncio.ensure_future(asyncio.sleep(0, "inner"))
        assert isinstance(inner, MyTask)
        named = loop.create_task(asyncio.sleep(0), name="via-factory")
        assert named.get_name() == "via-factory"
        await named
        return await inner

    assert run(main()) == "inner"
    assert len(created) >= 3  # main wrapper, inner, named
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    with pytest.raises(TypeError):
        loop.set_task_factory(42)  # type: ignore[arg-type]


def test_current_task(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    from_callback: list[Any] = []

    async def main() -> None:
        me = asyncio.current_task()
        assert me is not None and asyncio.current_task(loop) is me
        loop.call_soon(lambda: from_callback.append(asyncio.current_task(loop)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        child = loop.create_task(_current())
        assert await child is child

    async def _current() -> asyncio.Task[Any] | None:
        await asyncio.sleep(0)
        return asyncio.current_task()

    assert asyncio.current_task(loop) is None
    run(main())
    assert from_callback == [None]


def test_many_concurrent_tasks(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def sleeper(i: int) -> int:
        await asyncio.sleep(0.02)
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(sleeper(i) for i in range(1000)))

    t0 = time.monotonic()
    assert run(main()) == list(range(1000))
    assert time.monotonic() - t0 < 2.0


# -- cancellation, timeouts ---------------------------------------------------------------


def test_cancel_task_with_message(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    inside: list[BaseException] = []

    async def victim() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            inside.append(exc)
            raise

    async def main() -> None:
        task = loop.create_task(victim())
        await asyncio.sleep(0)
        assert task.cancel("bye") is True
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert task.cancelled()
        assert task.cancel() is False
        assert info.value.args == ("bye",)
        assert inside and inside[0].args == ("bye",)

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 2.0


def test_cancelled_task_can_suppress(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "survived"
        return "not cancelled"

    async def main() -> None:
        task = loop.create_task(stubborn())
        await asyncio.sleep(0)
        task.cancel()
        assert await task == "survived"
        assert not task.cancelled()

    run(main())


def test_cancel_before_first_step(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    started: list[bool] = []

    async def never() -> None:
        started.append(True)

    async def main() -> None:
        task = loop.create_task(never())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert started == []

    run(main())


@pytest.mark.parametrize("kind", ["timeout", "timeout_at", "wait_for"])
def test_timeouts(loop: asyncio.AbstractEventLoop, run: Run, kind: str) -> None:
    if kind != "wait_for" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout needs Python 3.11")
    cleaned: list[bool] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            if kind == "timeout":
                async with asyncio.timeout(0.03):
                    await slow()
            elif kind == "timeout_at":
                async with asyncio.timeout_at(loop.time() + 0.03):
                    await slow()
            else:
                await asyncio.wait_for(slow(), 0.03)

    t0 = time.monotonic()
    run(main())
    elapsed = time.monotonic() - t0
    assert 0.025 <= elapsed < 2.0
    assert cleaned == [True]


def test_timeout_not_reached(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        assert await asyncio.wait_for(asyncio.sleep(0.01, "fast"), 5) == "fast"
        if hasattr(asyncio, "timeout"):
            async with asyncio.timeout(5) as cm:
                await asyncio.sleep(0.01)
            assert not cm.expired()

    run(main())


def test_task_group(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    if not hasattr(asyncio, "TaskGroup"):
        pytest.skip("TaskGroup needs Python 3.11")
    cancelled: list[str] = []

    async def ok(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    async def fail() -> None:
        await asyncio.sleep(0.02)
        raise ValueError("child failed")

    async def long() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("long")
            raise

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(ok(i)) for i in range(5)]
        assert [t.result() for t in tasks] == list(range(5))

        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(long())
                tg.create_task(fail())
        assert [type(e) for e in info.value.exceptions] == [ValueError]
        assert cancelled == ["long"]

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 2.0


def test_task_group_parent_cancelled(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    if not hasattr(asyncio, "TaskGroup"):
        pytest.skip("TaskGroup needs Python 3.11")
    children_cancelled: list[int] = []

    async def child(i: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            children_cancelled.append(i)
            raise

    async def parent() -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(child(i))

    async def main() -> None:
        task = loop.create_task(parent())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(children_cancelled) == [0, 1, 2]

    run(main())


def test_gather(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def value(x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return x

    async def boom() -> None:
        await asyncio.sleep(0.005)
        raise KeyError("gathered")

    async def main() -> None:
        assert await asyncio.gather(value(1, 0.02), value(2, 0.0), value(3, 0.01)) == [1, 2, 3]
        results = await asyncio.gather(value(1, 0), boom(), return_exceptions=True)
        assert results[0] == 1 and isinstance(results[1], KeyError)
        with pytest.raises(KeyError):
            await asyncio.gather(value(1, 0), boom())

        children = [loop.create_task(value(i, 10)) for i in range(3)]
        outer = asyncio.gather(*children)
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert all(c.cancelled() for c in children)

    run(main())


def test_shield(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def inner() -> str:
        await asyncio.sleep(0.02)
        return "inner done"

    async def main() -> None:
        task = loop.create_task(inner())
        outer = loop.create_task(_await_shielded(task))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert not task.cancelled()
        assert await task == "inner done"

    async def _await_shielded(task: asyncio.Task[str]) -> str:
        return await asyncio.shield(task)

    run(main())


def test_wait_and_as_completed(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def value(x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return x

    async def main() -> None:
        tasks = [loop.create_task(value(i, d)) for i, d in enumerate((0.03, 0.001, 10))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert done == {tasks[1]} and pending == {tasks[0], tasks[2]}
        done, pending = await asyncio.wait(tasks, timeout=0.1)
        assert done == {tasks[0], tasks[1]} and pending == {tasks[2]}
        tasks[2].cancel()
        order = [await f for f in asyncio.as_completed([value(1, 0.02), value(2, 0.0)])]
        assert order == [2, 1]

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 2.0


def test_timeout_reschedule(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    if not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout needs Python 3.11")

    async def main() -> None:
        async with asyncio.timeout(0.01) as cm:
            cm.reschedule(loop.time() + 5)
            await asyncio.sleep(0.03)  # outlives the original deadline
        assert not cm.expired()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as cm:
                assert cm.when() is None
                cm.reschedule(loop.time() + 0.02)
                await asyncio.sleep(10)
        assert cm.expired()

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("timeout", [0, -1])
def test_wait_for_non_positive_timeout(
    loop: asyncio.AbstractEventLoop, run: Run, timeout: float
) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout)
        done = loop.create_future()
        done.set_result("ready")
        assert await asyncio.wait_for(done, timeout) == "ready"

    run(main())


def test_sync_primitives(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=4)
        got: list[int] = []

        async def producer() -> None:
            for i in range(100):
                await queue.put(i)
            await queue.put(None)

        async def consumer() -> None:
            while (item := await queue.get()) is not None:
                got.append(item)

        await asyncio.gather(producer(), consumer())
        assert got == list(range(100))

        event = asyncio.Event()
        lock = asyncio.Lock()
        sem = asyncio.Semaphore(2)
        active = [0]
        peak = [0]
        log: list[int] = []

        async def worker(i: int) -> None:
            await event.wait()
            async with sem:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                await asyncio.sleep(0.001)
                active[0] -= 1
            async with lock:
                log.append(i)

        workers = [loop.create_task(worker(i)) for i in range(10)]
        await asyncio.sleep(0.005)
        assert log == []
        event.set()
        await asyncio.gather(*workers)
        assert sorted(log) == list(range(10))
        assert peak[0] == 2

    run(main())


def test_debug_mode_workload(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    # every callback goes through the debug path (timing, thread and callback checks)
    loop.set_debug(True)
    loop.slow_callback_duration = 10  # type: ignore[attr-defined]

    async def work(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 5))
        fut = loop.create_future()
        loop.call_soon(fut.set_result, i)
        return await fut

    async def main() -> list[int]:
        assert loop.get_debug()
        return await asyncio.gather(*(work(i) for i in range(200)))

    assert run(main()) == list(range(200))


def test_pending_task_destroyed_is_reported(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def stuck() -> None:
        await loop.create_future()

    async def main() -> None:
        loop.create_task(stuck())
        await asyncio.sleep(0)

    run(main())
    gc.collect()
    assert [c["message"] for c in contexts] == ["Task was destroyed but it is pending!"]


@pytest.mark.parametrize("delay", [0, 0.001, 0.01, 0.05, -1])
def test_sleep(loop: asyncio.AbstractEventLoop, run: Run, delay: float) -> None:
    async def main() -> tuple[float, str]:
        t0 = loop.time()
        result = await asyncio.sleep(delay, result="slept")
        return loop.time() - t0, result

    elapsed, result = run(main())
    assert result == "slept"
    assert elapsed >= max(delay, 0) - 0.001
    assert elapsed < max(delay, 0) + 1.0


def test_sleep_zero_yields_to_other_tasks(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        loop.create_task(other())
        order.append("before")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order.append("after")

    run(main())
    assert order == ["before", "other", "after"]


# -- contextvars ----------------------------------------------------------------------------


def test_context_propagates_into_tasks_and_callbacks(
    loop: asyncio.AbstractEventLoop, run: Run
) -> None:
    seen: dict[str, str] = {}

    async def child() -> None:
        seen["child"] = VAR.get()
        VAR.set("child")
        loop.call_soon(lambda: seen.__setitem__("child-callback", VAR.get()))
        await asyncio.sleep(0)
        seen["child-after"] = VAR.get()

    async def main() -> None:
        VAR.set("main")
        loop.call_soon(lambda: seen.__setitem__("callback", VAR.get()))
        task = loop.create_task(child())
        VAR.set("main-later")
        await task
        await asyncio.sleep(0)
        seen["main"] = VAR.get()

    run(main())
    assert seen == {
        "child": "main",
        "callback": "main",
        "child-callback": "child",
        "child-after": "child",
        "main": "main-later",
    }


def test_executor_does_not_see_task_context_changes(
    loop: asyncio.AbstractEventLoop, run: Run
) -> None:
    async def main() -> str:
        VAR.set("task")
        return await loop.run_in_executor(None, VAR.get)

    # run_in_executor does not copy the context (asyncio.to_thread does)
    assert run(main()) == "unset"

    async def via_to_thread() -> str:
        VAR.set("task")
        return await asyncio.to_thread(VAR.get)

    assert run(via_to_thread()) == "task"


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+")
def test_eager_task_factory(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    order: list[str] = []

    async def eager() -> str:
        order.append("eager ran")
        return "done"

    async def main() -> None:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        task = loop.create_task(eager())
        order.append("after create")
        assert task.done()
        assert await task == "done"
        loop.set_task_factory(None)

    run(main())
    assert order == ["eager ran", "after create"]


EAGER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("EAGER_VAR", default="unset")


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+")
def test_eager_tasks_that_suspend(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    # The eager step runs inside create_task, as the task (current_task()) and in the
    # context given to create_task; the rest runs from the loop, as the same task.
    seen: list[tuple[str, bool, str]] = []

    async def worker(tag: str) -> str:
        me = asyncio.current_task()
        seen.append((tag, me is not None, EAGER_VAR.get()))
        await asyncio.sleep(0)
        seen.append((f"{tag} resumed", asyncio.current_task() is me, EAGER_VAR.get()))
        return tag

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("in eager task")

    async def main() -> None:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            ctx = contextvars.copy_context()
            ctx.run(EAGER_VAR.set, "given")
            task = loop.create_task(worker("a"), name="a", context=ctx)
            assert not task.done()
            assert seen == [("a", True, "given")]
            assert await task == "a"
            assert task.get_name() == "a"
            with pytest.raises(ExceptionGroup) as info:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(worker("b"), name="b")
                    tg.create_task(failing())
            assert info.group_contains(ValueError)
        finally:
            loop.set_task_factory(None)

    run(main())
    assert seen == [
        ("a", True, "given"),
        ("a resumed", True, "given"),
        ("b", True, "unset"),
        ("b resumed", True, "unset"),
    ]


# -- executors -------------------------------------------------------------------------------


def test_run_in_default_executor(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    def blocking(x: int) -> tuple[int, int]:
        time.sleep(0.01)
        return x + 1, threading.get_ident()

    def failing() -> None:
        raise OSError("in thread")

    async def main() -> None:
        results = await asyncio.gather(*(loop.run_in_executor(None, blocking, i) for i in range(8)))
        assert [r[0] for r in results] == list(range(1, 9))
        assert all(r[1] != threading.get_ident() for r in results)
        with pytest.raises(OSError, match="in thread"):
            await loop.run_in_executor(None, failing)

    run(main())


def test_custom_default_executor(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="custom-pool")
    loop.set_default_executor(executor)

    async def main() -> list[str]:
        return await asyncio.gather(
            *(loop.run_in_executor(None, lambda: threading.current_thread().name) for _ in range(4))
        )

    try:
        names = run(main())
        assert all(name.startswith("custom-pool") for name in names)
        explicit = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explicit")
        try:

            async def use_explicit() -> str:
                return await loop.run_in_executor(explicit, lambda: threading.current_thread().name)

            assert run(use_explicit()).startswith("explicit")
        finally:
            explicit.shutdown(wait=True)
    finally:
        run(loop.shutdown_default_executor())
    assert executor._shutdown  # type: ignore[attr-defined]
    processes = concurrent.futures.ProcessPoolExecutor()
    try:
        with pytest.raises(TypeError):
            loop.set_default_executor(processes)  # type: ignore[arg-type]
    finally:
        processes.shutdown()


def test_shutdown_default_executor(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        await loop.run_in_executor(None, time.sleep, 0.01)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="shutdown"):
            loop.run_in_executor(None, time.sleep, 0)

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 5.0


def test_executor_result_wakes_idle_loop(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    # no timers pending besides the run() safety net: the loop waits for the thread
    async def main() -> float:
        t0 = time.monotonic()
        await loop.run_in_executor(None, time.sleep, 0.05)
        return time.monotonic() - t0

    elapsed = run(main())
    assert 0.045 <= elapsed < 1.0


# -- async generators --------------------------------------------------------------------------


def test_shutdown_asyncgens_finalizes_generators(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    finalized: list[str] = []

    async def agen(name: str) -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
                await asyncio.sleep(0)
        finally:
            await asyncio.sleep(0)  # finalizers may await
            finalized.append(name)

    gens: list[AsyncIterator[int]] = []

    async def main() -> None:
        for name in ("a", "b"):
            gen = agen(name)
            gens.append(gen)
            assert await gen.__anext__() == 0

    run(main())
    assert finalized == []
    run(loop.shutdown_asyncgens())
    assert sorted(finalized) == ["a", "b"]


def test_asyncgen_finalized_when_garbage_collected(
    loop: asyncio.AbstractEventLoop, run: Run
) -> None:
    finalized: list[bool] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def main() -> None:
        gen = agen()
        assert await gen.__anext__() == 1
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    run(main())
    assert finalized == [True]


def test_asyncgen_after_shutdown_warns(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def agen() -> AsyncIterator[int]:
        yield 1

    run(loop.shutdown_asyncgens())

    async def main() -> None:
        gen = agen()
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            assert await gen.__anext__() == 1
        await gen.aclose()

    run(main())


# -- futures -------------------------------------------------------------------------------------


def test_create_future_and_done_callbacks(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        fut = loop.create_future()
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        calls: list[tuple[str, Any]] = []
        ctx = contextvars.copy_context()
        ctx.run(VAR.set, "cb-ctx")
        fut.add_done_callback(lambda f: calls.append(("first", f.result())))
        fut.add_done_callback(lambda f: calls.append(("ctx", VAR.get())), context=ctx)
        removed = fut.add_done_callback
        cb = lambda f: calls.append(("removed", None))  # noqa: E731
        removed(cb)
        assert fut.remove_done_callback(cb) == 1
        fut.set_result(7)
        assert calls == []  # done callbacks are scheduled, not called inline
        await asyncio.sleep(0)
        assert calls == [("first", 7), ("ctx", "cb-ctx")]
        late: list[int] = []
        fut.add_done_callback(lambda f: late.append(f.result()))
        assert late == []
        await asyncio.sleep(0)
        assert late == [7]
        with pytest.raises(asyncio.InvalidStateError):
            fut.set_result(8)

    run(main())


def test_future_exception_and_cancel(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        fut = loop.create_future()
        loop.call_later(0.005, fut.set_exception, LookupError("nope"))
        with pytest.raises(LookupError):
            await fut
        assert isinstance(fut.exception(), LookupError)

        fut2 = loop.create_future()
        loop.call_soon(fut2.cancel, "why")
        with pytest.raises(asyncio.CancelledError):
            await fut2
        assert fut2.cancelled()

    run(main())


@pytest.mark.parametrize("kind", ["future", "task"])
def test_never_retrieved_exception_reported(
    loop: asyncio.AbstractEventLoop, run: Run, kind: str
) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fails() -> None:
        raise ValueError("lost")

    async def main() -> None:
        if kind == "future":
            fut = loop.create_future()
            fut.set_exception(ValueError("lost"))
        else:
            fut = loop.create_task(fails())
            await asyncio.sleep(0)
            assert fut.done()
        del fut
        gc.collect()

    run(main())
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]["message"] == f"{kind.capitalize()} exception was never retrieved"
    assert isinstance(contexts[0]["exception"], ValueError)


# -- asyncio.Runner ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner needs Python 3.11")
def test_runner_with_loop_factory(loop: asyncio.AbstractEventLoop) -> None:
    factory = data_bridge.pyloop.new_event_loop if is_pyloop(loop) else asyncio.new_event_loop

    async def which() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0.001)
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=factory, debug=True) as runner:
        runner_loop = runner.get_loop()
        assert type(runner_loop) is type(loop)
        assert runner_loop is not loop
        assert runner_loop.get_debug()
        assert runner.run(which()) is runner_loop
        assert runner.run(which()) is runner_loop  # same loop across runs
    assert runner_loop.is_closed()
    assert not loop.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner needs Python 3.11")
def test_runner_cancels_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    factory = data_bridge.pyloop.new_event_loop if is_pyloop(loop) else asyncio.new_event_loop
    cleanup: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("background")

    async def main() -> str:
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        return "main"

    t0 = time.monotonic()
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == "main"
    assert cleanup == ["background"]
    assert time.monotonic() - t0 < 2.0


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread()
    or signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs the default SIGINT handler on the main thread",
)
def test_runner_sigint_cancels_main_task(loop: asyncio.AbstractEventLoop) -> None:
    factory = data_bridge.pyloop.new_event_loop if is_pyloop(loop) else asyncio.new_event_loop
    cleaned: list[str] = []

    async def main() -> None:
        try:
            await asyncio.sleep(3)
        finally:
            cleaned.append("main")

    timer = threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    finally:
        timer.join(5)
    assert cleaned == ["main"]
    assert time.monotonic() - t0 < 2.0
