"""TCP transports, protocols, streams and servers on both loops."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.pyloop.waiting import wait_until

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

HOST = "127.0.0.1"
MiB = 1024 * 1024


async def settle(n: int = 5) -> None:
    """Lets the loop run a few iterations (scheduled callbacks such as connection_lost)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Recorder(asyncio.Protocol):
    """Records every callback the transport makes, in order."""

    keep_open_on_eof = False

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.events: list[str] = []
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.chunk_types: set[type] = set()
        self.made: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self.pauses = 0
        self.resumes = 0
        self.paused: asyncio.Future[None] = loop.create_future()
        self.resumed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.events.append("made")
        self.transport = transport
        if not self.made.done():
            self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.chunk_types.add(type(data))
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(None)
        return self.keep_open_on_eof

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.pauses += 1
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self) -> None:
        self.resumes += 1
        if not self.resumed.done():
            self.resumed.set_result(None)


class Echo(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        self.transport.write(data)


class KeepOpen(Recorder):
    keep_open_on_eof = True


@dataclass
class Pair:
    server: asyncio.Server
    sproto: Recorder
    ctr: asyncio.Transport
    cproto: Recorder

    @property
    def st(self) -> asyncio.Transport:
        assert self.sproto.transport is not None
        return self.sproto.transport


@contextlib.asynccontextmanager
async def tcp_pair(
    server_proto: Callable[[], Recorder] = Recorder,
    client_proto: Callable[[], Recorder] = Recorder,
    sock: socket.socket | None = None,
) -> AsyncIterator[Pair]:
    """A server and one connected client; everything is closed on exit."""
    loop = asyncio.get_running_loop()
    sprotos: list[Recorder] = []

    def factory() -> Recorder:
        p = server_proto()
        sprotos.append(p)
        return p

    if sock is None:
        server = await loop.create_server(factory, HOST, 0)
    else:
        server = await loop.create_server(factory, sock=sock)
    try:
        port = server.sockets[0].getsockname()[1]
        ctr, cproto = await loop.create_connection(client_proto, HOST, port)
        try:
            await wait_until(lambda: bool(sprotos) and sprotos[0].transport is not None)
            yield Pair(server, sprotos[0], ctr, cproto)
        finally:
            transports = [ctr, *(p.transport for p in sprotos if p.transport is not None)]
            # Wait for whichever protocol each transport has now (tests may swap them).
            lost = [getattr(tr.get_protocol(), "lost", None) for tr in transports]
            for tr in transports:
                # (asyncio's abort() fails on a transport that already closed itself.)
                if not tr.is_closing():
                    tr.abort()
            pending = [f for f in lost if isinstance(f, asyncio.Future)]
            if pending:
                await asyncio.wait(pending, timeout=2)
            await settle()
    finally:
        server.close()
        await server.wait_closed()


async def received_exactly(
    proto: Recorder, expected: bytes, linger: float = 0.0, timeout: float = 5.0
) -> None:
    """Waits (up to ``timeout`` seconds) until ``proto`` has received as many bytes as
    ``expected``, then ``linger`` seconds more so that anything extra would show, and
    checks it got exactly those."""
    await wait_until(lambda: len(proto.data) >= len(expected), timeout)
    await asyncio.sleep(linger)
    assert bytes(proto.data) == expected


def refused_port() -> tuple[socket.socket, int]:
    """A port that is bound but not listening: connecting to it is refused."""
    s = socket.socket()
    s.bind((HOST, 0))
    return s, s.getsockname()[1]


# -- protocols ------------------------------------------------------------------


def test_protocol_callback_order(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=Echo) as p:
            assert p.cproto.events == ["made"]
            assert p.cproto.transport is p.ctr
            await asyncio.wait_for(p.sproto.made, 5)
            p.ctr.write(b"ping")
            await wait_until(lambda: bytes(p.cproto.data) == b"ping")
            assert bytes(p.sproto.data) == b"ping"
            p.ctr.write_eof()
            # The server's eof_received returns False: it closes, the client sees EOF.
            assert await asyncio.wait_for(p.sproto.lost, 5) is None
            assert await asyncio.wait_for(p.cproto.lost, 5) is None
            assert p.sproto.events == ["made", "data", "eof", "lost"]
            assert p.cproto.events == ["made", "data", "eof", "lost"]
            assert p.cproto.chunk_types == {bytes}
            assert p.sproto.chunk_types == {bytes}
            assert p.ctr.is_closing()

    run(main())


def test_connection_lost_on_reset(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            sock = p.ctr.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            p.ctr.close()
            exc = await asyncio.wait_for(p.sproto.lost, 5)
            assert isinstance(exc, ConnectionResetError)
            assert "eof" not in p.sproto.events
            assert p.sproto.events[-1] == "lost"

    run(main())


def test_transport_types_and_extra_info(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            for tr in (p.ctr, p.st):
                assert isinstance(tr, asyncio.Transport)
                assert isinstance(tr, asyncio.ReadTransport)
                assert isinstance(tr, asyncio.WriteTransport)
                assert not tr.is_closing()
                assert tr.get_extra_info("no-such-key") is None
                assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_INET
                assert sock.type == socket.SOCK_STREAM
                assert sock.fileno() >= 0
                assert sock.getsockname() == tr.get_extra_info("sockname")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert p.ctr.get_extra_info("peername") == p.st.get_extra_info("sockname")
            assert p.st.get_extra_info("peername") == p.ctr.get_extra_info("sockname")
            assert p.ctr.get_extra_info("peername") == p.server.sockets[0].getsockname()
            assert p.ctr.get_extra_info("sockname")[0] == HOST

    run(main())


def test_half_close_keeps_writing(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=KeepOpen) as p:
            assert p.ctr.can_write_eof()
            p.ctr.write(b"request")
            p.ctr.write_eof()
            assert not p.ctr.is_closing()
            with pytest.raises(RuntimeError):
                p.ctr.write(b"more")
            await asyncio.wait_for(p.sproto.eof, 5)
            assert bytes(p.sproto.data) == b"request"
            # eof_received returned True: the server may still answer.
            assert not p.st.is_closing()
            p.st.write(b"response after eof")
            await wait_until(lambda: bytes(p.cproto.data) == b"response after eof")
            p.st.close()
            assert await asyncio.wait_for(p.cproto.lost, 5) is None
            assert p.cproto.events == ["made", "data", "eof", "lost"]
            assert await asyncio.wait_for(p.sproto.lost, 5) is None

    run(main())


def fill_until_buffered(tr: asyncio.Transport, chunk: bytes, limit: int = 2000) -> int:
    """Writes ``chunk`` until the transport has to buffer; returns the bytes written."""
    total = 0
    for _ in range(limit):
        tr.write(chunk)
        total += len(chunk)
        if tr.get_write_buffer_size() > 0:
            return total
    raise AssertionError("the socket never filled up")


def test_close_flushes_buffer(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=2**30)
            chunk = os.urandom(64 * 1024)
            total = fill_until_buffered(p.ctr, chunk)
            total += len(chunk) * 16
            for _ in range(16):
                p.ctr.write(chunk)
            assert p.ctr.get_write_buffer_size() > 0
            p.ctr.close()
            assert p.ctr.is_closing()
            await asyncio.sleep(0.05)
            # connection_lost waits for the buffer to drain.
            assert not p.cproto.lost.done()
            p.st.resume_reading()
            await asyncio.wait_for(p.sproto.eof, 10)
            assert len(p.sproto.data) == total
            assert bytes(p.sproto.data[-len(chunk) :]) == chunk
            assert await asyncio.wait_for(p.cproto.lost, 5) is None
            assert p.ctr.get_write_buffer_size() == 0

    run(main())


def test_abort_drops_buffer(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=2**30)
            chunk = b"x" * (64 * 1024)
            total = fill_until_buffered(p.ctr, chunk)
            for _ in range(16):
                p.ctr.write(chunk)
            total += 16 * len(chunk)
            buffered = p.ctr.get_write_buffer_size()
            assert buffered > 0
            p.ctr.abort()
            assert p.ctr.is_closing()
            assert await asyncio.wait_for(p.cproto.lost, 5) is None
            assert p.cproto.events == ["made", "lost"]
            p.st.resume_reading()
            await asyncio.wait_for(p.sproto.lost, 10)
            assert len(p.sproto.data) <= total - buffered
            # Writing after abort is silently ignored.
            p.ctr.write(b"ignored")

    run(main())


# -- flow control ---------------------------------------------------------------


def test_pause_and_resume_writing(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=128 * 1024, low=32 * 1024)
            assert p.ctr.get_write_buffer_limits() == (32 * 1024, 128 * 1024)
            chunk = b"y" * (64 * 1024)
            written = 0
            for _ in range(2000):
                p.ctr.write(chunk)
                written += len(chunk)
                if p.cproto.pauses:
                    break
            assert p.cproto.pauses == 1
            assert p.cproto.resumes == 0
            assert p.ctr.get_write_buffer_size() > 128 * 1024
            # Writing more while paused buffers without pausing again.
            p.ctr.write(chunk)
            written += len(chunk)
            assert p.cproto.pauses == 1
            p.st.resume_reading()
            await asyncio.wait_for(p.cproto.resumed, 10)
            assert p.cproto.resumes == 1
            assert p.ctr.get_write_buffer_size() <= 32 * 1024
            await wait_until(lambda: len(p.sproto.data) == written, timeout=10)
            assert p.cproto.pauses == 1

    run(main())


def test_set_limits_below_buffer_pauses(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=2**30)
            fill_until_buffered(p.ctr, b"z" * (64 * 1024))
            assert p.cproto.pauses == 0
            p.ctr.set_write_buffer_limits(high=0)
            assert p.cproto.pauses == 1
            p.st.resume_reading()
            await asyncio.wait_for(p.cproto.resumed, 10)
            assert p.ctr.get_write_buffer_size() == 0

    run(main())


class QuotaReader(Recorder):
    """Stops reading once ``quota`` bytes have arrived."""

    quota = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        if self.quota and len(self.data) >= self.quota and self.transport.is_reading():
            self.transport.pause_reading()


class SizeAtResume(Recorder):
    size_at_resume = -1

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.size_at_resume = self.transport.get_write_buffer_size()
        super().resume_writing()


def test_resume_writing_at_low_water_mark(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    """resume_writing() comes as soon as the buffer drops to the low-water mark, not only
    once it is empty: here the reader stops again while data is still buffered."""
    high, low = 256 * 1024, 128 * 1024

    async def main() -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind((HOST, 0))
        async with tcp_pair(QuotaReader, SizeAtResume, sock=listener) as p:
            p.ctr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=high, low=low)
            chunk = b"q" * (16 * 1024)
            written = 0
            for _ in range(1000):
                p.ctr.write(chunk)
                written += len(chunk)
                if p.cproto.pauses:
                    break
            assert p.cproto.pauses == 1
            sproto: QuotaReader = p.sproto  # type: ignore[assignment]
            # Leave about 96 KiB unread: the client can drain below `low`, never to 0.
            sproto.quota = written - 96 * 1024
            p.st.resume_reading()
            await asyncio.wait_for(p.cproto.resumed, 3)
            cproto: SizeAtResume = p.cproto  # type: ignore[assignment]
            assert 0 <= cproto.size_at_resume <= low
            sproto.quota = 0
            p.st.resume_reading()
            await wait_until(lambda: len(p.sproto.data) == written, timeout=10)
            assert bytes(p.sproto.data[:16]) == b"q" * 16

    run(main())


def test_stream_drain_with_slow_reader(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    """StreamWriter.drain() blocks while the peer does not read and returns once it does."""

    async def main() -> None:
        gate = asyncio.Event()
        received = bytearray()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await gate.wait()
            while chunk := await reader.read(65536):
                received.extend(chunk)
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, HOST, 0, limit=65536)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.transport.set_write_buffer_limits(high=64 * 1024)
                chunk = b"d" * (256 * 1024)
                blocked = False
                total = 0
                for _ in range(200):
                    writer.write(chunk)
                    total += len(chunk)
                    drain = asyncio.ensure_future(writer.drain())
                    await asyncio.sleep(0.01)
                    if not drain.done():
                        blocked = True
                        break
                    await drain
                assert blocked
                gate.set()
                await asyncio.wait_for(drain, 10)
                writer.write_eof()
                await asyncio.wait_for(reader.read(), 10)
                assert len(received) == total
            finally:
                writer.close()
                await writer.wait_closed()

    run(main())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (16 * 1024, 64 * 1024)),
        ({"high": 1000}, (250, 1000)),
        ({"low": 100}, (100, 400)),
        ({"high": 10, "low": 5}, (5, 10)),
        ({"high": 0}, (0, 0)),
        ({"high": 7, "low": 7}, (7, 7)),
    ],
)
def test_write_buffer_limits(
    loop: asyncio.AbstractEventLoop,
    run: Run[None],
    kwargs: dict[str, int],
    expected: tuple[int, int],
) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            assert p.ctr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            assert p.ctr.get_write_buffer_size() == 0
            p.ctr.set_write_buffer_limits(**kwargs)
            assert p.ctr.get_write_buffer_limits() == expected

    run(main())


