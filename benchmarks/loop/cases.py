"""The benchmark cases, run in a fresh process per loop: ``python -m
benchmarks.loop.cases LOOP CASE [PORT_FILE]``. Micro cases print their elapsed
seconds; echo servers write their port to PORT_FILE and serve until terminated."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

CALLBACKS = 1_000_000
SLEEPS = 1_000_000
TASKS = 10_000
TASK_ROUNDS = 50
TIMERS = 100_000


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "rloop":
        import rloop

        return rloop.new_event_loop
    if name == "pyloop":
        import data_bridge.pyloop

        return data_bridge.pyloop.new_event_loop
    raise SystemExit(f"unknown loop {name!r}")


async def call_soon_chain() -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if count < CALLBACKS:
            loop.call_soon(step)
        else:
            done.set_result(None)

    start = time.perf_counter()
    loop.call_soon(step)
    await done
    return time.perf_counter() - start


async def sleep0_one_task() -> float:
    start = time.perf_counter()
    for _ in range(SLEEPS):
        await asyncio.sleep(0)
    return time.perf_counter() - start


async def sleep0_many_tasks() -> float:
    async def worker() -> None:
        for _ in range(TASK_ROUNDS):
            await asyncio.sleep(0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return time.perf_counter() - start


async def timers() -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fired = 0

    def tick() -> None:
        nonlocal fired
        fired += 1
        if fired == TIMERS:
            done.set_result(None)

    start = time.perf_counter()
    for i in range(TIMERS):
        loop.call_later((i % 100) * 0.0005, tick)
    await done
    return time.perf_counter() - start


MICRO: dict[str, Callable[[], Coroutine[Any, Any, float]]] = {
    "call_soon": call_soon_chain,
    "sleep0": sleep0_one_task,
    "sleep0_tasks": sleep0_many_tasks,
    "timers": timers,
}


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoDatagram(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def streams_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load client resets its connections when the run ends
    finally:
        writer.close()


async def serve(kind: str, port_file: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    if kind == "udp":
        transport, _ = await loop.create_datagram_endpoint(
            EchoDatagram, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
    else:
        if kind == "protocol":
            server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        else:
            server = await asyncio.start_server(streams_handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as f:
        f.write(str(port))
    await stop
    if kind == "udp":
        transport.close()
    else:
        server.close()


def main() -> None:
    loop_name, case = sys.argv[1], sys.argv[2]
    factory = loop_factory(loop_name)
    with asyncio.Runner(loop_factory=factory) as runner:
        if case in MICRO:
            print(f"{runner.run(MICRO[case]()):.4f}")
        else:
            runner.run(serve(case, sys.argv[3]))


if __name__ == "__main__":
    main()
