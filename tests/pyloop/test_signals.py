"""Unix signals: ``add_signal_handler``/``remove_signal_handler``, waking a loop that is
waiting when a signal arrives, and SIGINT handling in ``asyncio.run`` versus
``data_bridge.pyloop.run``. Signal handlers only work on the main thread, which is
where pytest runs the tests."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import data_bridge.pyloop

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(autouse=True)
def restore_signals() -> Iterator[None]:
    """Puts back SIGUSR1/SIGUSR2/SIGINT handlers and the wake-up fd, whatever a test did."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    assert threading.current_thread() is threading.main_thread()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(-1)


def send_later(delay: float, sig: int = signal.SIGUSR1) -> threading.Thread:
    """Sends ``sig`` to this process from another thread after ``delay`` seconds."""

    def target() -> None:
        time.sleep(delay)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# -- add_signal_handler ---------------------------------------------------------------


def test_handler_runs_on_loop_with_args(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> tuple[Any, ...]:
        fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()

        def handler(*args: Any) -> None:
            assert asyncio.get_running_loop() is loop
            fut.set_result((*args, threading.get_ident()))

        loop.add_signal_handler(signal.SIGUSR1, handler, "a", 2)
        try:
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
            return await asyncio.wait_for(fut, 5)
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1)

    assert run(main()) == ("a", 2, threading.get_ident())


