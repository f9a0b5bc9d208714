"""Real programs on PyLoop, the way users run them: an httpx client against a small
HTTP/1.1 server, uvicorn serving a Starlette app (in-process and in a separate process
started with ``data_bridge.pyloop.run``), and a streams echo server under load.

Every test takes the ``loop`` fixture, so each program also runs on asyncio's own loop
as the reference."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import data_bridge.pyloop

from .conftest import is_pyloop

Run = Callable[..., Any]


# -- (a) httpx against a tiny asyncio HTTP/1.1 server ------------------------------------


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    request_line = await reader.readline()
    if not request_line:
        return None
    method, target, _version = request_line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return method, target, headers, body


def _response(status: str, body: bytes, content_type: str = "text/plain") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive HTTP/1.1 server with a few routes, enough for a real client."""
    try:
        while (request := await _read_request(reader)) is not None:
            method, target, headers, body = request
            if target == "/hello":
                writer.write(_response("200 OK", b"hello world"))
            elif target == "/echo" and method == "POST":
                writer.write(_response("200 OK", body, headers.get("content-type", "text/plain")))
            elif target == "/json":
                payload = {
                    "loop": type(asyncio.get_running_loop()).__name__,
                    "items": list(range(5)),
                }
                writer.write(_response("200 OK", json.dumps(payload).encode(), "application/json"))
            elif target == "/chunked":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(10):
                    chunk = f"part-{i};".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    await asyncio.sleep(0.005)
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(_response("404 Not Found", b"no such page"))
            await writer.drain()
    except (ConnectionResetError, asyncio.IncompleteReadError, BrokenPipeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """``asyncio.start_server`` on a free loopback port; on exit, closes the server and
    waits for its connection handlers (Python 3.11's ``wait_closed`` does not)."""
    handlers: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            assert not pending, f"{len(pending)} connection handlers still running"


@contextlib.asynccontextmanager
async def tiny_http_server() -> AsyncIterator[str]:
    async with serving(_http_handler) as port:
        yield f"http://127.0.0.1:{port}"


def test_httpx_client_against_tiny_server(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        async with tiny_http_server() as base, httpx.AsyncClient(base_url=base) as client:
            r = await client.get("/hello")
            assert (r.status_code, r.text) == (200, "hello world")

            r = await client.get("/json")
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"loop": type(loop).__name__, "items": [0, 1, 2, 3, 4]}

            big = os.urandom(1024 * 1024)
            r = await client.post(
                "/echo", content=big, headers={"content-type": "application/octet-stream"}
            )
            assert r.status_code == 200
            assert r.content == big

            r = await client.get("/chunked")
            assert r.text == "".join(f"part-{i};" for i in range(10))

            async with client.stream("GET", "/chunked") as streamed:
                parts = [chunk async for chunk in streamed.aiter_bytes()]
            assert b"".join(parts) == b"".join(f"part-{i};".encode() for i in range(10))

            r = await client.get("/missing")
            assert (r.status_code, r.text) == (404, "no such page")

    run(main())


def test_httpx_concurrent_requests(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def main() -> None:
        limits = httpx.Limits(max_connections=10)
        async with (
            tiny_http_server() as base,
            httpx.AsyncClient(base_url=base, limits=limits) as client,
        ):

            async def one(i: int) -> bytes:
                body = f"request {i} ".encode() * (i + 1)
                r = await client.post("/echo", content=body)
                r.raise_for_status()
                assert r.content == body
                return r.content

            results = await asyncio.gather(*(one(i) for i in range(100)))
            assert len(results) == 100

    run(main())


# -- (b) uvicorn + Starlette ---------------------------------------------------------------


def make_app(events: list[str]) -> Starlette:
    """A small Starlette app with JSON, echo, streaming and error endpoints."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def info(request: Request) -> Response:
        running = asyncio.get_running_loop()
        return JSONResponse(
            {"loop": type(running).__name__, "pyloop": is_pyloop(running), "path": request.url.path}
        )

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"len": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def stream(request: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            for i in range(20):
                yield f"line {i}\n".encode()
                await asyncio.sleep(0.002)

        return StreamingResponse(lines(), media_type="text/plain")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.05)
        return PlainTextResponse("slow done")

    return Starlette(
        routes=[
            Route("/info", info),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/boom", boom),
            Route("/slow", slow),
        ],
        lifespan=lifespan,
    )


# For ``uvicorn tests.pyloop.test_programs:app`` on the command line.
app = make_app([])


async def exercise_app(base: str, expect_pyloop: bool) -> None:
    """Real requests against the Starlette app served at ``base``."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.get("/info")
        assert r.status_code == 200
        assert r.json() == {
            "loop": "Loop" if expect_pyloop else r.json()["loop"],
            "pyloop": expect_pyloop,
            "path": "/info",
        }

        body = os.urandom(512 * 1024)
        r = await client.post("/echo", content=body)
        assert r.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}

        async with client.stream("GET", "/stream") as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/plain")
            lines = [line async for line in streamed.aiter_lines()]
        assert lines == [f"line {i}" for i in range(20)]

        r = await client.get("/does-not-exist")
        assert r.status_code == 404

        r = await client.post("/info")
        assert r.status_code == 405

        results = await asyncio.gather(*(client.get("/slow") for _ in range(20)))
        assert [res.text for res in results] == ["slow done"] * 20

    # uvicorn drops the connection after an application error, so a keep-alive client
    # could race it: the failing request gets a client (and connection) of its own.
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.get("/boom")
        assert r.status_code == 500


def test_uvicorn_starlette_in_process(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    events: list[str] = []

    async def main() -> None:
        config = uvicorn.Config(
            make_app(events),
            host="127.0.0.1",
            port=0,
            loop="none",
            lifespan="on",
            log_level="critical",
            log_config=None,
        )
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve())
        try:
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started, "uvicorn did not start"
            port = server.servers[0].sockets[0].getsockname()[1]
            await exercise_app(f"http://127.0.0.1:{port}", expect_pyloop=is_pyloop(loop))
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    run(main())
    assert events == ["startup", "shutdown"]


SERVER_SCRIPT = textwrap.dedent(
    '''
    """A uvicorn + Starlette server the way a user would run it on PyLoop."""
    import asyncio
    import signal
    import sys

    import uvicorn

    import data_bridge.pyloop
    from tests.pyloop.test_programs import make_app

    kind, port = sys.argv[1], int(sys.argv[2])
    events = []
    terminated = []
    # Handle SIGTERM ourselves: uvicorn re-raises the signal after a graceful shutdown.
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))


    async def main():
        config = uvicorn.Config(
            make_app(events), host="127.0.0.1", port=port, loop="none",
            lifespan="on", log_level="warning",
        )
        await uvicorn.Server(config).serve()
        print("served", flush=True)


    try:
        if kind == "pyloop":
            data_bridge.pyloop.run(main())
        else:
            asyncio.run(main())
    except KeyboardInterrupt:
        print("keyboard-interrupt", flush=True)
    print("events", *events, flush=True)
    if terminated:
        print("sigterm", flush=True)
    '''
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for_port(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"port {port} never opened")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_uvicorn_server_process(
    loop: asyncio.AbstractEventLoop, run: Run, tmp_path: Path, sig: signal.Signals
) -> None:
    """uvicorn in its own process on the same kind of loop; stopped with a signal."""
    kind = "pyloop" if is_pyloop(loop) else "asyncio"
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }

    async def main() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "always::ResourceWarning",
            str(script),
            kind,
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(root),
        )
        try:
            await _wait_for_port(port, proc, 20)
            await exercise_app(f"http://127.0.0.1:{port}", expect_pyloop=kind == "pyloop")
            proc.send_signal(sig)
            out, err = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = run(main(), 40)
    assert code == 0, (out, err)
    expected = ["served"]
    if sig == signal.SIGINT:
        expected.append("keyboard-interrupt")
    expected.append("events startup shutdown")
    if sig == signal.SIGTERM:
        expected.append("sigterm")
    assert out.splitlines() == expected, err
    # The only traceback is the one uvicorn logs for the deliberate /boom error.
    assert err.count("Traceback") == err.count("RuntimeError: boom") == 1, err
    assert "ResourceWarning" not in err, err
    assert "Exception in callback" not in err, err


