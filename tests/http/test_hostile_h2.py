"""Hostile HTTP/2 input over raw frames: rapid reset (CVE-2023-44487), CONTINUATION,
SETTINGS and PING floods, streams past the advertised limit, header blocks past the
header size limit and flow-control windows pushed past 2^31-1. Frames the ``h2``
library refuses to produce are built by hand. Each case is bounded in frames and
time, and must leave the server answering HTTP/1.1 and HTTP/2 requests promptly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import hpack
import httpx
import pytest

from data_bridge import App

from .conftest import Running, connect, run_native_server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0,
    0x1,
    0x3,
    0x4,
    0x6,
    0x7,
    0x8,
    0x9,
)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
# Error codes (RFC 9113 §7) and the one setting looked at.
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 1, 3, 7, 8, 11
MAX_CONCURRENT_STREAMS = 0x3
MAX_WINDOW = 2**31 - 1

HEADER_LIMIT = 8192
# How long a held handler would run if nothing cancelled it.
HOLD = 10.0


@dataclass
class Counts:
    """What the ``/hold`` handler saw, read from the test thread."""

    started: int = 0
    running: int = 0
    cancelled: int = 0


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes

    @property
    def error_code(self) -> int:
        """The error code of a RST_STREAM or GOAWAY frame."""
        at = 4 if self.kind == GOAWAY else 0
        return int.from_bytes(self.payload[at : at + 4], "big")


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + (stream & MAX_WINDOW).to_bytes(4, "big")
        + payload
    )


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


@dataclass
class RawH2:
    """A client connection driven frame by frame: the preface and an empty SETTINGS
    are sent on connect; the server's SETTINGS are recorded and acknowledged."""

    sock: socket.socket
    encoder: hpack.Encoder = field(default_factory=hpack.Encoder)
    settings: dict[int, int] = field(default_factory=dict)
    received: list[Frame] = field(default_factory=list)
    closed: bool = False
    _buf: bytes = b""

    @classmethod
    def open(cls, address: tuple[str, int]) -> RawH2:
        conn = cls(connect(address))
        conn.send(PREFACE + frame(SETTINGS, 0, 0))
        return conn

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Sends ``data``; False once the server has closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        return True

    def block(self, path: str, extra: list[tuple[str, str]] | None = None) -> bytes:
        """The HPACK block of a GET of ``path``."""
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", path)]
        return self.encoder.encode(headers + (extra or []))

    def request(self, stream: int, path: str) -> bytes:
        """A complete GET on ``stream`` in one HEADERS frame."""
        return frame(HEADERS, END_HEADERS | END_STREAM, stream, self.block(path))

    def read_until(self, done: Callable[[Frame], bool], timeout: float = 5.0) -> Frame | None:
        """Reads frames until one satisfies ``done`` (returned), the server closes the
        connection or ``timeout`` passes (both None)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            while len(self._buf) >= 9:
                length = int.from_bytes(self._buf[:3], "big")
                if len(self._buf) < 9 + length:
                    break
                head, payload = self._buf[:9], self._buf[9 : 9 + length]
                self._buf = self._buf[9 + length :]
                got = Frame(
                    head[3], head[4], int.from_bytes(head[5:9], "big") & MAX_WINDOW, payload
                )
                self.received.append(got)
                if got.kind == SETTINGS and not got.flags & ACK:
                    for at in range(0, len(payload) - 5, 6):
                        key = int.from_bytes(payload[at : at + 2], "big")
                        self.settings[key] = int.from_bytes(payload[at + 2 : at + 6], "big")
                    self.send(frame(SETTINGS, ACK, 0))
                if done(got):
                    return got
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self._buf += chunk
        return None

    def ended(self, timeout: float = 5.0) -> Frame | None:
        """Waits for a GOAWAY (returned) or the end of the connection (None); fails if
        neither comes in time."""
        goaway = self.read_until(lambda f: f.kind == GOAWAY, timeout)
        if goaway is None:
            assert self.closed, f"no GOAWAY and the connection still open after {timeout} s"
        return goaway

    def kinds(self, kind: int) -> list[Frame]:
        return [f for f in self.received if f.kind == kind]


@contextlib.contextmanager
def raw_h2(address: tuple[str, int]) -> Iterator[RawH2]:
    conn = RawH2.open(address)
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class Served:
    running: Running
    counts: Counts


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    counts = Counts()
    app = App()

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.get("/hold")
    async def hold() -> str:
        counts.started += 1
        counts.running += 1
        try:
            await asyncio.sleep(HOLD)
        except asyncio.CancelledError:
            counts.cancelled += 1
            raise
        finally:
            counts.running -= 1
        return "held"

    with run_native_server(app, max_header_bytes=HEADER_LIMIT, header_timeout=2.0) as running:
        yield Served(running, counts)


def assert_serving(running: Running) -> None:
    """A normal request over HTTP/1.1 and one over HTTP/2 are answered promptly."""
    start = time.monotonic()
    assert httpx.get(running.base_url + "/ok", timeout=5).json() == "ok"
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        response = client.get(running.base_url + "/ok")
    assert response.http_version == "HTTP/2"
    assert response.json() == "ok"
    assert time.monotonic() - start < 2.0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.02)


def test_the_server_advertises_a_stream_limit(served: Served) -> None:
    with raw_h2(served.running.address) as conn:
        conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)
        assert 0 < conn.settings.get(MAX_CONCURRENT_STREAMS, 0) <= 1000


def test_rapid_reset_is_bounded(served: Served) -> None:
    # CVE-2023-44487: open and reset streams as fast as the socket takes them.
    counts = served.counts
    started = counts.started
    streams = 5000
    with raw_h2(served.running.address) as conn:
        batch = bytearray()
        stream = 1
        for _ in range(streams):
            batch += conn.request(stream, "/hold") + frame(RST_STREAM, 0, stream, u32(CANCEL))
            stream += 2
            if len(batch) > 32768:
                if not conn.send(bytes(batch)):
                    break
                batch.clear()
        conn.send(bytes(batch))
        goaway = conn.ended()
    if goaway is not None:
        assert goaway.error_code == ENHANCE_YOUR_CALM
    # Few reset streams ever reach a handler, and none is left running.
    assert counts.started - started < 500
    wait_for(lambda: counts.running == 0, 2.0, "handlers of reset streams still running")
    assert_serving(served.running)


def test_resets_before_the_server_takes_the_streams_get_goaway(served: Served) -> None:
    # Hyper's HTTP/2 layer tolerates 20 streams reset before it accepted them, then
    # tells the client to calm down: the connection takes no new stream after that.
    with raw_h2(served.running.address) as conn:
        conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)
        conn.send(
            b"".join(
                conn.request(s, "/hold") + frame(RST_STREAM, 0, s, u32(CANCEL))
                for s in range(1, 81, 2)
            )
        )
        goaway = conn.read_until(lambda f: f.kind == GOAWAY)
        assert goaway is not None
        assert goaway.error_code == ENHANCE_YOUR_CALM
    wait_for(lambda: served.counts.running == 0, 2.0, "handlers of reset streams still running")
    assert_serving(served.running)


def test_a_reset_cancels_the_running_handler(served: Served) -> None:
    counts = served.counts
    cancelled = counts.cancelled
    streams = list(range(1, 41, 2))
    with raw_h2(served.running.address) as conn:
        conn.send(b"".join(conn.request(s, "/hold") for s in streams))
        wait_for(lambda: counts.running >= len(streams), 5.0, "handlers did not start")
        conn.send(b"".join(frame(RST_STREAM, 0, s, u32(CANCEL)) for s in streams))
        wait_for(lambda: counts.running == 0, 2.0, "handlers of reset streams still running")
        assert counts.cancelled - cancelled == len(streams)
        # The connection itself is still good.
        conn.send(conn.request(101, "/ok"))
        answer = conn.read_until(lambda f: f.stream == 101 and f.flags & END_STREAM != 0)
        assert answer is not None and answer.kind == DATA
    assert_serving(served.running)


def test_streams_past_the_advertised_limit_are_refused(served: Served) -> None:
    counts = served.counts
    with raw_h2(served.running.address) as conn:
        conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)
        limit = conn.settings[MAX_CONCURRENT_STREAMS]
        extra = 5
        ids = [1 + 2 * i for i in range(limit + extra)]
        conn.send(b"".join(conn.request(s, "/hold") for s in ids))
        refused: set[int] = set()

        def all_refused(f: Frame) -> bool:
            if f.kind == RST_STREAM and f.error_code == REFUSED_STREAM:
                refused.add(f.stream)
            return len(refused) >= extra

        assert conn.read_until(all_refused) is not None, f"refused only {sorted(refused)}"
        assert refused == set(ids[limit:])
        assert not conn.kinds(GOAWAY)
        wait_for(lambda: counts.running >= limit, 5.0, "the admitted streams did not start")
    # Closing the connection cancels the handlers of its streams.
    wait_for(lambda: counts.running == 0, 3.0, "handlers outlived their connection")
    assert_serving(served.running)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_continuation_flood_closes_the_connection(served: Served) -> None:
    grew_before = rss_bytes()
    # Literal header fields (never indexed), 1 KiB per frame.
    fields = b"\x10\x03x-a\x7f\x00" + b"v" * 127
    payload = fields * 8
    sent = 0
    with raw_h2(served.running.address) as conn:
        conn.send(frame(HEADERS, END_STREAM, 1, conn.block("/ok")))
        for _ in range(64):
            if not conn.send(frame(CONTINUATION, 0, 1, payload) * 256):
                break
            sent += 256 * len(payload)
        goaway = conn.ended()
    if goaway is not None:
        assert goaway.error_code in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM)
    # The server stopped reading long before the 16 MiB a client could send.
    assert sent < 8 * 1024 * 1024
    assert rss_bytes() - grew_before < 32 * 1024 * 1024
    assert_serving(served.running)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: frame(SETTINGS, 0, 0), id="settings-empty"),
        pytest.param(
            # INITIAL_WINDOW_SIZE and HEADER_TABLE_SIZE changes make each one work.
            lambda i: frame(SETTINGS, 0, 0, b"\x00\x04" + u32(i % 65536) + b"\x00\x01" + u32(i)),
            id="settings-changing",
        ),
        pytest.param(lambda i: frame(PING, 0, 0, i.to_bytes(8, "big")), id="ping"),
    ],
)
def test_control_frame_floods_are_answered_or_cut(
    served: Served, make: Callable[[int], bytes]
) -> None:
    total, per_batch = 20_000, 1000
    sent = 0
    with raw_h2(served.running.address) as conn:
        while sent < total and conn.send(b"".join(make(sent + i) for i in range(per_batch))):
            sent += per_batch
            # Take the acknowledgements as they come, or the server stops reading.
            conn.read_until(lambda f: False, timeout=0.01)

        def acks() -> int:
            return sum(1 for f in conn.received if f.kind in (SETTINGS, PING) and f.flags & ACK)

        if acks() <= sent:
            conn.read_until(lambda f: f.kind == GOAWAY or acks() > sent, timeout=5)
        # Every frame acknowledged (one SETTINGS ACK is for the server's own), or
        # the connection refused with a GOAWAY.
        assert acks() >= sent or conn.kinds(GOAWAY) or conn.closed
    assert_serving(served.running)


@pytest.mark.parametrize(
    ("frames", "stream", "code"),
    [
        pytest.param([u32(MAX_WINDOW)], 0, FLOW_CONTROL_ERROR, id="connection-overflow"),
        pytest.param([u32(MAX_WINDOW // 2 + 1)] * 2, 0, FLOW_CONTROL_ERROR, id="connection-sum"),
        pytest.param([u32(MAX_WINDOW)], 1, FLOW_CONTROL_ERROR, id="stream-overflow"),
        pytest.param([u32(0)], 0, PROTOCOL_ERROR, id="connection-zero"),
    ],
)
def test_window_update_overflow_is_an_error(
    served: Served, frames: list[bytes], stream: int, code: int
) -> None:
    with raw_h2(served.running.address) as conn:
        if stream:
            conn.send(conn.request(stream, "/hold"))
        conn.send(b"".join(frame(WINDOW_UPDATE, 0, stream, p) for p in frames))
        error = conn.read_until(lambda f: f.kind in (GOAWAY, RST_STREAM))
        assert error is not None, "the overflow was accepted"
        assert error.error_code == code
        assert error.kind == GOAWAY or error.stream == stream
    assert_serving(served.running)


@pytest.mark.parametrize("size", [HEADER_LIMIT + 1024, 200_000], ids=["past-limit", "huge"])
def test_a_header_block_past_the_limit_is_refused(served: Served, size: int) -> None:
    with raw_h2(served.running.address) as conn:
        block = conn.block("/ok", [("x-big", "v" * size)])
        chunks = [block[at : at + 16384] for at in range(0, len(block), 16384)]
        data = frame(HEADERS, END_STREAM | (END_HEADERS if len(chunks) == 1 else 0), 1, chunks[0])
        for i, chunk in enumerate(chunks[1:], 2):
            data += frame(CONTINUATION, END_HEADERS if i == len(chunks) else 0, 1, chunk)
        conn.send(data)
        answer = conn.read_until(
            lambda f: f.kind in (GOAWAY, RST_STREAM, HEADERS) and f.stream <= 1
        )
        if answer is None:
            assert conn.closed
        elif answer.kind == HEADERS:
            status = hpack.Decoder().decode(answer.payload)
            assert (":status", "431") in status
        else:
            assert answer.kind == GOAWAY or answer.error_code in (REFUSED_STREAM, PROTOCOL_ERROR)
    assert_serving(served.running)


def test_a_header_block_within_the_limit_is_served(served: Served) -> None:
    with raw_h2(served.running.address) as conn:
        conn.send(
            frame(HEADERS, END_HEADERS | END_STREAM, 1, conn.block("/ok", [("x-h", "v" * 4000)]))
        )
        answer = conn.read_until(lambda f: f.kind == HEADERS and f.stream == 1)
        assert answer is not None
        assert (":status", "200") in hpack.Decoder().decode(answer.payload)
