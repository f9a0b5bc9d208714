"""Loops in forked children: a child forked while the parent's loop runs (from a
thread, as executors and multiprocessing may) runs loops of its own, and the
parent's loop keeps working."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import data_bridge.pyloop

Run = Callable[[Coroutine[Any, Any, Any]], Any]

ROUNDS = 2000


def fork_from_thread(child: Callable[[], int]) -> int:
    """Forks from a new thread, runs ``child()`` in the child and returns its exit status."""
    pids: list[int] = []

    def target() -> None:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process that has threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            code = 2
            try:
                code = child()
            finally:
                os._exit(code)
        pids.append(pid)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    _, status = os.waitpid(pids[0], 0)
    return os.waitstatus_to_exitcode(status)


def new_loop_like(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.AbstractEventLoop]:
    if isinstance(loop, data_bridge.pyloop.Loop):
        return data_bridge.pyloop.new_event_loop
    return asyncio.new_event_loop


def test_child_and_parent_loops_do_io_at_once(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """While the child ping-pongs over sockets on its own loop, the parent's loop does
    the same: neither sees the other's readiness events."""
    new_loop = new_loop_like(loop)

    async def ping_pong(rounds: int) -> int:
        lp = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for i in range(rounds):
                await lp.sock_sendall(a, b"x")
                assert await lp.sock_recv(b, 1) == b"x"
                if i % 100 == 0:
                    await asyncio.sleep(0.001)
            return rounds
        finally:
            a.close()
            b.close()

    def child() -> int:
        lp = new_loop()
        try:
            done = lp.run_until_complete(asyncio.wait_for(ping_pong(ROUNDS), 10))
        finally:
            lp.close()
        return 0 if done == ROUNDS else 1

    async def main() -> tuple[int, int]:
        status = loop.run_in_executor(None, fork_from_thread, child)
        mine = await ping_pong(ROUNDS)
        return await status, mine

    assert run(main()) == (0, ROUNDS)


def test_child_can_add_signal_handlers(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """The parent's loop owns the signal wake-up descriptor; the child inherits that
    setting, and a new loop in the child adds a handler and gets its signal."""
    new_loop = new_loop_like(loop)

    def child() -> int:
        lp = new_loop()
        try:
            fut = lp.create_future()
            lp.add_signal_handler(signal.SIGUSR1, fut.set_result, "handled")
            lp.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
            result = lp.run_until_complete(asyncio.wait_for(fut, 5))
            lp.remove_signal_handler(signal.SIGUSR1)
        finally:
            lp.close()
        return 0 if result == "handled" else 1

    async def main() -> int:
        # A handler makes asyncio's loop install a wake-up descriptor too.
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
        try:
            return await loop.run_in_executor(None, fork_from_thread, child)
        finally:
            loop.remove_signal_handler(signal.SIGUSR2)

    assert run(main()) == 0