@pytest.mark.parametrize(
    "kwargs",
    [{"high": 1, "low": 2}, {"high": -1}, {"low": -1}, {"high": 10, "low": -1}],
)
def test_bad_write_buffer_limits(
    loop: asyncio.AbstractEventLoop, run: Run[None], kwargs: dict[str, int]
) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            with pytest.raises(ValueError):
                p.ctr.set_write_buffer_limits(**kwargs)
            assert p.ctr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)

    run(main())


def test_pause_and_resume_reading(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            assert p.st.is_reading()
            p.st.pause_reading()
            p.st.pause_reading()  # idempotent
            assert not p.st.is_reading()
            p.ctr.write(b"held back")
            await asyncio.sleep(0.1)
            assert p.sproto.data == b""
            p.st.resume_reading()
            p.st.resume_reading()
            assert p.st.is_reading()
            await wait_until(lambda: bytes(p.sproto.data) == b"held back")
            # EOF is not seen while paused either.
            p.st.pause_reading()
            p.ctr.write(b"+tail")
            p.ctr.write_eof()
            await asyncio.sleep(0.1)
            assert p.sproto.events == ["made", "data"]
            p.st.resume_reading()
            await asyncio.wait_for(p.sproto.eof, 5)
            assert bytes(p.sproto.data) == b"held back+tail"
            assert await asyncio.wait_for(p.sproto.lost, 5) is None
            assert not p.st.is_reading()

    run(main())


class PauseAtOnce(Recorder):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()


def test_pause_reading_in_connection_made(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=PauseAtOnce) as p:
            p.ctr.write(b"early")
            await asyncio.sleep(0.1)
            assert not p.st.is_reading()
            assert p.sproto.data == b""
            p.st.resume_reading()
            await wait_until(lambda: bytes(p.sproto.data) == b"early")

    run(main())


def test_resume_reading_after_eof_does_not_repeat_eof(
    loop: asyncio.AbstractEventLoop, run: Run[None]
) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=KeepOpen) as p:
            p.ctr.write_eof()
            await asyncio.wait_for(p.sproto.eof, 5)
            p.st.resume_reading()
            await asyncio.sleep(0.05)
            assert p.sproto.events == ["made", "eof"]
            assert not p.st.is_closing()
            p.st.write(b"bye")
            await wait_until(lambda: bytes(p.cproto.data) == b"bye")

    run(main())