def test_signal_from_other_thread(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> list[int]:
        received: list[int] = []
        done = asyncio.Event()

        def handler(n: int) -> None:
            assert threading.current_thread() is threading.main_thread()
            received.append(n)
            done.set()

        loop.add_signal_handler(signal.SIGUSR1, handler, 42)
        try:
            thread = send_later(0.05)
            await asyncio.wait_for(done.wait(), 5)
            thread.join(5)
            return received
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    assert run(main()) == [42]


def test_signal_wakes_loop_waiting_on_long_timer(loop: asyncio.AbstractEventLoop) -> None:
    """The only timer is 10 s away; a signal must still be handled promptly."""
    handled_at: list[float] = []
    sent_at: list[float] = []

    def handler() -> None:
        handled_at.append(time.monotonic())
        loop.stop()

    def sender() -> None:
        time.sleep(0.1)
        sent_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    far = loop.call_later(10, loop.stop)
    loop.add_signal_handler(signal.SIGUSR1, handler)
    thread = threading.Thread(target=sender, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        loop.run_forever()
    finally:
        far.cancel()
        loop.remove_signal_handler(signal.SIGUSR1)
        thread.join(5)
    assert handled_at, "the loop stopped without running the handler"
    assert handled_at[0] - sent_at[0] < 0.5
    assert time.monotonic() - started < 2


def test_signal_wakes_loop_with_nothing_scheduled(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []

    def handler() -> None:
        calls.append("handled")
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    thread = send_later(0.1)
    # A watchdog in case the signal is never seen (it would otherwise hang forever).
    watchdog = threading.Timer(5, loop.call_soon_threadsafe, (loop.stop,))
    watchdog.start()
    started = time.monotonic()
    try:
        loop.run_forever()
    finally:
        watchdog.cancel()
        loop.remove_signal_handler(signal.SIGUSR1)
        thread.join(5)
    assert calls == ["handled"]
    assert time.monotonic() - started < 1


def test_several_signals_and_handlers(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> list[str]:
        received: list[str] = []
        done = asyncio.Event()

        def handler(name: str) -> None:
            received.append(name)
            if len(received) == 4:
                done.set()

        loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
        loop.add_signal_handler(signal.SIGUSR2, handler, "usr2")
        try:
            for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1, signal.SIGUSR2):
                os.kill(os.getpid(), sig)
                await asyncio.sleep(0.05)
            await asyncio.wait_for(done.wait(), 5)
            return received
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            loop.remove_signal_handler(signal.SIGUSR2)

    assert run(main()) == ["usr1", "usr2", "usr1", "usr2"]


def test_replacing_a_handler(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> list[str]:
        received: list[str] = []
        loop.add_signal_handler(signal.SIGUSR1, received.append, "old")
        loop.add_signal_handler(signal.SIGUSR1, received.append, "new")
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            return received
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    assert run(main()) == ["new"]


def test_handler_exception_goes_to_exception_handler(
    loop: asyncio.AbstractEventLoop, run: Run
) -> None:
    async def main() -> dict[str, Any]:
        contexts: list[dict[str, Any]] = []
        got = asyncio.Event()

        def exception_handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            contexts.append(context)
            got.set()

        def handler() -> None:
            raise ZeroDivisionError("from signal handler")

        loop.set_exception_handler(exception_handler)
        loop.add_signal_handler(signal.SIGUSR1, handler)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(got.wait(), 5)
            # The loop keeps running after the failing handler.
            await asyncio.sleep(0.01)
            return contexts[0]
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            loop.set_exception_handler(None)

    context = run(main())
    assert isinstance(context["exception"], ZeroDivisionError)


def test_signal_before_run_is_handled_on_next_run(loop: asyncio.AbstractEventLoop) -> None:
    received: list[int] = []
    loop.add_signal_handler(signal.SIGUSR1, received.append, 1)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)  # the loop is not running yet
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    assert received == [1]


# -- remove_signal_handler -------------------------------------------------------------


def test_remove_signal_handler(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_wakeup_fd_released_after_last_handler(loop: asyncio.AbstractEventLoop) -> None:
    received: list[int] = []
    loop.add_signal_handler(signal.SIGUSR1, received.append, 1)
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.1))
    assert loop.remove_signal_handler(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0))
    assert received == [1]
    # Nobody holds the process-wide wake-up descriptor any more.
    assert signal.set_wakeup_fd(-1) == -1


def test_remove_sigint_restores_default_int_handler(loop: asyncio.AbstractEventLoop) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_removed_handler_no_longer_called(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> list[str]:
        received: list[str] = []
        loop.add_signal_handler(signal.SIGUSR1, received.append, "first")
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
        assert loop.remove_signal_handler(signal.SIGUSR1)
        # Ignore the signal at the OS level: the default action would kill pytest.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.1)
        return received

    assert run(main()) == ["first"]


def test_close_removes_handlers(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)


# -- invalid arguments -----------------------------------------------------------------


@pytest.mark.parametrize("sig", [0, -1, 10_000, signal.NSIG])
def test_invalid_signal_number(loop: asyncio.AbstractEventLoop, sig: int) -> None:
    with pytest.raises(ValueError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", ["SIGUSR1", 1.5, None])
def test_signal_of_wrong_type(loop: asyncio.AbstractEventLoop, sig: Any) -> None:
    with pytest.raises(TypeError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(TypeError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal(loop: asyncio.AbstractEventLoop, sig: int) -> None:
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False
    # The failed attempt leaves the loop usable.
    loop.run_until_complete(asyncio.sleep(0))


def test_coroutine_callback_rejected(loop: asyncio.AbstractEventLoop) -> None:
    async def handler() -> None:
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, handler)
    coro = handler()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)  # type: ignore[arg-type]
    finally:
        coro.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_add_from_non_main_thread_fails(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(5)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_sigint_without_handler_interrupts_run_until_complete(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """With Python's default SIGINT handler, KeyboardInterrupt escapes the waiting loop."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = send_later(0.1, signal.SIGINT)
    started = time.monotonic()
    task = loop.create_task(asyncio.sleep(5))
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert time.monotonic() - started < 2
        assert not loop.is_running()
        # The loop is still usable afterwards.
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        thread.join(5)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_callback_escapes_loop(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    def fail() -> None:
        raise exc_type()

    loop.call_later(0.01, fail)
    task = loop.create_task(asyncio.sleep(5))
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


# -- SIGINT with asyncio.run and data_bridge.pyloop.run ---------------------------------

RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio.run": asyncio.run,
    "pyloop.run": data_bridge.pyloop.run,
}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_sigint_cancels_main_and_raises_keyboard_interrupt(runner: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = type(asyncio.get_running_loop())
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        started = time.monotonic()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            state["cancelled_after"] = time.monotonic() - started
            await asyncio.sleep(0.01)  # clean-up may still await
            state["cleaned_up"] = True
            raise

    with pytest.raises(KeyboardInterrupt):
        RUNNERS[runner](main())
    assert state["cancelled_after"] < 2
    assert state.get("cleaned_up") is True
    if runner == "pyloop.run":
        assert issubclass(state["loop"], data_bridge.pyloop.Loop)
    # The runner puts the default SIGINT handler back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_sigint_from_thread_while_waiting(runner: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    state: dict[str, Any] = {}

    async def main() -> None:
        thread = send_later(0.1, signal.SIGINT)
        try:
            await asyncio.Event().wait()  # nothing scheduled at all
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            thread.join(5)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        RUNNERS[runner](main())
    assert state == {"cancelled": True}
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_sigint_swallowed_by_main_returns_normally(runner: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)

    async def main() -> str:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "shut down cleanly"
        return "not interrupted"

    assert RUNNERS[runner](main()) == "shut down cleanly"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_custom_sigint_handler_via_loop(runner: str) -> None:
    """A program that handles SIGINT itself with add_signal_handler (a server's shutdown)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        log: list[str] = []

        def on_sigint() -> None:
            log.append("sigint")
            stop.set()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.wait_for(stop.wait(), 5)
            log.append("stopping")
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        return log

    assert RUNNERS[runner](main()) == ["sigint", "stopping"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
