"""Streamed responses (``StreamingResponse``) and streamed request bodies
(``request.stream()``) against a real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from data_bridge import App, Request, StreamingResponse
from tests.http.conftest import Running, connect, recv_all, run_server_info, status_of

CHUNK = 64 * 1024


class Probe:
    """What the producers on the server saw, read by the tests."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.yields = 0
        self.threads: set[int] = set()
        self.finished = threading.Event()
        self.cancelled = threading.Event()
        self.first_chunk = threading.Event()
        self.gate: asyncio.Event | None = None


def parse_chunked(data: bytes) -> tuple[list[bytes], bool]:
    """Splits an HTTP/1.1 chunked body into its chunks; says whether it was terminated."""
    chunks: list[bytes] = []
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return chunks, rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            chunks.append(rest[:size])
            break
        chunks.append(rest[:size])
        data = rest[size + 2 :]
    return chunks, False


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_of(raw), headers, body


def build_app(probe: Probe) -> App:
    app = App(timeout=0.5)

    async def agen(count: int, size: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            probe.yields += 1
            probe.threads.add(threading.get_ident())
            yield b"x" * size

    def sgen(count: int, size: int) -> Iterator[bytes]:
        for _ in range(count):
            probe.yields += 1
            probe.threads.add(threading.get_ident())
            yield b"x" * size

    @app.get("/mixed")
    async def mixed() -> StreamingResponse:
        async def parts() -> AsyncIterator[str | bytes]:
            yield "héllo "
            await asyncio.sleep(0)
            yield b"w\x00rld"
            yield ""
            yield "!"

        return StreamingResponse(
            parts(), status_code=201, headers={"X-Kind": "mixed"}, media_type="text/plain"
        )

    @app.get("/async-gen")
    async def async_gen(count: int = 3, size: int = 4) -> StreamingResponse:
        return StreamingResponse(agen(count, size), media_type="application/octet-stream")

    @app.get("/sync-gen")
    async def sync_gen(count: int = 3, size: int = 4) -> StreamingResponse:
        return StreamingResponse(sgen(count, size), media_type="application/octet-stream")

    @app.get("/sync-handler-async-gen")
    def sync_handler_async_gen(count: int = 3, size: int = 4) -> StreamingResponse:
        return StreamingResponse(agen(count, size))

    @app.get("/sync-handler-list")
    def sync_handler_list() -> StreamingResponse:
        return StreamingResponse(["a", "b", "c"])

    @app.get("/gated")
    async def gated() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first"
            assert probe.gate is not None
            await probe.gate.wait()
            yield b"second"

        return StreamingResponse(parts())

    @app.get("/slow-after-first")
    async def slow_after_first() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            try:
                yield b"first"
                # Longer than the route timeout: the timeout covers the handler only.
                await asyncio.sleep(0.8)
                yield b"second"
                await asyncio.sleep(30)
                yield b"never"
            except asyncio.CancelledError:
                probe.cancelled.set()
                raise
            finally:
                probe.finished.set()

        return StreamingResponse(parts())

    @app.get("/endless-async")
    async def endless_async() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            try:
                while True:
                    probe.yields += 1
                    yield b"y" * CHUNK
            finally:
                probe.finished.set()

        return StreamingResponse(parts())

    @app.get("/endless-sync")
    async def endless_sync() -> StreamingResponse:
        def parts() -> Iterator[bytes]:
            try:
                while True:
                    probe.yields += 1
                    yield b"z" * CHUNK
            finally:
                probe.finished.set()

        return StreamingResponse(parts())

    @app.get("/broken")
    async def broken() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"partial"
            await asyncio.sleep(0.05)
            raise RuntimeError("the stream broke")

        return StreamingResponse(parts())

    @app.get("/broken-sync")
    async def broken_sync() -> StreamingResponse:
        def parts() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("the sync stream broke")

        return StreamingResponse(parts())

    @app.get("/loop-thread")
    async def loop_thread() -> int:
        return threading.get_ident()

    @app.post("/count")
    async def count(request: Request) -> dict[str, int]:
        total = chunks = 0
        async for chunk in request.stream():
            if chunks == 0:
                probe.first_chunk.set()
            total += len(chunk)
            chunks += 1
        return {"bytes": total, "chunks": chunks}

    @app.post("/body-after-stream")
    async def body_after_stream(request: Request) -> dict[str, Any]:
        total = sum([len(c) async for c in request.stream()])
        try:
            await request.body()
        except RuntimeError as exc:
            return {"bytes": total, "error": str(exc)}
        return {"bytes": total, "error": None}

    @app.post("/stream-after-body")
    async def stream_after_body(request: Request) -> dict[str, int]:
        body = await request.body()
        streamed = b"".join([c async for c in request.stream()])
        return {"body": len(body), "streamed": len(streamed), "same": int(body == streamed)}

    @app.post("/json")
    async def json_body(request: Request) -> Any:
        return await request.json()

    return app


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe()


@pytest.fixture(scope="module")
def running(probe: Probe) -> Iterator[Running]:
    with run_server_info(build_app(probe), max_body_size=16 * 1024 * 1024) as running:
        yield running


@pytest.fixture
def client(running: Running, probe: Probe) -> Iterator[httpx.Client]:
    probe.reset()
    with httpx.Client(base_url=running.base_url, timeout=10) as c:
        yield c


# -- responses ------------------------------------------------------------------------


def test_status_headers_media_type_and_mixed_chunks(client: httpx.Client) -> None:
    resp = client.get("/mixed")
    assert resp.status_code == 201
    assert resp.headers["x-kind"] == "mixed"
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in resp.headers
    assert resp.content == "héllo ".encode() + b"w\x00rld!"


@pytest.mark.parametrize(
    "path", ["/async-gen", "/sync-gen", "/sync-handler-async-gen"], ids=lambda p: p[1:]
)
def test_generators_stream_every_chunk(client: httpx.Client, probe: Probe, path: str) -> None:
    resp = client.get(path, params={"count": 50, "size": 1000})
    assert resp.status_code == 200
    assert resp.content == b"x" * 50_000
    assert probe.yields == 50


def test_sync_iterable_from_sync_handler(client: httpx.Client) -> None:
    resp = client.get("/sync-handler-list")
    assert resp.content == b"abc"


def test_sync_generator_runs_off_the_loop_thread(client: httpx.Client, probe: Probe) -> None:
    loop_thread = client.get("/loop-thread").json()
    assert client.get("/sync-gen", params={"count": 5}).status_code == 200
    assert probe.threads and loop_thread not in probe.threads
    probe.reset()
    assert client.get("/async-gen", params={"count": 5}).status_code == 200
    assert probe.threads == {loop_thread}


def test_http11_chunked_framing(running: Running) -> None:
    raw = b"GET /async-gen?count=3&size=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with connect(running.address) as sock:
        sock.sendall(raw)
        data = recv_all(sock)
    status, headers, body = split_response(data)
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    chunks, terminated = parse_chunked(body)
    assert terminated, body
    assert b"".join(chunks) == b"x" * 15


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_chunks_reach_the_client_before_the_generator_ends(
    running: Running, probe: Probe, http2: bool
) -> None:
    if http2:
        pytest.importorskip("h2")
    probe.reset()
    probe.gate = asyncio.Event()
    with (
        httpx.Client(base_url=running.base_url, http1=not http2, http2=http2, timeout=10) as c,
        c.stream("GET", "/gated") as resp,
    ):
        assert resp.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        pieces = resp.iter_raw()
        # The generator is parked until the gate opens, so this chunk was streamed.
        assert next(pieces) == b"first"
        running.loop.call_soon_threadsafe(probe.gate.set)
        assert b"".join(pieces) == b"second"


def test_route_timeout_covers_the_handler_not_the_stream(client: httpx.Client) -> None:
    with client.stream("GET", "/slow-after-first") as resp:
        pieces = resp.iter_raw()
        assert next(pieces) == b"first"
        # The route timeout (0.5 s) passes while the generator sleeps 0.8 s.
        assert next(pieces) == b"second"


# -- backpressure -----------------------------------------------------------------------


def _ahead(probe: Probe, received: int) -> float:
    return probe.yields - received / CHUNK


def _read_at_least(sock: socket.socket, count: int, deadline: float) -> int:
    got = 0
    while got < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        got += len(data)
    return got


def test_backpressure_holds_the_generator_to_the_client_over_unix_socket(
    probe: Probe, tmp_path: Any
) -> None:
    # Unix sockets keep a fixed send buffer (TCP grows it to megabytes on loopback), so
    # what runs ahead beyond it is the server's own buffering: a few chunks at most.
    total = 400
    path = str(tmp_path / "s.sock")
    probe.reset()
    with run_server_info(build_app(probe), uds=path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.closing(sock):
            sock.settimeout(10)
            sock.connect(path)
            kernel = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            # Kernel buffer, two queued chunks, one in Hyper's write buffer, one being made.
            allowed = kernel / CHUNK + 5
            sock.sendall(
                f"GET /async-gen?count={total}&size={CHUNK} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            time.sleep(0.3)
            idle = probe.yields
            assert 0 < idle <= allowed, f"{idle} chunks made for a client that reads nothing"
            received = 0
            deadline = time.monotonic() + 20
            for _ in range(8):
                received += _read_at_least(sock, 2 * 1024 * 1024, deadline)
                time.sleep(0.05)
                assert _ahead(probe, received) <= allowed, (probe.yields, received)
            assert probe.yields < total


def test_backpressure_with_a_slow_tcp_reader(running: Running, probe: Probe) -> None:
    total = 1024  # 64 MiB if nothing held the generator back
    probe.reset()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.closing(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(10)
        sock.connect(running.address)
        sock.sendall(
            f"GET /async-gen?count={total}&size={CHUNK} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        time.sleep(0.5)
        first = probe.yields
        time.sleep(0.3)
        # Only the kernel's buffers (a few MiB on loopback) are filled, then it stops.
        assert 0 < first < total // 4
        assert probe.yields == first, "the generator kept running for an idle client"
        received = _read_at_least(sock, 4 * 1024 * 1024, time.monotonic() + 20)
        time.sleep(0.05)
        assert probe.yields - first <= received / CHUNK + 5, (first, probe.yields, received)


# -- client disconnect and failures -----------------------------------------------------


def test_disconnect_cancels_an_async_generator_waiting_inside(
    running: Running, probe: Probe
) -> None:
    probe.reset()
    with connect(running.address) as sock:
        sock.sendall(b"GET /slow-after-first HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"first" not in data:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
    assert probe.finished.wait(3), "the generator's finally did not run"
    assert probe.cancelled.is_set()


@pytest.mark.parametrize("path", ["/endless-async", "/endless-sync"], ids=lambda p: p[1:])
def test_disconnect_closes_an_endless_generator(running: Running, probe: Probe, path: str) -> None:
    probe.reset()
    with connect(running.address) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        _read_at_least(sock, 4 * CHUNK, time.monotonic() + 5)
    assert probe.finished.wait(3), "the generator's finally did not run"
    made = probe.yields
    time.sleep(0.1)
    assert probe.yields == made


@pytest.mark.parametrize("path", ["/broken", "/broken-sync"], ids=lambda p: p[1:])
def test_exception_mid_stream_aborts_the_response(
    running: Running, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    with connect(running.address) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = recv_all(sock)
    status, headers, body = split_response(data)
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    chunks, terminated = parse_chunked(body)
    assert chunks == [b"partial"]
    assert not terminated, "an aborted stream must not look complete"
    assert "Exception in streaming response" in caplog.text
    assert "stream broke" in caplog.text
    with httpx.Client(base_url=running.base_url, timeout=10) as c:
        assert c.get("/async-gen").content == b"x" * 12


def test_exception_mid_stream_resets_the_http2_stream(running: Running) -> None:
    pytest.importorskip("h2")
    with httpx.Client(base_url=running.base_url, http1=False, http2=True, timeout=10) as c:
        with pytest.raises(httpx.HTTPError), c.stream("GET", "/broken") as resp:
            resp.read()
        # Other streams on the same connection keep working.
        assert c.get("/async-gen").content == b"x" * 12


# -- request bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "chunked"])
def test_large_body_is_streamed_to_the_handler(
    client: httpx.Client, probe: Probe, sized: bool
) -> None:
    size = 8 * 1024 * 1024
    piece = os.urandom(CHUNK)

    def body() -> Iterator[bytes]:
        for i in range(size // CHUNK):
            if i == 32:
                # The handler sees data before the upload is over.
                assert probe.first_chunk.wait(5), "the handler got nothing after 2 MiB"
            yield piece

    headers = {"content-length": str(size)} if sized else {}
    resp = client.post("/count", content=body(), headers=headers)
    assert resp.status_code == 200
    result = resp.json()
    assert result["bytes"] == size
    assert result["chunks"] > 1


def test_streamed_body_over_the_limit_is_413(probe: Probe) -> None:
    limit = 256 * 1024
    with run_server_info(build_app(probe), max_body_size=limit) as running:
        head = b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"%x\r\n%s\r\n" % (CHUNK, b"q" * CHUNK)
        with connect(running.address) as sock:
            sock.sendall(head)
            # One chunk past the limit, then wait: everything sent is read by the server.
            for _ in range(limit // CHUNK + 1):
                sock.sendall(piece)
            data = recv_all(sock)
        status, headers, body = split_response(data)
        assert status == 413
        assert headers["content-type"] == "application/json"
        chunks, _ = parse_chunked(body) if "transfer-encoding" in headers else ([body], True)
        assert b"".join(chunks) == b'{"detail":"Request body too large"}'
        with httpx.Client(base_url=running.base_url, timeout=10) as c:
            assert c.post("/count", content=b"a" * limit).json()["bytes"] == limit


@pytest.mark.parametrize("size", [10, 200 * 1024], ids=["buffered", "streamed"])
def test_body_after_stream_raises(client: httpx.Client, size: int) -> None:
    resp = client.post("/body-after-stream", content=b"b" * size)
    assert resp.json() == {"bytes": size, "error": "Stream consumed"}


@pytest.mark.parametrize("size", [10, 200 * 1024], ids=["buffered", "streamed"])
def test_stream_after_body_yields_the_kept_body(client: httpx.Client, size: int) -> None:
    resp = client.post("/stream-after-body", content=b"s" * size)
    assert resp.json() == {"body": size, "streamed": size, "same": 1}


def test_json_of_a_chunked_body(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"items": ['
        yield b",".join(b"%d" % i for i in range(20_000))
        yield b"]}"

    resp = client.post("/json", content=body())
    assert resp.json() == {"items": list(range(20_000))}
