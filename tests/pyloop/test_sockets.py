"""``loop.sock_*`` operations, name resolution and ``add_reader``/``add_writer``."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.pyloop.waiting import wait_until

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

HOST = "127.0.0.1"


async def spin(seconds: float = 0.05) -> None:
    """Lets the loop run for a while, many iterations."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected, non-blocking TCP sockets on loopback."""
    with socket.create_server((HOST, 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=5)
        b, _ = listener.accept()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two bound, non-blocking UDP sockets on loopback."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        for s in (a, b):
            s.bind((HOST, 0))
            s.setblocking(False)
        yield a, b


async def still_waiting(
    coro: Coroutine[Any, Any, T], seconds: float = 0.05, why: str = ""
) -> asyncio.Future[T]:
    """Starts ``coro`` and checks that it is still waiting after ``seconds`` of loop
    iterations; returns its task."""
    task = asyncio.ensure_future(coro)
    await spin(seconds)
    assert not task.done(), why
    return task


def reset_on_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# -- stream sockets ---------------------------------------------------------------


def test_sock_recv(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair

    async def main() -> None:
        a.send(b"ready")
        await asyncio.sleep(0.01)
        assert await loop.sock_recv(b, 100) == b"ready"
        task = await still_waiting(loop.sock_recv(b, 3))
        a.send(b"hello")
        assert await asyncio.wait_for(task, 5) == b"hel"
        assert await loop.sock_recv(b, 100) == b"lo"
        a.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(loop.sock_recv(b, 100), 5) == b""

    run(main())


def test_sock_recv_reset(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin(0.01)
        reset_on_close(a)
        a.close()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(task, 5)

    run(main())


def test_sock_recv_cancelled_then_reused(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancelled wait released the descriptor: a new wait works and the
        # data is not consumed by the cancelled one.
        a.send(b"after cancel")
        assert await asyncio.wait_for(loop.sock_recv(b, 100), 5) == b"after cancel"
        assert loop.remove_reader(b.fileno()) is False

    run(main())


def test_sock_recv_into(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair

    async def main() -> None:
        buf = bytearray(10)
        task = await still_waiting(loop.sock_recv_into(b, buf), 0.01)
        a.send(b"abc")
        assert await asyncio.wait_for(task, 5) == 3
        assert buf == b"abc" + bytes(7)
        a.send(b"xyz")
        view = memoryview(buf)[5:7]
        await asyncio.sleep(0.01)
        assert await asyncio.wait_for(loop.sock_recv_into(b, view), 5) == 2
        assert buf == b"abc\x00\x00xy\x00\x00\x00"
        assert await asyncio.wait_for(loop.sock_recv(b, 10), 5) == b"z"

    run(main())


def test_sock_sendall_large_blocks_until_read(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    payload = os.urandom(16 * 1024 * 1024)

    async def main() -> None:
        sender = await still_waiting(
            loop.sock_sendall(a, payload), 0.05, "16 MiB cannot fit in the socket buffers"
        )
        got = bytearray()
        while len(got) < len(payload):
            chunk = await asyncio.wait_for(loop.sock_recv(b, 1024 * 1024), 5)
            assert chunk
            got += chunk
        assert await asyncio.wait_for(sender, 5) is None
        assert got == payload
        assert loop.remove_writer(a.fileno()) is False

    run(main())


def test_sock_sendall_small_and_bytes_like(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair

    async def main() -> None:
        assert await loop.sock_sendall(a, b"one") is None
        await loop.sock_sendall(a, bytearray(b"two"))
        await loop.sock_sendall(a, memoryview(b"three"))
        await loop.sock_sendall(a, b"")
        await wait_until(lambda: True)
        got = b""
        while len(got) < 11:
            got += await asyncio.wait_for(loop.sock_recv(b, 100), 5)
        assert got == b"onetwothree"

    run(main())


def test_sock_connect_and_accept(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with socket.socket() as listener, socket.socket() as client:
            listener.bind((HOST, 0))
            listener.listen()
            listener.setblocking(False)
            client.setblocking(False)
            accept = await still_waiting(loop.sock_accept(listener), 0.01)
            await asyncio.wait_for(loop.sock_connect(client, listener.getsockname()), 5)
            conn, addr = await asyncio.wait_for(accept, 5)
            with conn:
                assert addr == client.getsockname()
                assert conn.gettimeout() == 0
                assert client.getpeername() == listener.getsockname()
                await loop.sock_sendall(client, b"ping")
                assert await asyncio.wait_for(loop.sock_recv(conn, 10), 5) == b"ping"
                await loop.sock_sendall(conn, b"pong")
                assert await asyncio.wait_for(loop.sock_recv(client, 10), 5) == b"pong"

    run(main())


def test_sock_connect_resolves_localhost(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with socket.create_server((HOST, 0)) as listener, socket.socket() as client:
            client.setblocking(False)
            port = listener.getsockname()[1]
            await asyncio.wait_for(loop.sock_connect(client, ("localhost", port)), 5)
            assert client.getpeername() == (HOST, port)
            listener.accept()[0].close()

    run(main())


def test_sock_connect_refused(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with socket.socket() as blocker, socket.socket() as client:
            blocker.bind((HOST, 0))  # bound, not listening: connections are refused
            client.setblocking(False)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(loop.sock_connect(client, blocker.getsockname()), 5)
            assert loop.remove_writer(client.fileno()) is False

    run(main())


# -- datagram sockets ---------------------------------------------------------------


def test_sock_sendto_recvfrom(
    loop: asyncio.AbstractEventLoop, run: Run[None], udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> None:
        task = await still_waiting(loop.sock_recvfrom(b, 1024), 0.01)
        assert await loop.sock_sendto(a, b"datagram", b.getsockname()) == 8
        data, addr = await asyncio.wait_for(task, 5)
        assert data == b"datagram"
        assert addr == a.getsockname()
        # Datagram boundaries are kept; a short buffer truncates.
        await loop.sock_sendto(a, b"0123456789", b.getsockname())
        await loop.sock_sendto(a, b"second", b.getsockname())
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(b, 4), 5)
        assert data == b"0123"
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(b, 100), 5)
        assert data == b"second"

    run(main())


@pytest.mark.parametrize("connected", [False, True], ids=["unconnected", "connected"])
def test_sock_sendto_waits_for_a_full_socket(
    loop: asyncio.AbstractEventLoop, run: Run[None], connected: bool
) -> None:
    """A Unix datagram socket with a small send buffer fills while the peer does not
    read: sock_sendto waits until the peer reads, then sends."""

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="pyl") as d:
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            with receiver, sender:
                address = os.path.join(d, "r.sock")
                receiver.bind(address)
                if connected:
                    sender.connect(address)
                sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                sender.setblocking(False)
                receiver.setblocking(False)
                queued = 0
                with pytest.raises(BlockingIOError):
                    while True:
                        sender.sendto(b"x" * 512, address)
                        queued += 1
                assert queued > 0
                sending = await still_waiting(loop.sock_sendto(sender, b"last", address), 0.05)
                for _ in range(queued):
                    assert await loop.sock_recv(receiver, 1024) == b"x" * 512
                    await asyncio.sleep(0.005)  # a slow reader
                assert await asyncio.wait_for(sending, 5) == 4
                assert await asyncio.wait_for(loop.sock_recv(receiver, 1024), 5) == b"last"

    run(main())


def test_sock_recvfrom_into(
    loop: asyncio.AbstractEventLoop, run: Run[None], udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> None:
        buf = bytearray(8)
        task = await still_waiting(loop.sock_recvfrom_into(b, buf), 0.01)
        await loop.sock_sendto(a, b"abc", b.getsockname())
        nbytes, addr = await asyncio.wait_for(task, 5)
        assert (nbytes, addr) == (3, a.getsockname())
        assert buf[:3] == b"abc"
        await loop.sock_sendto(a, b"123456", b.getsockname())
        nbytes, _ = await asyncio.wait_for(loop.sock_recvfrom_into(b, buf, 2), 5)
        assert nbytes == 2
        assert buf == b"12c" + bytes(5)
        with pytest.raises(ValueError):
            await loop.sock_recvfrom_into(b, buf, 100)

    run(main())


# -- name resolution --------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "kwargs"),
    [
        (HOST, 80, {}),
        (HOST, 0, {"type": socket.SOCK_STREAM}),
        ("localhost", 8080, {"family": socket.AF_INET}),
        ("localhost", 53, {"family": socket.AF_INET, "type": socket.SOCK_DGRAM}),
        (None, 1234, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
        (HOST, "443", {"proto": socket.IPPROTO_TCP}),
    ],
)
def test_getaddrinfo(
    loop: asyncio.AbstractEventLoop,
    run: Run[None],
    host: str | None,
    port: int | str,
    kwargs: dict[str, int],
) -> None:
    async def main() -> None:
        infos = await loop.getaddrinfo(host, port, **kwargs)
        assert infos == socket.getaddrinfo(host, port, **kwargs)
        assert infos
        for family, type_, _proto, _canon, addr in infos:
            assert isinstance(family, socket.AddressFamily)
            assert isinstance(type_, socket.SocketKind)
            assert addr[1] == int(port)

    run(main())


def test_getaddrinfo_loopback_entry(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        infos = await loop.getaddrinfo(HOST, 80, type=socket.SOCK_STREAM)
        assert (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (HOST, 80)) in infos
        infos = await loop.getaddrinfo("localhost", 80, family=socket.AF_INET)
        assert {info[4] for info in infos} == {(HOST, 80)}

    run(main())


def test_getaddrinfo_error(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("not-a-number", 80, flags=socket.AI_NUMERICHOST)

    run(main())


@pytest.mark.parametrize(
    ("sockaddr", "flags", "expected"),
    [
        ((HOST, 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, (HOST, "80")),
        ((HOST, 8080), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, (HOST, "8080")),
        ((HOST, 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, (HOST, "0")),
    ],
)
def test_getnameinfo(
    loop: asyncio.AbstractEventLoop,
    run: Run[None],
    sockaddr: tuple[str, int],
    flags: int,
    expected: tuple[str, str],
) -> None:
    async def main() -> None:
        assert await loop.getnameinfo(sockaddr, flags) == expected
        assert await loop.getnameinfo(sockaddr, flags) == socket.getnameinfo(sockaddr, flags)

    run(main())


# -- add_reader / add_writer --------------------------------------------------------


def test_add_reader_runs_only_when_readable(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    got: list[bytes] = []

    def on_readable(tag: str, other: int) -> None:
        assert (tag, other) == ("tag", 7)
        got.append(b.recv(100))

    async def main() -> None:
        loop.add_reader(b.fileno(), on_readable, "tag", 7)
        try:
            await spin()
            assert got == []
            a.send(b"one")
            await wait_until(lambda: got == [b"one"])
            await spin()
            assert got == [b"one"]
            a.send(b"two")
            await wait_until(lambda: got == [b"one", b"two"])
        finally:
            assert loop.remove_reader(b.fileno()) is True
        a.send(b"three")
        await spin()
        assert got == [b"one", b"two"]
        assert b.recv(100) == b"three"

    run(main())


def test_add_reader_is_level_triggered(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    calls: list[int] = []

    async def main() -> None:
        # A callback that does not read keeps firing while the data stays.
        loop.add_reader(b, lambda: calls.append(1))
        try:
            a.send(b"x")
            await wait_until(lambda: len(calls) >= 5)
        finally:
            assert loop.remove_reader(b) is True
        n = len(calls)
        await spin()
        assert len(calls) == n
        assert b.recv(10) == b"x"

    run(main())


def test_add_reader_partial_reads(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    got: list[bytes] = []

    async def main() -> None:
        # One byte per call: called exactly once per byte, then no more.
        loop.add_reader(b.fileno(), lambda: got.append(b.recv(1)))
        try:
            a.send(b"abcde")
            await wait_until(lambda: len(got) >= 5)
            await spin()
            assert got == [b"a", b"b", b"c", b"d", b"e"]
        finally:
            loop.remove_reader(b.fileno())

    run(main())


def test_add_reader_replaces_callback(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    first: list[bytes] = []
    second: list[bytes] = []

    async def main() -> None:
        loop.add_reader(b.fileno(), lambda: first.append(b.recv(100)))
        loop.add_reader(b.fileno(), lambda: second.append(b.recv(100)))
        try:
            a.send(b"data")
            await wait_until(lambda: bool(second))
            assert first == []
            assert second == [b"data"]
        finally:
            assert loop.remove_reader(b.fileno()) is True
            assert loop.remove_reader(b.fileno()) is False

    run(main())


def test_remove_reader_and_writer_unknown_fd(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = tcp_pair

    async def main() -> None:
        assert loop.remove_reader(a.fileno()) is False
        assert loop.remove_writer(a.fileno()) is False
        loop.add_writer(a.fileno(), lambda: None)
        # A writer does not make a reader.
        assert loop.remove_reader(a.fileno()) is False
        assert loop.remove_writer(a.fileno()) is True
        assert loop.remove_writer(a.fileno()) is False

    run(main())


def test_remove_reader_and_writer_of_closed_socket(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    # anyio closes a socket while a task waits on it, then removes the reader by the
    # socket object, whose fileno() is -1 by then: the loop finds it by identity.
    async def main() -> None:
        a, b = socket.socketpair()
        with b:
            a.setblocking(False)
            loop.add_reader(a, lambda: None)
            a.close()
            assert loop.remove_reader(a) is True
            # No longer registered: its descriptor cannot be known.
            with pytest.raises(ValueError):
                loop.remove_reader(a)
        with socket.socket() as c:
            loop.add_writer(c, lambda: None)
        assert loop.remove_writer(c) is True

    run(main())


def test_add_writer_fires_while_writable(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = tcp_pair
    calls: list[int] = []

    async def main() -> None:
        loop.add_writer(a.fileno(), calls.append, 1)
        try:
            await wait_until(lambda: len(calls) >= 3)
        finally:
            assert loop.remove_writer(a.fileno()) is True
        n = len(calls)
        await spin()
        assert len(calls) == n

    run(main())


def test_add_writer_waits_for_space(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    calls: list[int] = []

    async def main() -> None:
        chunk = b"f" * 65536
        with pytest.raises(BlockingIOError):
            for _ in range(10_000):
                a.send(chunk)
        loop.add_writer(a.fileno(), lambda: calls.append(1))
        try:
            await spin()
            assert calls == []
            # Drain the peer until the writer can go on.
            for _ in range(10_000):
                if calls:
                    break
                try:
                    b.recv(1024 * 1024)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            assert calls
        finally:
            assert loop.remove_writer(a.fileno()) is True

    run(main())


def test_reader_and_writer_on_same_fd(
    loop: asyncio.AbstractEventLoop, run: Run[None], tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = tcp_pair
    reads: list[bytes] = []
    writes: list[int] = []

    async def main() -> None:
        loop.add_reader(b.fileno(), lambda: reads.append(b.recv(100)))
        loop.add_writer(b.fileno(), lambda: writes.append(1))
        try:
            await wait_until(lambda: len(writes) >= 2)
            assert reads == []
            assert loop.remove_writer(b.fileno()) is True
            # The reader survives the writer's removal.
            a.send(b"both")
            await wait_until(lambda: reads == [b"both"])
            n = len(writes)
            await spin()
            assert len(writes) == n
        finally:
            assert loop.remove_reader(b.fileno()) is True

    run(main())


@pytest.mark.parametrize("fd", [-1, "not a file", 1.5])
def test_add_reader_invalid_fd(loop: asyncio.AbstractEventLoop, run: Run[None], fd: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            loop.add_reader(fd, lambda: None)
        with pytest.raises(ValueError):
            loop.add_writer(fd, lambda: None)

    run(main())


def test_add_reader_regular_file(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    """epoll cannot watch regular files: the selector's PermissionError comes through."""

    async def main() -> None:
        with tempfile.TemporaryFile() as f:
            with pytest.raises(PermissionError):
                loop.add_reader(f.fileno(), lambda: None)
            with pytest.raises(PermissionError):
                loop.add_writer(f.fileno(), lambda: None)
            assert loop.remove_reader(f.fileno()) is False
            assert loop.remove_writer(f.fileno()) is False

    run(main())


def test_add_reader_closed_fd(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        r, w = os.pipe()
        os.close(w)
        os.close(r)
        with pytest.raises(OSError):
            loop.add_reader(r, lambda: None)
        assert loop.remove_reader(r) is False

    run(main())


def test_add_reader_pipe(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        r, w = os.pipe()
        got: list[bytes] = []
        try:
            os.set_blocking(r, False)
            loop.add_reader(r, lambda: got.append(os.read(r, 100)))
            await spin(0.02)
            assert got == []
            os.write(w, b"pipe data")
            await wait_until(lambda: got == [b"pipe data"])
            os.close(w)
            w = -1
            # EOF makes the read end readable: the callback sees b"".
            await wait_until(lambda: len(got) >= 2)
            assert got[1] == b""
        finally:
            loop.remove_reader(r)
            os.close(r)
            if w != -1:
                os.close(w)

    run(main())


def test_add_reader_on_closed_loop(
    loop: asyncio.AbstractEventLoop, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = tcp_pair
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_reader(a.fileno(), lambda: None)
    with pytest.raises(RuntimeError):
        loop.add_writer(a.fileno(), lambda: None)
    assert loop.remove_reader(a.fileno()) is False
    assert loop.remove_writer(a.fileno()) is False


class Tracked(asyncio.Protocol):
    def __init__(self, registry: list[Tracked]) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.lost = asyncio.get_running_loop().create_future()
        registry.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(None)


async def open_transport(kind: str, tmpdir: str, protos: list[Tracked]) -> asyncio.BaseTransport:
    """A client transport of ``kind``; every protocol created lands in ``protos``."""
    loop = asyncio.get_running_loop()
    if kind == "udp":
        tr, _ = await loop.create_datagram_endpoint(lambda: Tracked(protos), local_addr=(HOST, 0))
        return tr
    if kind == "tcp":
        server = await loop.create_server(lambda: Tracked(protos), HOST, 0)
        addr = server.sockets[0].getsockname()
        tr, _ = await loop.create_connection(lambda: Tracked(protos), *addr)
    else:
        path = os.path.join(tmpdir, "s")
        server = await loop.create_unix_server(lambda: Tracked(protos), path)
        tr, _ = await loop.create_unix_connection(lambda: Tracked(protos), path)
    await wait_until(lambda: len(protos) == 2 and all(p.transport for p in protos))
    # Not wait_closed(): from Python 3.12 on it waits for the connections to close too.
    server.close()
    return tr


@pytest.mark.parametrize("kind", ["tcp", "unix", "udp"])
@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_fd_used_by_transport(
    loop: asyncio.AbstractEventLoop, run: Run[None], kind: str, method: str
) -> None:
    async def main() -> None:
        protos: list[Tracked] = []
        with tempfile.TemporaryDirectory() as tmpdir:
            tr = await open_transport(kind, tmpdir, protos)
            try:
                fd = tr.get_extra_info("socket").fileno()
                args: tuple[Any, ...] = (fd, lambda: None) if method.startswith("add") else (fd,)
                with pytest.raises(RuntimeError, match="is used by transport"):
                    getattr(loop, method)(*args)
            finally:
                for p in protos:
                    assert p.transport is not None
                    p.transport.close()
                await asyncio.wait_for(asyncio.gather(*(p.lost for p in protos)), 5)

    run(main())


# -- argument checks ----------------------------------------------------------------

SOCK_OPS: dict[
    str, Callable[[asyncio.AbstractEventLoop, socket.socket], Coroutine[Any, Any, Any]]
] = {
    "sock_recv": lambda lp, s: lp.sock_recv(s, 1),
    "sock_recv_into": lambda lp, s: lp.sock_recv_into(s, bytearray(1)),
    "sock_recvfrom": lambda lp, s: lp.sock_recvfrom(s, 1),
    "sock_recvfrom_into": lambda lp, s: lp.sock_recvfrom_into(s, bytearray(1)),
    "sock_sendall": lambda lp, s: lp.sock_sendall(s, b"x"),
    "sock_sendto": lambda lp, s: lp.sock_sendto(s, b"x", (HOST, 9)),
    "sock_connect": lambda lp, s: lp.sock_connect(s, (HOST, 9)),
    "sock_accept": lambda lp, s: lp.sock_accept(s),
}


@pytest.mark.parametrize("op", list(SOCK_OPS))
def test_blocking_socket_rejected_in_debug(
    loop: asyncio.AbstractEventLoop, run: Run[None], op: str
) -> None:
    async def main() -> None:
        with socket.socket() as sock:
            assert sock.gettimeout() is None
            loop.set_debug(True)
            try:
                with pytest.raises(ValueError, match="non-blocking"):
                    await SOCK_OPS[op](loop, sock)
            finally:
                loop.set_debug(False)

    run(main())


@pytest.mark.parametrize("op", list(SOCK_OPS))
def test_ssl_socket_rejected(loop: asyncio.AbstractEventLoop, run: Run[None], op: str) -> None:
    async def main() -> None:
        ctx = ssl.create_default_context()
        with (
            socket.socket() as raw,
            ctx.wrap_socket(
                raw, server_hostname="localhost", do_handshake_on_connect=False
            ) as sock,
        ):
            sock.setblocking(False)
            with pytest.raises(TypeError, match="SSLSocket"):
                await SOCK_OPS[op](loop, sock)

    run(main())
