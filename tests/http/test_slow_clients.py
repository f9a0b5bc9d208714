"""Clients that hold the server's resources by being slow or idle: slowloris on the
request head (HTTP/1.1 and HTTP/2), bodies that trickle and then stall, responses
nobody reads (buffered and streamed, HTTP/1.1 and HTTP/2), and as many idle
connections as this process can open against a connection limit. Every loop is
bounded in count and time; after each case normal requests are served promptly."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator

import h2.connection
import h2.events
import httpx
import pytest

from data_bridge import App, Request, Response, StreamingResponse

from .conftest import (
    Running,
    connect,
    octet_stream,
    recv_all,
    run_native_server,
    status_of,
    streamed_length,
)

SHORT = 0.5
BIG = 64 * 1024 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def slow_app() -> App:
    app = App()

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.post("/count")
    async def count(request: Request) -> int:
        return await streamed_length(request)

    @app.get("/buffered")
    async def buffered() -> Response:
        return Response(b"x" * BIG, media_type="application/octet-stream")

    @app.get("/streamed")
    async def streamed() -> StreamingResponse:
        return octet_stream(BIG)

    return app


@pytest.fixture(scope="module")
def slow() -> Iterator[Running]:
    with run_native_server(
        slow_app(),
        header_timeout=SHORT,
        body_timeout=SHORT,
        keep_alive_timeout=SHORT,
        write_timeout=SHORT,
    ) as running:
        yield running


def served_promptly(running: Running) -> float:
    """Serves ``/ok`` over HTTP/1.1 and HTTP/2; returns the slower of the two."""
    start = time.monotonic()
    assert httpx.get(running.base_url + "/ok", timeout=5).json() == "ok"
    http1 = time.monotonic() - start
    start = time.monotonic()
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        assert client.get(running.base_url + "/ok").json() == "ok"
    return max(http1, time.monotonic() - start)


def trickle(
    running: Running, socks: list[socket.socket], data: bytes, every: float, limit: float
) -> list[float]:
    """Sends ``data`` one byte per ``every`` seconds on each of ``socks`` (for at most
    ``limit`` seconds), while checking that others are served; returns for each socket
    the seconds until the server closed it (``limit`` if it did not)."""
    closed_after = [limit] * len(socks)
    start = time.monotonic()
    for at in range(len(data)):
        now = time.monotonic() - start
        if now >= limit or all(c < limit for c in closed_after):
            break
        for i, sock in enumerate(socks):
            if closed_after[i] < limit:
                continue
            try:
                sock.sendall(data[at : at + 1])
                sock.setblocking(False)
                try:
                    gone = sock.recv(65536) == b""
                except BlockingIOError:
                    gone = False
                finally:
                    sock.setblocking(True)
            except (BrokenPipeError, ConnectionResetError):
                gone = True
            if gone:
                closed_after[i] = time.monotonic() - start
        if at % 5 == 0:
            assert served_promptly(running) < 1.0
        time.sleep(every)
    return closed_after


# A SETTINGS frame, then the head of a 256-byte HEADERS frame on stream 1.
H2_START = PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_HEADERS = b"\x00\x01\x00\x01\x05\x00\x00\x00\x01"


@pytest.mark.parametrize(
    ("sent", "trickled"),
    [
        pytest.param(b"", b"GET /ok HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 200, id="http1"),
        pytest.param(b"", PREFACE, id="http2-preface"),
        # Hyper has no HTTP/2 header timeout: the keep-alive timeout cuts it, since no
        # request has started.
        pytest.param(H2_START, H2_HEADERS + b"\x00" * 200, id="http2-headers-frame"),
    ],
)
def test_slowloris_heads_are_cut(slow: Running, sent: bytes, trickled: bytes) -> None:
    conns = [connect(slow.address) for _ in range(40)]
    try:
        for sock in conns:
            sock.sendall(sent)
        closed_after = trickle(slow, conns, trickled, every=0.1, limit=4 * SHORT + 1.5)
    finally:
        for sock in conns:
            sock.close()
    assert max(closed_after) < 4 * SHORT + 1.5, closed_after
    assert served_promptly(slow) < 1.0


def test_bodies_that_trickle_then_stall_get_408(slow: Running) -> None:
    conns = [connect(slow.address) for _ in range(30)]
    try:
        for sock in conns:
            sock.sendall(b"POST /count HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        # A byte every 100 ms is not a stall: nobody is cut while the bytes come.
        closed_after = trickle(slow, conns, b"y" * 10, every=0.1, limit=3.0)
        assert all(c >= 3.0 for c in closed_after), closed_after
        start = time.monotonic()
        answers = [recv_all(sock, timeout=5) for sock in conns]
        assert time.monotonic() - start < SHORT + 1.5
    finally:
        for sock in conns:
            sock.close()
    assert {status_of(a) for a in answers} == {408}
    assert served_promptly(slow) < 1.0


def test_an_http2_body_that_stalls_gets_408(slow: Running) -> None:
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    with connect(slow.address) as sock:
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "x"),
            (":path", "/count"),
        ]
        conn.send_headers(1, [*headers, ("content-length", "1000")])
        conn.send_data(1, b"y" * 10)
        sock.sendall(conn.data_to_send())
        status = None
        deadline = time.monotonic() + 5
        while status is None and time.monotonic() < deadline:
            sock.settimeout(deadline - time.monotonic())
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                # The answer, then a reset (NO_ERROR) for the body left unsent.
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                    break
                if isinstance(event, h2.events.StreamReset):
                    pytest.fail(f"reset without an answer: {event}")
            sock.sendall(conn.data_to_send())
    assert status == b"408"
    assert served_promptly(slow) < 1.0


@pytest.mark.parametrize("path", ["/buffered", "/streamed"])
def test_an_http1_reader_that_stops_is_dropped(slow: Running, path: str) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with contextlib.closing(sock):
        sock.connect(slow.address)
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        time.sleep(SHORT * 4)
        received = 0
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
    assert received < BIG // 2
    assert served_promptly(slow) < 1.0


@pytest.mark.parametrize(
    "path",
    [
        # A buffered response no longer counts as in flight once Hyper has it: the
        # keep-alive timeout closes the silent connection.
        "/buffered",
        "/streamed",
    ],
)
def test_an_http2_reader_that_grants_no_window_is_dropped(slow: Running, path: str) -> None:
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    with connect(slow.address) as sock:
        conn.send_headers(
            1,
            [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", path)],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        # Take what the initial window allows, acknowledge nothing, answer pings.
        deadline = time.monotonic() + 4 * SHORT + 2
        closed = False
        while time.monotonic() < deadline:
            sock.settimeout(deadline - time.monotonic())
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                closed = True
                break
            events = conn.receive_data(data)
            if any(isinstance(e, h2.events.StreamReset) and e.stream_id == 1 for e in events):
                closed = True
                break
            sock.sendall(conn.data_to_send())
    assert closed, "the stream was still held after the write timeout"
    assert served_promptly(slow) < 1.0


def raise_fd_limit(want: int) -> int:
    """Raises this process's soft descriptor limit towards ``want`` (up to the hard
    limit); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def test_idle_connections_past_the_limit_get_503() -> None:
    # Each connection costs two descriptors here (client and server end).
    soft = raise_fd_limit(2 * 2000 + 200)
    total = min(2000, (soft - 200) // 2)
    limit = total // 4
    assert total >= 200, f"descriptor limit {soft} too low for this test"
    with run_native_server(slow_app(), limit_connections=limit, header_timeout=30.0) as running:
        held: list[socket.socket] = []
        excess: list[socket.socket] = []
        try:
            for _ in range(limit):
                held.append(connect(running.address))
            # The server counts a connection when it accepts it: wait until all are.
            deadline = time.monotonic() + 10
            with connect(running.address) as probe:
                assert status_of(recv_all(probe, timeout=5)) == 503
            assert time.monotonic() < deadline
            for _ in range(total - limit - 1):
                excess.append(connect(running.address))
            answers = read_all_until_closed(excess, timeout=15)
            assert len(answers) == len(excess)
            assert all(status_of(a) == 503 and b"retry-after: 1" in a.lower() for a in answers)
            # A held idle connection is still served.
            held[0].sendall(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
            assert status_of(held[0].recv(65536)) == 200
        finally:
            for sock in held + excess:
                sock.close()
        # Once they are gone, new connections are served again.
        deadline = time.monotonic() + 5
        while True:
            try:
                assert served_promptly(running) < 1.0
                break
            except (AssertionError, httpx.HTTPError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def read_all_until_closed(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """What the server sent on each of ``socks`` before closing it."""
    got = {sock.fileno(): b"" for sock in socks}
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        open_count = len(socks)
        while open_count and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=deadline - time.monotonic()):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    got[sock.fileno()] += chunk
                else:
                    sel.unregister(sock)
                    open_count -= 1
        assert open_count == 0, f"{open_count} excess connections still open"
    return list(got.values())