def test_write_eof_after_pending_buffer(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=KeepOpen) as p:
            p.st.pause_reading()
            p.ctr.set_write_buffer_limits(high=2**30)
            chunk = os.urandom(64 * 1024)
            total = fill_until_buffered(p.ctr, chunk)
            p.ctr.write_eof()
            assert p.ctr.get_write_buffer_size() > 0
            await asyncio.sleep(0.02)
            assert not p.sproto.eof.done()
            p.st.resume_reading()
            await asyncio.wait_for(p.sproto.eof, 10)
            assert len(p.sproto.data) == total
            assert p.ctr.get_write_buffer_size() == 0
            # The read side of the client still works after its half-close.
            p.st.write(b"reply")
            await wait_until(lambda: bytes(p.cproto.data) == b"reply")

    run(main())


class Boom(Exception):
    pass


class FailingData(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise Boom("data")


class FailingEof(Recorder):
    def eof_received(self) -> bool:
        super().eof_received()
        raise Boom("eof")


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (FailingData, "Fatal error: protocol.data_received() call failed."),
        (FailingEof, "Fatal error: protocol.eof_received() call failed."),
    ],
)
def test_protocol_error_is_fatal(
    loop: asyncio.AbstractEventLoop, run: Run[None], proto: type[Recorder], message: str
) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main() -> None:
        async with tcp_pair(server_proto=proto) as p:
            p.ctr.write(b"x")
            p.ctr.write_eof()
            exc = await asyncio.wait_for(p.sproto.lost, 5)
            assert isinstance(exc, Boom)
            assert p.st.is_closing()
            await asyncio.wait_for(p.cproto.lost, 5)
            assert len(contexts) == 1
            ctx = contexts[0]
            assert ctx["message"] == message
            assert ctx["exception"] is exc
            assert ctx["transport"] is p.st
            assert ctx["protocol"] is p.sproto

    run(main())


