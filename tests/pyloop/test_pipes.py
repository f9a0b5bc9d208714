"""Pipe transports: ``loop.connect_read_pipe``/``connect_write_pipe`` over ``os.pipe()``
(and a socket pair), EOF, a reader that goes away, flow control and
``pause_reading``/``resume_reading``. Every test runs on asyncio's loop and on PyLoop."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import IO, Any, TypeVar

import pytest

Run = Callable[[Coroutine[Any, Any, Any]], Any]
P = TypeVar("P", bound=asyncio.BaseProtocol)


class ReadProtocol(asyncio.Protocol):
    """Records everything a read pipe transport reports."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.transport: asyncio.ReadTransport | None = None
        self.got_data = asyncio.Event()
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport
        self.events.append("connection_made")

    def data_received(self, data: bytes) -> None:
        assert "eof_received" not in self.events, self.events
        if not self.events or self.events[-1] != "data_received":
            self.events.append("data_received")
        self.data += data
        self.got_data.set()

    def eof_received(self) -> bool | None:
        self.events.append("eof_received")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("connection_lost")
        self.lost.set_result(exc)


class WriteProtocol(asyncio.Protocol):
    """Records what a write pipe transport reports, including flow control."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[str] = []
        self.transport: asyncio.WriteTransport | None = None
        self.lost = loop.create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        self.events.append("connection_made")

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")
        self.resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("connection_lost")
        self.lost.set_result(exc)


class StreamWriteProtocol(asyncio.streams.FlowControlMixin):
    """A write-side protocol for ``asyncio.StreamWriter`` (``drain``, ``wait_closed``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self.closed


async def open_pipe_writer(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes]
) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(lambda: StreamWriteProtocol(loop), pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop)


@pytest.fixture
def pipe() -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """An ``os.pipe()`` as two unbuffered binary file objects, closed afterwards."""
    r, w = os.pipe()
    rfile = open(r, "rb", buffering=0)  # noqa: SIM115
    wfile = open(w, "wb", buffering=0)  # noqa: SIM115
    try:
        yield rfile, wfile
    finally:
        rfile.close()
        wfile.close()


async def connected(
    connect: Callable[..., Awaitable[tuple[Any, Any]]], proto: P, pipe: Any
) -> tuple[Any, P]:
    """``pipe`` connected to ``proto`` through ``connect`` (``loop.connect_read_pipe``
    or ``loop.connect_write_pipe``): the transport and the protocol."""
    transport, _ = await connect(lambda: proto, pipe)
    return transport, proto


# -- read pipes -------------------------------------------------------------------------


