"""Unix domain stream sockets and UDP datagram endpoints on both loops."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.pyloop.waiting import wait_until

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

HOST = "127.0.0.1"
MiB = 1024 * 1024


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A short socket path (tmp_path can exceed the 108-byte sun_path limit)."""
    with tempfile.TemporaryDirectory(prefix="pyl") as d:
        yield Path(d) / "s.sock"


class Recorder(asyncio.Protocol):
    echo = False

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.events: list[str] = []
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def eof_received(self) -> None:
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


class Echo(Recorder):
    echo = True


# -- Unix stream sockets -----------------------------------------------------------


def test_unix_protocol_echo(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        servers: list[Recorder] = []

        def factory() -> Recorder:
            servers.append(Echo())
            return servers[-1]

        server = await loop.create_unix_server(factory, sock_path)
        async with server:
            assert server.is_serving()
            assert sock_path.is_socket()
            sock = server.sockets[0]
            assert sock.family == socket.AF_UNIX
            assert sock.getsockname() == str(sock_path)
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            try:
                assert isinstance(tr, asyncio.Transport)
                assert tr.get_extra_info("peername") == str(sock_path)
                assert tr.get_extra_info("socket").family == socket.AF_UNIX
                assert tr.can_write_eof()
                tr.write(b"over unix")
                await wait_until(lambda: bytes(proto.data) == b"over unix")
                tr.write_eof()
                assert await asyncio.wait_for(proto.lost, 5) is None
                assert await asyncio.wait_for(servers[0].lost, 5) is None
                assert proto.events == ["made", "data", "eof", "lost"]
                assert servers[0].events == ["made", "data", "eof", "lost"]
                assert servers[0].transport is not None
                assert servers[0].transport.get_extra_info("sockname") == str(sock_path)
                assert servers[0].transport.get_extra_info("peername") in ("", None)
            finally:
                tr.close()

    run(main())


@pytest.mark.parametrize("size", [1, 1024, MiB])
def test_unix_stream_echo(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path, size: int
) -> None:
    async def main() -> None:
        done: list[bool] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            done.append(True)

        server = await asyncio.start_unix_server(handle, str(sock_path))
        async with server:
            payload = os.urandom(size)
            reader, writer = await asyncio.open_unix_connection(str(sock_path))
            try:
                writer.write(payload)
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 10) == payload
            finally:
                writer.close()
                await writer.wait_closed()
            await wait_until(lambda: bool(done))

    run(main())