# -- protocols: buffered, switching, writes -----------------------------------------


class BufferedRecorder(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.buf = bytearray(100)
        self.data = bytearray()
        self.hints: list[int] = []
        self.updates: list[int] = []
        self.transport: asyncio.Transport | None = None
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        self.hints.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        assert 0 < nbytes <= len(self.buf)
        self.updates.append(nbytes)
        self.data += self.buf[:nbytes]

    def eof_received(self) -> None:
        self.eof.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_buffered_protocol(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=BufferedRecorder) as p:  # type: ignore[arg-type]
            sp: BufferedRecorder = p.sproto  # type: ignore[assignment]
            payload = os.urandom(10_000)
            p.ctr.write(payload)
            p.ctr.write_eof()
            await asyncio.wait_for(sp.eof, 5)
            assert bytes(sp.data) == payload
            assert len(sp.updates) >= 100
            assert sum(sp.updates) == len(payload)
            assert len(sp.hints) >= len(sp.updates)
            assert set(sp.hints) == {-1}
            assert await asyncio.wait_for(sp.lost, 5) is None

    run(main())


def test_set_protocol(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            assert p.st.get_protocol() is p.sproto
            p.ctr.write(b"first")
            await wait_until(lambda: bytes(p.sproto.data) == b"first")
            second = Recorder()
            p.st.set_protocol(second)
            assert p.st.get_protocol() is second
            p.ctr.write(b"second")
            await wait_until(lambda: bytes(second.data) == b"second")
            assert bytes(p.sproto.data) == b"first"
            buffered = BufferedRecorder()
            p.st.set_protocol(buffered)
            assert p.st.get_protocol() is buffered
            p.ctr.write(b"third")
            await wait_until(lambda: bytes(buffered.data) == b"third")
            p.ctr.close()
            assert await asyncio.wait_for(buffered.lost, 5) is None
            assert buffered.eof.done()
            assert not second.lost.done()
            assert not p.sproto.lost.done()

    run(main())


@pytest.mark.parametrize("bad", ["text", 42, None, [b"x"], object()])
def test_write_rejects_non_bytes(loop: asyncio.AbstractEventLoop, run: Run[None], bad: Any) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            with pytest.raises(TypeError):
                p.ctr.write(bad)
            with pytest.raises(TypeError):
                p.ctr.writelines([b"ok", bad])
            assert not p.ctr.is_closing()
            p.ctr.write(b"still fine")
            # Nothing of a rejected writelines() call was sent.
            await received_exactly(p.sproto, b"still fine", 0.01)

    run(main())


def test_write_bytes_like_and_writelines(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.ctr.write(b"a")
            p.ctr.write(bytearray(b"b"))
            p.ctr.write(memoryview(b"xcx")[1:2])
            p.ctr.write(b"")
            p.ctr.writelines([b"d", bytearray(b"e"), memoryview(b"f")])
            p.ctr.writelines(iter([b"g", b"h"]))
            p.ctr.writelines([])
            await received_exactly(p.sproto, b"abcdefgh", 0.02)

    run(main())


def test_write_after_close_is_ignored(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            p.ctr.write(b"before")
            p.ctr.close()
            p.ctr.close()  # idempotent
            assert await asyncio.wait_for(p.cproto.lost, 5) is None
            p.ctr.write(b"after")
            await asyncio.wait_for(p.sproto.eof, 5)
            assert bytes(p.sproto.data) == b"before"
            assert p.cproto.events == ["made", "lost"]

    run(main())


# -- streams --------------------------------------------------------------------


async def stream_echo_server(**kwargs: Any) -> tuple[asyncio.Server, list[asyncio.Task[Any]]]:
    handlers: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            data = await reader.read()
            writer.write(data)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, HOST, 0, **kwargs)
    return server, handlers


async def stream_roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("size", [0, 1, 1024, MiB, 4 * MiB + 7])
def test_stream_echo(loop: asyncio.AbstractEventLoop, run: Run[None], size: int) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server()
        async with server:
            port = server.sockets[0].getsockname()[1]
            payload = os.urandom(size)
            assert await stream_roundtrip(port, payload) == payload
            await asyncio.wait_for(asyncio.gather(*handlers), 5)

    run(main())


def test_stream_lines(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async for line in reader:
                writer.write(line.upper())
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(HOST, port)
            for i in range(20):
                writer.write(f"line {i}\n".encode())
                assert await reader.readline() == f"LINE {i}\n".encode()
            writer.write(b"tail")
            writer.write_eof()
            assert await reader.readexactly(4) == b"TAIL"
            assert await reader.read() == b""
            assert reader.at_eof()
            writer.close()
            await writer.wait_closed()

    run(main())


def test_many_concurrent_connections(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server()
        async with server:
            port = server.sockets[0].getsockname()[1]
            payloads = [f"client {i} ".encode() * (i + 1) for i in range(50)]
            results = await asyncio.gather(*(stream_roundtrip(port, pl) for pl in payloads))
            assert results == payloads
            await asyncio.wait_for(asyncio.gather(*handlers), 5)
            assert len(handlers) == 50

    run(main())


# -- servers --------------------------------------------------------------------


def test_server_close_and_wait_closed(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server()
        assert server.is_serving()
        assert server.get_loop() is loop
        assert len(server.sockets) == 1
        port = server.sockets[0].getsockname()[1]
        assert await stream_roundtrip(port, b"x") == b"x"
        server.close()
        assert not server.is_serving()
        await asyncio.wait_for(server.wait_closed(), 5)
        assert server.sockets == ()
        with pytest.raises(OSError):
            await asyncio.wait_for(stream_roundtrip(port, b"y"), 5)
        await asyncio.wait_for(asyncio.gather(*handlers), 5)

    run(main())


def test_server_close_keeps_connections(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair(server_proto=Echo) as p:
            port = p.server.sockets[0].getsockname()[1]
            p.server.close()
            closed = asyncio.ensure_future(p.server.wait_closed())
            if sys.version_info >= (3, 12):
                # From 3.12 on wait_closed() also waits for the open connections.
                await asyncio.sleep(0.05)
                assert not closed.done()
            else:
                await asyncio.wait_for(closed, 5)
            assert not p.server.is_serving()
            # Closing the server stops accepting; existing connections carry on.
            p.ctr.write(b"still here")
            await wait_until(lambda: bytes(p.cproto.data) == b"still here")
            with pytest.raises(ConnectionRefusedError):
                await loop.create_connection(Recorder, HOST, port)
            assert p.sproto.transport is not None
            p.sproto.transport.close()
            await asyncio.wait_for(closed, 5)

    run(main())


def test_create_server_with_sock(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        sock = socket.socket()
        sock.bind((HOST, 0))
        addr = sock.getsockname()
        async with tcp_pair(server_proto=Echo, sock=sock) as p:
            assert p.server.sockets[0].getsockname() == addr
            assert p.ctr.get_extra_info("peername") == addr
            p.ctr.write(b"sock server")
            await wait_until(lambda: bytes(p.cproto.data) == b"sock server")
        assert sock.fileno() == -1  # the server closed its socket

    run(main())


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        served: list[tuple[Any, ...]] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(writer.get_extra_info("peername"))
            writer.write(await reader.read())
            writer.close()
            await writer.wait_closed()

        srv = await asyncio.start_server(handle, "::1", 0)
        async with srv:
            assert srv.sockets[0].family == socket.AF_INET6
            port = srv.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("::1", port)
            try:
                assert writer.get_extra_info("peername")[:2] == ("::1", port)
                writer.write(b"six")
                writer.write_eof()
                assert await reader.read() == b"six"
            finally:
                writer.close()
                await writer.wait_closed()
            await wait_until(lambda: bool(served))
            assert served[0][0] == "::1"

    run(main())


def test_serve_forever_cancelled(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server(start_serving=False)
        assert not server.is_serving()
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        port = server.sockets[0].getsockname()[1]
        assert await stream_roundtrip(port, b"hello") == b"hello"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert not server.is_serving()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)

    run(main())


def test_start_serving_later(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server(start_serving=False)
        async with server:
            assert not server.is_serving()
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(OSError):
                await asyncio.wait_for(stream_roundtrip(port, b"early"), 5)
            await server.start_serving()
            assert server.is_serving()
            await server.start_serving()  # a second call is a no-op
            assert await stream_roundtrip(port, b"late") == b"late"
        assert not server.is_serving()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)

    run(main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_reuse_port(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        first, h1 = await stream_echo_server(reuse_port=True)
        async with first:
            port = first.sockets[0].getsockname()[1]
            second = await asyncio.start_server(lambda r, w: w.close(), HOST, port, reuse_port=True)
            async with second:
                for srv in (first, second):
                    sock = srv.sockets[0]
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
                    assert sock.getsockname()[1] == port
        await asyncio.wait_for(asyncio.gather(*h1), 5)

    run(main())


def test_create_connection_with_sock(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        server, handlers = await stream_echo_server()
        async with server:
            addr = server.sockets[0].getsockname()
            sock = socket.create_connection(addr, timeout=5)
            tr, proto = await loop.create_connection(Recorder, sock=sock)
            try:
                assert sock.gettimeout() == 0
                assert tr.get_extra_info("peername") == addr
                tr.write(b"via sock")
                tr.write_eof()
                await asyncio.wait_for(proto.lost, 5)
                assert bytes(proto.data) == b"via sock"
            finally:
                tr.close()
            with socket.socket() as extra, pytest.raises(ValueError):
                await loop.create_connection(Recorder, HOST, addr[1], sock=extra)
            await asyncio.wait_for(asyncio.gather(*handlers), 5)

    run(main())


def test_create_connection_local_addr(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            port = p.server.sockets[0].getsockname()[1]
            tr, proto = await loop.create_connection(Recorder, HOST, port, local_addr=(HOST, 0))
            try:
                sockname = tr.get_extra_info("sockname")
                assert sockname[0] == HOST
                assert sockname[1] != 0
            finally:
                tr.close()
                await asyncio.wait_for(proto.lost, 5)

    run(main())


def test_connect_accepted_socket(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        with socket.create_server((HOST, 0)) as listener:
            client = socket.create_connection(listener.getsockname(), timeout=5)
            conn, _ = listener.accept()
        try:
            tr, proto = await loop.connect_accepted_socket(Echo, conn)
            try:
                assert isinstance(tr, asyncio.Transport)
                assert tr.get_extra_info("peername") == client.getsockname()
                client.sendall(b"accepted")
                client.shutdown(socket.SHUT_WR)
                await asyncio.wait_for(proto.lost, 5)
                assert bytes(proto.data) == b"accepted"
                client.settimeout(5)
                assert client.recv(100) == b"accepted"
            finally:
                tr.close()
        finally:
            client.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(ValueError):
            await loop.connect_accepted_socket(Recorder, udp)

    run(main())


def test_connection_refused(loop: asyncio.AbstractEventLoop, run: Run[None]) -> None:
    async def main() -> None:
        blocker, port = refused_port()
        with blocker:
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.create_connection(Recorder, HOST, port)
            assert info.value.errno == errno.ECONNREFUSED
            with pytest.raises(OSError):
                await asyncio.open_connection(HOST, port)

    run(main())


@pytest.mark.skipif(
    not hasattr(asyncio.Server, "close_clients"), reason="Server.close_clients needs Python 3.13"
)
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_server_close_clients(loop: asyncio.AbstractEventLoop, run: Run[None], method: str) -> None:
    async def main() -> None:
        async with tcp_pair() as p:
            getattr(p.server, method)()
            assert await asyncio.wait_for(p.sproto.lost, 5) is None
            await asyncio.wait_for(p.cproto.lost, 5)

    run(main())


# -- sendfile -------------------------------------------------------------------


@pytest.fixture
def payload_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(MiB + 12345)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def test_loop_sendfile(
    loop: asyncio.AbstractEventLoop, run: Run[None], payload_file: tuple[Path, bytes]
) -> None:
    path, data = payload_file

    async def main() -> None:
        async with tcp_pair() as p:
            with path.open("rb") as f:
                sent = await loop.sendfile(p.ctr, f)
                assert sent == len(data)
                assert f.tell() == len(data)
                sent = await loop.sendfile(p.ctr, f, offset=10, count=1000)
                assert sent == 1000
                assert f.tell() == 1010
            # The transport is usable afterwards, with its protocol restored.
            assert p.ctr.get_protocol() is p.cproto
            p.ctr.write(b"END")
            await received_exactly(p.sproto, data + data[10:1010] + b"END", timeout=10)

    run(main())


def test_loop_sendfile_closing_transport(
    loop: asyncio.AbstractEventLoop, run: Run[None], payload_file: tuple[Path, bytes]
) -> None:
    path, _ = payload_file

    async def main() -> None:
        async with tcp_pair() as p:
            p.ctr.close()
            with path.open("rb") as f, pytest.raises(RuntimeError):
                await loop.sendfile(p.ctr, f)

    run(main())


def test_sock_sendfile(
    loop: asyncio.AbstractEventLoop, run: Run[None], payload_file: tuple[Path, bytes]
) -> None:
    path, data = payload_file

    async def main() -> None:
        with socket.create_server((HOST, 0)) as listener:
            client = socket.create_connection(listener.getsockname(), timeout=5)
            conn, _ = listener.accept()
        with client, conn:
            client.setblocking(False)
            conn.setblocking(False)

            async def receive(n: int) -> bytes:
                got = bytearray()
                while len(got) < n:
                    chunk = await loop.sock_recv(conn, 256 * 1024)
                    assert chunk
                    got += chunk
                return bytes(got)

            with path.open("rb") as f:
                reader = asyncio.create_task(receive(len(data) + 500))
                assert await loop.sock_sendfile(client, f) == len(data)
                assert f.tell() == len(data)
                assert await loop.sock_sendfile(client, f, 100, 500) == 500
                assert f.tell() == 600
                got = await asyncio.wait_for(reader, 10)
            assert got == data + data[100:600]

    run(main())


def test_loop_sendfile_native_without_fallback(
    loop: asyncio.AbstractEventLoop, run: Run[None], payload_file: tuple[Path, bytes]
) -> None:
    """On Linux a plain TCP transport supports os.sendfile: fallback=False works."""
    path, data = payload_file

    async def main() -> None:
        async with tcp_pair() as p:
            with path.open("rb") as f:
                assert await loop.sendfile(p.ctr, f, fallback=False) == len(data)
            await received_exactly(p.sproto, data, timeout=10)

    run(main())


@contextlib.asynccontextmanager
async def raw_peer() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A client transport connected to a plain non-blocking socket the test drives."""
    loop = asyncio.get_running_loop()
    with socket.create_server((HOST, 0)) as listener:
        tr, _ = await loop.create_connection(Recorder, HOST, listener.getsockname()[1])
        peer, _ = listener.accept()
    peer.setblocking(False)
    try:
        yield tr, peer
    finally:
        if not tr.is_closing():
            tr.abort()
        peer.close()
        await settle()


async def receive_for(sock: socket.socket, limit: int | None = None, idle: float = 0.2) -> bytes:
    """Reads from ``sock`` until ``limit`` bytes or until nothing arrives for ``idle`` s."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    while limit is None or len(got) < limit:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 256 * 1024), idle)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_loop_sendfile_peer_closes_midway_leaves_file_position(
    loop: asyncio.AbstractEventLoop, run: Run[None], tmp_path: Path
) -> None:
    """The transfer fails when the peer goes away; the file position is where the
    data stopped, as after a partial read."""
    path = tmp_path / "big.bin"
    size = 32 * MiB
    path.write_bytes(b"A" * size)

    async def main() -> None:
        async with raw_peer() as (tr, peer):
            with path.open("rb") as f:
                sending = asyncio.ensure_future(loop.sendfile(tr, f))
                got = await receive_for(peer, limit=MiB)
                # Closing with unread data resets the connection.
                peer.close()
                with pytest.raises(OSError):
                    await asyncio.wait_for(sending, 10)
                assert len(got) <= f.tell() < size

    run(main())


def test_loop_sendfile_cancelled_stops_using_the_file(
    loop: asyncio.AbstractEventLoop, run: Run[None], tmp_path: Path
) -> None:
    """Cancelling a sendfile stops it: once the file is closed, a file opened next (which
    may get the same descriptor number) is never sent."""
    first = tmp_path / "first.bin"
    second = tmp_path / "second.bin"
    size = 32 * MiB
    first.write_bytes(b"A" * size)
    second.write_bytes(b"B" * size)

    async def main() -> None:
        async with raw_peer() as (tr, peer):
            f = first.open("rb")
            fd = f.fileno()
            sending = asyncio.ensure_future(loop.sendfile(tr, f))
            await asyncio.sleep(0.1)  # the socket buffers fill; the peer reads nothing
            assert not sending.done()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            f.close()
            with second.open("rb") as g:
                assert g.fileno() == fd
                got = await receive_for(peer, idle=0.3)
            assert got
            assert b"B" not in got

    run(main())
