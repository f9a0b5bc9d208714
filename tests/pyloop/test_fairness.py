"""Fairness between callbacks and I/O: a loop kept busy by callbacks still polls
its sockets every iteration, so ready I/O is served within an iteration or two."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

# One iteration to notice readiness, one to run the protocol callback; asyncio's
# selector loop needs the same.
MAX_ITERATIONS = 3


class _Recorder(asyncio.Protocol):
    def __init__(self, counter: Callable[[], int], got: asyncio.Future[int]) -> None:
        self.counter = counter
        self.got = got

    def data_received(self, data: bytes) -> None:
        if not self.got.done():
            self.got.set_result(self.counter())


def test_busy_callbacks_do_not_starve_sockets(
    loop: asyncio.AbstractEventLoop, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    iterations = 0
    spinning = True

    def spin() -> None:
        nonlocal iterations
        iterations += 1
        if spinning:
            loop.call_soon(spin)

    async def main() -> int:
        nonlocal spinning
        rsock, wsock = socket.socketpair()
        got: asyncio.Future[int] = loop.create_future()
        transport, _ = await loop.connect_accepted_socket(
            lambda: _Recorder(lambda: iterations, got), rsock
        )
        try:
            loop.call_soon(spin)
            for _ in range(10):
                await asyncio.sleep(0)
            sent_at = iterations
            wsock.send(b"x")
            received_at = await got
            return received_at - sent_at
        finally:
            spinning = False
            transport.close()
            wsock.close()
            await asyncio.sleep(0)

    assert run(main()) <= MAX_ITERATIONS


def test_timer_due_while_busy_runs_promptly(
    loop: asyncio.AbstractEventLoop, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    spinning = True

    def spin() -> None:
        if spinning:
            loop.call_soon(spin)

    async def main() -> float:
        nonlocal spinning
        fired: asyncio.Future[float] = loop.create_future()
        loop.call_soon(spin)
        due = loop.time() + 0.02
        loop.call_at(due, lambda: fired.set_result(loop.time()))
        try:
            return (await fired) - due
        finally:
            spinning = False

    lateness = run(main())
    assert 0 <= lateness < 0.05
