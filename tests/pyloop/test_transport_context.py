"""Context variables seen by protocol callbacks: asyncio runs a transport's callbacks
in a copy of the context that was current when the transport was made, not in the
context the loop itself runs in."""

from __future__ import annotations

import asyncio
import contextvars
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.pyloop.waiting import wait_until

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

HOST = "127.0.0.1"

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("WHO", default="loop")
COUNT: contextvars.ContextVar[int] = contextvars.ContextVar("COUNT", default=0)


class ContextRecorder(asyncio.Protocol):
    """Records ``WHO`` in every callback; counts its ``data_received`` calls in ``COUNT``,
    which only persists between calls if they share one context."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.counts: list[int] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.seen.append(("connection_made", WHO.get()))

    def data_received(self, data: bytes) -> None:
        self.seen.append(("data_received", WHO.get()))
        self.counts.append(COUNT.get())
        COUNT.set(COUNT.get() + 1)
        self.data += data

    def eof_received(self) -> None:
        self.seen.append(("eof_received", WHO.get()))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.seen.append(("connection_lost", WHO.get()))
        if not self.lost.done():
            self.lost.set_result(None)

    def values(self) -> set[str]:
        return {who for _, who in self.seen}


def run_isolated(run: Run[None], coro: Coroutine[Any, Any, None]) -> None:
    """Runs ``coro`` on the test's loop from an empty context, then checks that no
    callback set a variable there: callbacks run in their transport's context."""
    outer = contextvars.Context()
    outer.run(run, coro)
    assert WHO not in outer
    assert COUNT not in outer


def check_counts(counts: list[int]) -> None:
    # One context per transport: the count goes 0, 1, 2, ... across its calls.
    assert counts == list(range(len(counts)))


async def feed(sock: socket.socket, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(chunks):
        await loop.sock_sendall(sock, b"x" * 100)
        await asyncio.sleep(0.01)
    sock.shutdown(socket.SHUT_WR)


def test_create_connection_callbacks_see_creation_context(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        listener = socket.create_server((HOST, 0))
        listener.setblocking(False)
        port = listener.getsockname()[1]
        WHO.set("client")
        transport, proto = await loop.create_connection(ContextRecorder, HOST, port)
        peer, _ = await loop.sock_accept(listener)
        await feed(peer, 3)
        await asyncio.wait_for(proto.lost, 5)
        peer.close()
        listener.close()
        assert [name for name, _ in proto.seen][-2:] == ["eof_received", "connection_lost"]
        assert proto.values() == {"client"}
        check_counts(proto.counts)
        assert transport.is_closing()

    run_isolated(run, main())


def test_server_connections_get_a_context_each(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    protos: list[ContextRecorder] = []

    def factory() -> ContextRecorder:
        proto = ContextRecorder()
        protos.append(proto)
        return proto

    async def main() -> None:
        WHO.set("server")
        server = await loop.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        WHO.set("after-server")
        for _ in range(2):
            client = socket.create_connection((HOST, port))
            client.setblocking(False)
            await feed(client, 3)
            await wait_until(lambda: len(protos) > 0 and protos[-1].lost.done())
            client.close()
        server.close()
        await server.wait_closed()

    run_isolated(run, main())
    assert len(protos) == 2
    for proto in protos:
        assert proto.values() == {"server"}
        # The second connection does not see the first one's COUNT.
        check_counts(proto.counts)


def test_connect_accepted_socket_callbacks_see_creation_context(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        WHO.set("accepted")
        _, proto = await loop.connect_accepted_socket(ContextRecorder, a)
        await feed(b, 2)
        await asyncio.wait_for(proto.lost, 5)
        b.close()
        assert proto.values() == {"accepted"}
        check_counts(proto.counts)

    run_isolated(run, main())


class DatagramContextRecorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.counts: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.seen.append(("connection_made", WHO.get()))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(("datagram_received", WHO.get()))
        self.counts.append(COUNT.get())
        COUNT.set(COUNT.get() + 1)


def test_datagram_callbacks_see_creation_context(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        WHO.set("udp")
        transport, proto = await loop.create_datagram_endpoint(
            DatagramContextRecorder, local_addr=(HOST, 0)
        )
        addr = transport.get_extra_info("sockname")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(3):
                sender.sendto(b"ping", addr)
            await wait_until(lambda: len(proto.counts) == 3)
        finally:
            sender.close()
            transport.close()
        assert {who for _, who in proto.seen} == {"udp"}
        check_counts(proto.counts)

    run_isolated(run, main())