def test_read_pipe_data_then_eof(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> ReadProtocol:
        proto = ReadProtocol(loop)
        transport, returned = await loop.connect_read_pipe(lambda: proto, rfile)
        assert returned is proto
        assert proto.transport is transport
        assert transport.get_extra_info("pipe") is rfile
        assert transport.is_reading()
        os.write(wfile.fileno(), b"hello ")
        await asyncio.wait_for(proto.got_data.wait(), 5)
        os.write(wfile.fileno(), b"world")
        wfile.close()
        assert await asyncio.wait_for(proto.lost, 5) is None
        assert transport.is_closing()
        return proto

    proto = run(main())
    assert bytes(proto.data) == b"hello world"
    assert proto.events == ["connection_made", "data_received", "eof_received", "connection_lost"]
    assert rfile.closed  # the transport closes the pipe it was given


def test_read_pipe_close_before_eof(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, _ = pipe

    async def main() -> ReadProtocol:
        transport, proto = await connected(loop.connect_read_pipe, ReadProtocol(loop), rfile)
        transport.close()
        assert transport.is_closing()
        transport.close()  # idempotent
        assert await asyncio.wait_for(proto.lost, 5) is None
        return proto

    proto = run(main())
    assert proto.events == ["connection_made", "connection_lost"]
    assert rfile.closed


def test_read_pipe_large_stream(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe
    payload = os.urandom(4 * 1024 * 1024)

    def writer() -> None:
        with wfile:
            view = memoryview(payload)
            while view:
                n = os.write(wfile.fileno(), view[:65536])
                view = view[n:]

    async def main() -> ReadProtocol:
        proto = ReadProtocol(loop)
        await loop.connect_read_pipe(lambda: proto, rfile)
        await asyncio.gather(loop.run_in_executor(None, writer), asyncio.wait_for(proto.lost, 15))
        return proto

    proto = run(main())
    assert len(proto.data) == len(payload)
    assert bytes(proto.data) == payload


def test_read_pipe_stream_reader(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> list[bytes]:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rfile)
        os.write(wfile.fileno(), b"first line\nsecond line\nrest")
        wfile.close()
        return [
            await reader.readline(),
            await reader.readexactly(7),
            await reader.readuntil(b"\n"),
            await reader.read(),
            await reader.read(),
        ]

    assert run(main()) == [b"first line\n", b"second ", b"line\n", b"rest", b""]
    assert rfile.closed


def test_read_pipe_pause_resume(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> None:
        transport, proto = await connected(loop.connect_read_pipe, ReadProtocol(loop), rfile)
        os.write(wfile.fileno(), b"one")
        await asyncio.wait_for(proto.got_data.wait(), 5)
        assert bytes(proto.data) == b"one"

        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()  # idempotent
        proto.got_data.clear()
        os.write(wfile.fileno(), b"two")
        await asyncio.sleep(0.2)
        assert not proto.got_data.is_set()
        assert bytes(proto.data) == b"one"

        transport.resume_reading()
        assert transport.is_reading()
        transport.resume_reading()  # idempotent
        await asyncio.wait_for(proto.got_data.wait(), 5)
        assert bytes(proto.data) == b"onetwo"

        # EOF is not seen while paused either.
        transport.pause_reading()
        wfile.close()
        await asyncio.sleep(0.2)
        assert not proto.lost.done()
        transport.resume_reading()
        assert await asyncio.wait_for(proto.lost, 5) is None
        assert proto.events[-2:] == ["eof_received", "connection_lost"]

    run(main())


class PausingProtocol(ReadProtocol):
    """Pauses (flow control) or closes the transport already in ``connection_made``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, action: str) -> None:
        super().__init__(loop)
        self.action = action

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.ReadTransport)
        if self.action == "pause":
            transport.pause_reading()
        else:
            transport.close()


def test_read_pipe_paused_in_connection_made(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> tuple[bool, bytes, bytes]:
        proto = PausingProtocol(loop, "pause")
        os.write(wfile.fileno(), b"early")
        transport, _ = await loop.connect_read_pipe(lambda: proto, rfile)
        try:
            os.write(wfile.fileno(), b" late")
            await asyncio.sleep(0.2)
            reading, while_paused = transport.is_reading(), bytes(proto.data)
            transport.resume_reading()
            wfile.close()
            assert await asyncio.wait_for(proto.lost, 5) is None
        finally:
            transport.close()
        return reading, while_paused, bytes(proto.data)

    reading, while_paused, total = run(main())
    assert not reading
    assert while_paused == b"", "data delivered while the protocol paused reading"
    assert total == b"early late"


def test_read_pipe_closed_in_connection_made(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe
    errors: list[dict[str, Any]] = []

    async def main() -> PausingProtocol:
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        proto = PausingProtocol(loop, "close")
        os.write(wfile.fileno(), b"unread")
        await loop.connect_read_pipe(lambda: proto, rfile)
        assert await asyncio.wait_for(proto.lost, 5) is None
        await asyncio.sleep(0.1)
        return proto

    try:
        proto = run(main())
    finally:
        loop.set_exception_handler(None)
    assert proto.events == ["connection_made", "connection_lost"]
    assert bytes(proto.data) == b""
    assert rfile.closed
    assert errors == []


def test_read_pipe_close_while_paused(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> ReadProtocol:
        transport, proto = await connected(loop.connect_read_pipe, ReadProtocol(loop), rfile)
        await asyncio.sleep(0)
        transport.pause_reading()
        os.write(wfile.fileno(), b"never read")
        transport.close()
        assert not transport.is_reading()
        transport.resume_reading()  # no effect on a closing transport
        assert await asyncio.wait_for(proto.lost, 5) is None
        await asyncio.sleep(0.05)
        return proto

    proto = run(main())
    assert proto.events == ["connection_made", "connection_lost"]
    assert bytes(proto.data) == b""


def test_read_pipe_set_protocol(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> tuple[ReadProtocol, ReadProtocol]:
        first = ReadProtocol(loop)
        second = ReadProtocol(loop)
        transport, _ = await loop.connect_read_pipe(lambda: first, rfile)
        assert transport.get_protocol() is first
        os.write(wfile.fileno(), b"to first")
        await asyncio.wait_for(first.got_data.wait(), 5)
        transport.set_protocol(second)
        assert transport.get_protocol() is second
        os.write(wfile.fileno(), b"to second")
        wfile.close()
        assert await asyncio.wait_for(second.lost, 5) is None
        return first, second

    first, second = run(main())
    assert bytes(first.data) == b"to first"
    assert not first.lost.done()
    assert bytes(second.data) == b"to second"
    assert second.events == ["data_received", "eof_received", "connection_lost"]


def test_read_pipe_pty(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """A pty master is a character device; closing the slave ends it with EIO."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    mfile = open(master, "rb", buffering=0)  # noqa: SIM115

    async def main() -> tuple[ReadProtocol, Exception | None]:
        transport, proto = await connected(loop.connect_read_pipe, ReadProtocol(loop), mfile)
        assert transport.get_extra_info("pipe") is mfile
        os.write(slave, b"through the pty")
        for _ in range(100):
            if len(proto.data) >= 15:
                break
            await asyncio.sleep(0.02)
        os.close(slave)
        return proto, await asyncio.wait_for(proto.lost, 5)

    try:
        proto, exc = run(main())
    finally:
        mfile.close()
    assert bytes(proto.data) == b"through the pty"
    assert exc is None or (isinstance(exc, OSError) and exc.errno == errno.EIO)


def test_read_pipe_socketpair(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    a, b = socket.socketpair()

    async def main() -> bytes:
        proto = ReadProtocol(loop)
        with b:
            transport, _ = await loop.connect_read_pipe(lambda: proto, a)
            assert transport.get_extra_info("pipe") is a
            b.sendall(b"via socketpair")
        assert await asyncio.wait_for(proto.lost, 5) is None
        return bytes(proto.data)

    try:
        assert run(main()) == b"via socketpair"
    finally:
        a.close()


def test_read_pipe_rejects_regular_file(
    loop: asyncio.AbstractEventLoop, run: Run, tmp_path: Any
) -> None:
    path = tmp_path / "regular.txt"
    path.write_bytes(b"not a pipe")

    async def main() -> None:
        with open(path, "rb") as f, pytest.raises(ValueError):
            await loop.connect_read_pipe(lambda: ReadProtocol(loop), f)

    run(main())


# -- write pipes ------------------------------------------------------------------------


def test_write_pipe_basic(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> WriteProtocol:
        proto = WriteProtocol(loop)
        transport, returned = await loop.connect_write_pipe(lambda: proto, wfile)
        assert returned is proto
        assert proto.transport is transport
        assert transport.get_extra_info("pipe") is wfile
        assert transport.can_write_eof()
        transport.write(b"abc")
        transport.write(bytearray(b"def"))
        transport.write(memoryview(b"ghi"))
        transport.writelines([b"j", b"k", b"l"])
        transport.write(b"")  # no-op
        # asyncio asserts the type, PyLoop raises TypeError.
        with pytest.raises((TypeError, AssertionError)):
            transport.write("text")  # type: ignore[arg-type]
        transport.close()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 5) is None
        return proto

    proto = run(main())
    assert proto.events == ["connection_made", "connection_lost"]
    assert wfile.closed
    assert rfile.read() == b"abcdefghijkl"


def test_write_pipe_large_with_flow_control(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe
    payload = os.urandom(2 * 1024 * 1024)

    async def main() -> tuple[WriteProtocol, bytes]:
        wproto = WriteProtocol(loop)
        rproto = ReadProtocol(loop)
        wtransport, _ = await loop.connect_write_pipe(lambda: wproto, wfile)
        await loop.connect_read_pipe(lambda: rproto, rfile)
        wtransport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert wtransport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        for i in range(0, len(payload), 256 * 1024):
            wtransport.write(payload[i : i + 256 * 1024])
        # A pipe holds 64 KiB at most: the rest is buffered and writing is paused.
        assert wtransport.get_write_buffer_size() > 0
        assert "pause_writing" in wproto.events
        await asyncio.wait_for(wproto.resumed.wait(), 10)
        wtransport.close()
        assert await asyncio.wait_for(wproto.lost, 10) is None
        assert await asyncio.wait_for(rproto.lost, 10) is None
        return wproto, bytes(rproto.data)

    wproto, received = run(main())
    assert received == payload
    assert wproto.events[0] == "connection_made"
    assert wproto.events[-1] == "connection_lost"
    assert wproto.events.index("pause_writing") < wproto.events.index("resume_writing")


def test_write_pipe_stream_writer(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe
    lines = [f"line {i}\n".encode() * 50 for i in range(500)]

    async def main() -> bytes:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rfile)
        writer = await open_pipe_writer(loop, wfile)

        async def produce() -> None:
            for line in lines:
                writer.write(line)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        _, data = await asyncio.gather(produce(), reader.read())
        return data

    assert run(main()) == b"".join(lines)


def test_write_pipe_write_eof(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> None:
        rproto = ReadProtocol(loop)
        wproto = WriteProtocol(loop)
        await loop.connect_read_pipe(lambda: rproto, rfile)
        wtransport, _ = await loop.connect_write_pipe(lambda: wproto, wfile)
        wtransport.write(b"last words")
        wtransport.write_eof()
        assert wtransport.is_closing()
        assert await asyncio.wait_for(wproto.lost, 5) is None
        assert await asyncio.wait_for(rproto.lost, 5) is None
        assert bytes(rproto.data) == b"last words"
        assert rproto.events[-2:] == ["eof_received", "connection_lost"]

    run(main())


def test_write_pipe_reader_closed_while_idle(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> WriteProtocol:
        transport, proto = await connected(loop.connect_write_pipe, WriteProtocol(loop), wfile)
        await asyncio.sleep(0.05)
        rfile.close()
        # Nothing is written: the transport notices the reader went away on its own.
        exc = await asyncio.wait_for(proto.lost, 5)
        assert exc is None or isinstance(exc, BrokenPipeError)
        assert transport.is_closing()
        return proto

    proto = run(main())
    assert proto.events == ["connection_made", "connection_lost"]
    assert wfile.closed


def test_write_pipe_reader_closed_then_write(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> BaseException | None:
        transport, proto = await connected(loop.connect_write_pipe, WriteProtocol(loop), wfile)
        rfile.close()
        transport.write(b"into the void")
        exc = await asyncio.wait_for(proto.lost, 5)
        assert transport.is_closing()
        # Further writes are dropped silently.
        transport.write(b"more")
        return exc

    exc = run(main())
    assert exc is None or isinstance(exc, BrokenPipeError)


def test_write_pipe_reader_closed_with_buffered_data(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> BaseException | None:
        transport, proto = await connected(loop.connect_write_pipe, WriteProtocol(loop), wfile)
        transport.write(b"x" * (1024 * 1024))  # fills the pipe, the rest is buffered
        assert transport.get_write_buffer_size() > 0
        await asyncio.sleep(0.05)
        rfile.close()
        exc = await asyncio.wait_for(proto.lost, 5)
        assert transport.get_write_buffer_size() == 0
        return exc

    assert isinstance(run(main()), BrokenPipeError)


def test_write_pipe_stream_writer_drain_after_reader_closed(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> None:
        writer = await open_pipe_writer(loop, wfile)
        rfile.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                writer.write(b"y" * 65536)
                await asyncio.wait_for(writer.drain(), 5)
                await asyncio.sleep(0.01)
        writer.close()

    run(main())


def test_write_pipe_write_after_close_is_dropped(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> None:
        transport, proto = await connected(loop.connect_write_pipe, WriteProtocol(loop), wfile)
        transport.write(b"kept")
        transport.close()
        transport.write(b"dropped")
        await asyncio.wait_for(proto.lost, 5)

    run(main())
    assert rfile.read() == b"kept"


def test_write_pipe_abort(
    loop: asyncio.AbstractEventLoop, run: Run, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    rfile, wfile = pipe

    async def main() -> None:
        transport, proto = await connected(loop.connect_write_pipe, WriteProtocol(loop), wfile)
        transport.write(b"z" * (1024 * 1024))
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.is_closing()
        assert await asyncio.wait_for(proto.lost, 5) is None
        assert transport.get_write_buffer_size() == 0

    run(main())
    assert wfile.closed
    # Only what fit in the pipe before the abort ever reached the reader.
    data = rfile.read()
    assert 0 < len(data) < 1024 * 1024
    assert data == b"z" * len(data)


def test_write_pipe_rejects_regular_file(
    loop: asyncio.AbstractEventLoop, run: Run, tmp_path: Any
) -> None:
    async def main() -> None:
        with open(tmp_path / "out.bin", "wb") as f, pytest.raises(ValueError):
            await loop.connect_write_pipe(lambda: WriteProtocol(loop), f)

    run(main())


def test_pipe_round_trip_through_cat(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """Two pipes and an external ``cat`` between them, driven only by pipe transports."""
    import subprocess

    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    proc = subprocess.Popen(["cat"], stdin=to_child_r, stdout=from_child_w)
    os.close(to_child_r)
    os.close(from_child_w)
    payload = os.urandom(512 * 1024)

    async def main() -> bytes:
        reader = asyncio.StreamReader()
        with open(from_child_r, "rb", buffering=0) as rf, open(to_child_w, "wb", buffering=0) as wf:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
            writer = await open_pipe_writer(loop, wf)

            async def produce() -> None:
                writer.write(payload)
                await writer.drain()
                writer.close()
                await writer.wait_closed()

            _, data = await asyncio.gather(produce(), reader.read())
            return data

    try:
        assert run(main()) == payload
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