def test_unix_many_clients(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(line[::-1])
            writer.close()
            await writer.wait_closed()

        async def client(i: int) -> bytes:
            reader, writer = await asyncio.open_unix_connection(str(sock_path))
            try:
                writer.write(f"{i:04d}\n".encode())
                return await reader.read()
            finally:
                writer.close()
                await writer.wait_closed()

        server = await asyncio.start_unix_server(handle, str(sock_path))
        async with server:
            results = await asyncio.gather(*(client(i) for i in range(30)))
            assert results == [f"{i:04d}\n".encode()[::-1] for i in range(30)]

    run(main())


def test_unix_server_replaces_stale_socket(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(str(sock_path))
        assert sock_path.is_socket()
        # Nobody listens on a stale socket file: connecting is refused.
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(Recorder, sock_path)
        server = await loop.create_unix_server(Echo, sock_path)
        async with server:
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            tr.write(b"fresh")
            await wait_until(lambda: bytes(proto.data) == b"fresh")
            tr.close()
            await asyncio.wait_for(proto.lost, 5)

    run(main())


def test_unix_with_sockets(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(sock_path))
        server = await loop.create_unix_server(Echo, sock=listener)
        async with server:
            assert server.sockets[0].getsockname() == str(sock_path)
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(sock_path))
            tr, proto = await loop.create_unix_connection(Recorder, sock=client)
            try:
                assert client.gettimeout() == 0
                tr.write(b"given socket")
                await wait_until(lambda: bytes(proto.data) == b"given socket")
            finally:
                tr.close()
                await asyncio.wait_for(proto.lost, 5)
            assert client.fileno() == -1

    run(main())


# Python 3.13 removes a Unix server's socket file on close (cleanup_socket=True);
# earlier versions leave it in place.
REMOVES_SOCKET_FILE = sys.version_info >= (3, 13)


@pytest.mark.parametrize("given", ["path", "sock"])
def test_unix_server_socket_file_on_close(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path, given: str
) -> None:
    async def main() -> None:
        if given == "path":
            server = await loop.create_unix_server(Echo, sock_path)
        else:
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(str(sock_path))
            server = await loop.create_unix_server(Echo, sock=listener)
        assert sock_path.is_socket()
        server.close()
        await server.wait_closed()
        assert sock_path.exists() is not REMOVES_SOCKET_FILE

    run(main())


@pytest.mark.skipif(not REMOVES_SOCKET_FILE, reason="cleanup_socket needs Python 3.13")
def test_unix_server_cleanup_socket_false_keeps_file(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        server = await loop.create_unix_server(Echo, sock_path, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        assert sock_path.is_socket()

    run(main())


@pytest.mark.skipif(not REMOVES_SOCKET_FILE, reason="cleanup_socket needs Python 3.13")
def test_unix_server_leaves_a_replaced_socket_file(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    """The file is removed only if it is still the one the server bound."""

    async def main() -> None:
        server = await loop.create_unix_server(Echo, sock_path)
        sock_path.unlink()
        with socket.socket(socket.AF_UNIX) as other:
            other.bind(str(sock_path))
            server.close()
            await server.wait_closed()
            assert sock_path.is_socket()

    run(main())


@pytest.mark.skipif(REMOVES_SOCKET_FILE, reason="Python 3.13 has cleanup_socket")
def test_unix_server_cleanup_socket_is_unknown_before_3_13(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="cleanup_socket"):
            await loop.create_unix_server(Echo, sock_path, cleanup_socket=True)  # type: ignore[call-arg]

    run(main())


def test_unix_connection_errors(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(Recorder, sock_path)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(Recorder)
        with socket.socket(socket.AF_UNIX) as s, pytest.raises(ValueError):
            await loop.create_unix_connection(Recorder, sock_path, sock=s)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, pytest.raises(ValueError):
            await loop.create_unix_connection(Recorder, sock=s)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(Recorder, sock_path, server_hostname="x")
        with pytest.raises(TypeError):
            await loop.create_unix_server(Recorder, sock_path, ssl=True)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await loop.create_unix_server(Recorder)

    run(main())


def test_unix_server_address_in_use(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        server = await loop.create_unix_server(Recorder, sock_path)
        async with server:
            # A live (non-stale) path with a regular file in the way cannot be bound.
            other = sock_path.with_name("plain")
            other.write_text("not a socket")
            with pytest.raises(OSError):
                await loop.create_unix_server(Recorder, other)
            assert other.read_text() == "not a socket"

    run(main())


# -- UDP ---------------------------------------------------------------------------


class Datagrams(asyncio.DatagramProtocol):
    echo = False

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []
        self.events: list[str] = []
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio 3.11's selector datagram transport is no asyncio.DatagramTransport.)
        assert isinstance(transport, asyncio.BaseTransport)
        self.transport = transport  # type: ignore[assignment]
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert type(data) is bytes
        self.received.append((data, addr))
        if self.echo:
            assert self.transport is not None
            self.transport.sendto(data.upper(), addr)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


class EchoDatagrams(Datagrams):
    echo = True


async def close_all(*protos: Datagrams) -> None:
    for p in protos:
        if p.transport is not None:
            p.transport.close()
    await asyncio.wait_for(asyncio.gather(*(p.lost for p in protos)), 5)


def test_udp_echo_connected_client(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        str_, sproto = await loop.create_datagram_endpoint(EchoDatagrams, local_addr=(HOST, 0))
        saddr = str_.get_extra_info("sockname")
        ctr, cproto = await loop.create_datagram_endpoint(Datagrams, remote_addr=saddr)
        try:
            assert ctr.get_extra_info("peername") == saddr
            caddr = ctr.get_extra_info("sockname")
            assert caddr[0] == HOST
            assert str_.get_extra_info("peername") is None
            sock = ctr.get_extra_info("socket")
            assert sock.type == socket.SOCK_DGRAM
            assert ctr.get_write_buffer_size() == 0
            for msg in (b"one", b"two", b"three"):
                ctr.sendto(msg)
            ctr.sendto(b"four", saddr)  # the connected address is allowed too
            await wait_until(lambda: len(cproto.received) == 4)
            assert cproto.received == [
                (b"ONE", saddr),
                (b"TWO", saddr),
                (b"THREE", saddr),
                (b"FOUR", saddr),
            ]
            assert [d for d, _ in sproto.received] == [b"one", b"two", b"three", b"four"]
            assert {a for _, a in sproto.received} == {caddr}
            with pytest.raises(ValueError):
                ctr.sendto(b"elsewhere", (HOST, 9))
        finally:
            await close_all(cproto, sproto)
        assert cproto.events == ["made", "lost"]
        assert cproto.errors == []

    run(main())


def test_udp_unconnected_sendto(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        a_tr, a = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        b_tr, b = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        try:
            a_addr = a_tr.get_extra_info("sockname")
            b_addr = b_tr.get_extra_info("sockname")
            a_tr.sendto(b"to b", b_addr)
            a_tr.sendto(bytearray(b"bytearray"), b_addr)
            a_tr.sendto(memoryview(b"memoryview"), b_addr)
            b_tr.sendto(b"to a", a_addr)
            await wait_until(lambda: len(b.received) == 3 and len(a.received) == 1)
            assert b.received == [
                (b"to b", a_addr),
                (b"bytearray", a_addr),
                (b"memoryview", a_addr),
            ]
            assert a.received == [(b"to a", b_addr)]
            for bad in ("text", 1, None):
                with pytest.raises(TypeError):
                    a_tr.sendto(bad, b_addr)  # type: ignore[arg-type]
        finally:
            await close_all(a, b)

    run(main())


@pytest.mark.parametrize("size", [1, 1400, 8192, 65000])
def test_udp_datagram_sizes(loop: asyncio.AbstractEventLoop, run: Run[None], size: int) -> None:
    async def main() -> None:
        s_tr, s = await loop.create_datagram_endpoint(EchoDatagrams, local_addr=(HOST, 0))
        c_tr, c = await loop.create_datagram_endpoint(
            Datagrams, remote_addr=s_tr.get_extra_info("sockname")
        )
        try:
            payload = bytes(range(97, 123)) * (size // 26) + b"a" * (size % 26)
            c_tr.sendto(payload)
            await wait_until(lambda: bool(c.received))
            assert c.received[0][0] == payload.upper()
            assert len(s.received[0][0]) == size
        finally:
            await close_all(s, c)

    run(main())


def test_udp_error_received(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
            gone.bind((HOST, 0))
            dead = gone.getsockname()
        tr, proto = await loop.create_datagram_endpoint(Datagrams, remote_addr=dead)
        try:
            # Nothing listens: the ICMP port-unreachable comes back as an error.
            for _ in range(50):
                tr.sendto(b"anyone?")
                await asyncio.sleep(0.01)
                if proto.errors:
                    break
            assert proto.errors
            assert isinstance(proto.errors[0], ConnectionRefusedError)
            assert not tr.is_closing()
            assert proto.events == ["made"]
        finally:
            await close_all(proto)

    run(main())


def test_udp_send_error_goes_to_error_received(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        tr, proto = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        try:
            tr.sendto(b"nowhere", (HOST, 0))  # port 0: EINVAL from sendto()
            assert len(proto.errors) == 1
            assert isinstance(proto.errors[0], OSError)
            assert not tr.is_closing()
            # The endpoint still works.
            tr.sendto(b"self", tr.get_extra_info("sockname"))
            await wait_until(lambda: bool(proto.received))
            assert proto.received[0][0] == b"self"
        finally:
            await close_all(proto)

    run(main())


def test_udp_set_protocol(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        tr, first = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        addr = tr.get_extra_info("sockname")
        second = Datagrams()
        second.transport = first.transport
        try:
            assert tr.get_protocol() is first
            tr.set_protocol(second)
            assert tr.get_protocol() is second
            tr.sendto(b"to second", addr)
            await wait_until(lambda: bool(second.received))
            assert first.received == []
        finally:
            await close_all(second)
        assert not first.lost.done()

    run(main())


def test_udp_close_and_abort(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        tr1, p1 = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        tr2, p2 = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        assert not tr1.is_closing()
        sock = tr1.get_extra_info("socket")
        tr1.close()
        assert tr1.is_closing()
        tr1.close()
        assert await asyncio.wait_for(p1.lost, 5) is None
        assert p1.events == ["made", "lost"]
        assert sock.fileno() == -1
        tr2.abort()
        assert tr2.is_closing()
        assert await asyncio.wait_for(p2.lost, 5) is None
        assert p2.events == ["made", "lost"]
        await asyncio.sleep(0.01)
        assert p1.events == ["made", "lost"]

    run(main())


def test_udp_closed_endpoint_receives_nothing(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        rx_tr, rx = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        addr = rx_tr.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"before", addr)
            await wait_until(lambda: len(rx.received) == 1)
            rx_tr.close()
            tx.sendto(b"after", addr)
            await asyncio.wait_for(rx.lost, 5)
            await asyncio.sleep(0.02)
            assert [d for d, _ in rx.received] == [b"before"]

    run(main())


def test_udp_endpoint_with_sock(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        addr = sock.getsockname()
        tr, proto = await loop.create_datagram_endpoint(EchoDatagrams, sock=sock)
        try:
            assert tr.get_extra_info("sockname") == addr
            assert sock.gettimeout() == 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.settimeout(5)
                peer.sendto(b"hi", addr)
                data, src = await loop.run_in_executor(None, peer.recvfrom, 100)
                assert (data, src) == (b"HI", addr)
        finally:
            await close_all(proto)

    run(main())


def test_udp_pause_reading(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        tr, proto = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        if not hasattr(tr, "pause_reading"):
            await close_all(proto)
            pytest.skip("this datagram transport has no pause_reading")
        addr = tr.get_extra_info("sockname")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                tr.pause_reading()  # type: ignore[attr-defined]
                assert not tr.is_reading()  # type: ignore[attr-defined]
                tx.sendto(b"held", addr)
                await asyncio.sleep(0.05)
                assert proto.received == []
                tr.resume_reading()  # type: ignore[attr-defined]
                assert tr.is_reading()  # type: ignore[attr-defined]
                await wait_until(lambda: len(proto.received) == 1)
                assert proto.received[0][0] == b"held"
        finally:
            await close_all(proto)

    run(main())


def test_unix_datagram_endpoint(
    loop: asyncio.AbstractEventLoop, run: Run[None], sock_path: Path
) -> None:
    async def main() -> None:
        server_path = str(sock_path)
        client_path = str(sock_path.with_name("c.sock"))
        _, s = await loop.create_datagram_endpoint(
            EchoDatagrams, local_addr=server_path, family=socket.AF_UNIX
        )
        c_tr, c = await loop.create_datagram_endpoint(
            Datagrams, local_addr=client_path, remote_addr=server_path, family=socket.AF_UNIX
        )
        try:
            c_tr.sendto(b"unix dgram")
            await wait_until(lambda: bool(c.received))
            assert c.received == [(b"UNIX DGRAM", server_path)]
            assert s.received == [(b"unix dgram", client_path)]
        finally:
            await close_all(s, c)

    run(main())


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_udp_ipv6(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        try:
            s_tr, s = await loop.create_datagram_endpoint(EchoDatagrams, local_addr=("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        c_tr, c = await loop.create_datagram_endpoint(
            Datagrams, remote_addr=s_tr.get_extra_info("sockname")[:2]
        )
        try:
            assert c_tr.get_extra_info("socket").family == socket.AF_INET6
            c_tr.sendto(b"six")
            await wait_until(lambda: bool(c.received))
            assert c.received[0][0] == b"SIX"
        finally:
            await close_all(s, c)

    run(main())
