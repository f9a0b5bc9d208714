"""Nothing leaks on a hot loop: callbacks, timers, futures, tasks, TCP connections and
datagrams pushed through the loop tens of thousands of times leave the same number of
Python objects, descriptors and (within a small bound) the same resident memory as
after a warm-up of the same work. Run on both loops, as every loop test is."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
#: Resident memory a warmed-up round may still add (allocator slack, not a leak).
RSS_SLACK = 8 * 1024 * 1024
#: Objects a round may leave behind (interned strings, caches filled once).
OBJECT_SLACK = 200


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def footprint() -> tuple[int, int, int]:
    gc.collect()
    return len(gc.get_objects()), len(os.listdir("/proc/self/fd")), rss()


async def scheduling_round() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [20_000]

    def tick() -> None:
        left[0] -= 1
        if left[0]:
            loop.call_soon(tick)
        else:
            done.set_result(None)

    loop.call_soon(tick)
    await done
    handles = [loop.call_later(60, tick) for _ in range(5_000)]
    for handle in handles:
        handle.cancel()
    await asyncio.gather(*(asyncio.sleep(0) for _ in range(2_000)))
    tasks = [asyncio.ensure_future(asyncio.sleep(10)) for _ in range(1_000)]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def network_round() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(1024))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for _ in range(300):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 512)
        assert await reader.read() == b"x" * 512
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()

    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.put_nowait(data)

    receiver, _ = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    sender, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=receiver.get_extra_info("sockname")
    )
    for _ in range(2_000):
        sender.sendto(b"d" * 256)
        await got.get()
    sender.close()
    receiver.close()
    await asyncio.sleep(0)


def assert_no_growth(
    run: Callable[[Coroutine[Any, Any, None]], None],
    round_: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    run(round_())  # warm-up: caches, free lists and the allocator's arenas fill once
    objects, fds, memory = footprint()
    for _ in range(3):
        run(round_())
    objects_after, fds_after, memory_after = footprint()
    assert objects_after - objects <= OBJECT_SLACK, (objects, objects_after)
    assert fds_after <= fds, (fds, fds_after)
    assert memory_after - memory <= RSS_SLACK, (memory, memory_after)


def test_scheduling_leaves_nothing_behind(run: Callable[..., None]) -> None:
    assert_no_growth(run, scheduling_round)


def test_connections_and_datagrams_leave_nothing_behind(run: Callable[..., None]) -> None:
    assert_no_growth(run, network_round)