def test_uvicorn_command_line(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """``uvicorn module:app --loop data_bridge.pyloop:new_event_loop``, stopped with Ctrl-C."""
    loop_option = "data_bridge.pyloop:new_event_loop" if is_pyloop(loop) else "asyncio"
    port = _free_port()
    root = Path(__file__).resolve().parents[2]

    async def main() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-m",
            "uvicorn",
            "tests.pyloop.test_programs:app",
            "--loop",
            loop_option,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(root),
        )
        try:
            await _wait_for_port(port, proc, 20)
            await exercise_app(f"http://127.0.0.1:{port}", expect_pyloop=is_pyloop(loop))
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, err.decode()

    code, err = run(main(), 40)
    assert code == 0, err
    assert err.count("Traceback") == err.count("RuntimeError: boom") == 1, err
    assert "ResourceWarning" not in err, err


# -- (c) a streams echo server under load ---------------------------------------------------


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except ConnectionResetError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()


def test_echo_server_under_load(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    clients, rounds = 20, 200

    async def client(port: int, cid: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(rounds):
                # Sizes vary from a few bytes to ~16 KiB so some lines span many reads.
                size = (cid * 7919 + i * 104729) % 16384
                msg = f"{cid}:{i}:".encode() + bytes([97 + (cid + i) % 26]) * size + b"\n"
                writer.write(msg)
                await writer.drain()
                assert await reader.readline() == msg
            writer.write_eof()
            assert await reader.read() == b""
            return rounds
        finally:
            writer.close()
            await writer.wait_closed()

    async def main() -> list[int]:
        async with serving(_echo_handler) as port:
            return await asyncio.gather(*(client(port, c) for c in range(clients)))

    assert run(main(), 60) == [rounds] * clients


def test_echo_server_pipelined_bulk(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    """Each client writes all its messages before reading: buffers fill on both sides."""
    clients, rounds = 20, 200

    async def client(port: int, cid: int) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        messages = [f"{cid}-{i}-".encode() + b"x" * (i * 37 % 4000) + b"\n" for i in range(rounds)]
        try:

            async def send() -> None:
                for msg in messages:
                    writer.write(msg)
                await writer.drain()
                writer.write_eof()

            async def receive() -> bytes:
                return await reader.read()

            _, echoed = await asyncio.gather(send(), receive())
        finally:
            writer.close()
            await writer.wait_closed()
        assert echoed == b"".join(messages)
        return hashlib.sha256(echoed).hexdigest()

    async def main() -> list[str]:
        async with serving(_echo_handler) as port:
            return await asyncio.gather(*(client(port, c) for c in range(clients)))

    assert len(set(run(main(), 60))) == clients


def test_many_short_connections(loop: asyncio.AbstractEventLoop, run: Run) -> None:
    async def one(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"ping %d\n" % i)
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def main() -> list[bytes]:
        async with serving(_echo_handler) as port:
            results: list[bytes] = []
            for batch in range(10):
                results += await asyncio.gather(*(one(port, batch * 50 + i) for i in range(50)))
            return results

    assert run(main(), 60) == [b"ping %d\n" % i for i in range(500)]


def test_pyloop_run_entry_point_with_httpx() -> None:
    """``data_bridge.pyloop.run`` driving a whole client/server program, as in a script."""

    async def main() -> dict[str, Any]:
        assert isinstance(asyncio.get_running_loop(), data_bridge.pyloop.Loop)
        async with tiny_http_server() as base, httpx.AsyncClient(base_url=base) as client:
            r = await client.get("/json")
            r.raise_for_status()
            result: dict[str, Any] = r.json()
            return result

    assert data_bridge.pyloop.run(main()) == {"loop": "Loop", "items": [0, 1, 2, 3, 4]}
