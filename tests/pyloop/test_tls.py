"""TLS over PyLoop's transports: servers, clients, start_tls and handshake failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from tests.pyloop.test_transport_context import WHO, ContextRecorder, run_isolated
from tests.pyloop.waiting import wait_until

trustme = pytest.importorskip("trustme")

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

HOST = "127.0.0.1"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext
    wrong_client: ssl.SSLContext


@pytest.fixture(scope="module")
def certs() -> Certs:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", HOST).configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    wrong_client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    trustme.CA().configure_trust(wrong_client)
    return Certs(server, client, wrong_client)


class EchoServer:
    """A stream echo server that remembers what its handlers saw."""

    def __init__(self) -> None:
        self.extra: list[dict[str, Any]] = []
        self.tasks: list[asyncio.Task[Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        self.extra.append(
            {
                key: writer.get_extra_info(key)
                for key in ("ssl_object", "peercert", "cipher", "sslcontext", "peername")
            }
        )
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def finish(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 10)


async def roundtrip(
    port: int, ctx: ssl.SSLContext, payload: bytes, server_hostname: str = "localhost"
) -> bytes:
    reader, writer = await asyncio.open_connection(
        HOST, port, ssl=ctx, server_hostname=server_hostname
    )
    try:
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(payload):
                chunk = await reader.read(65536)
                assert chunk, "connection closed early"
                received.extend(chunk)

        reading = asyncio.ensure_future(read_all())
        writer.write(payload)
        await writer.drain()
        await asyncio.wait_for(reading, 10)
        return bytes(received)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("size", [1, 1024, MiB + 3])
def test_tls_echo(loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs, size: int) -> None:
    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            payload = os.urandom(size)
            assert await roundtrip(port, certs.client, payload) == payload
            await echo.finish()

    run(main())


def test_tls_extra_info(loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs) -> None:
    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=certs.client, server_hostname="localhost"
            )
            try:
                tr = writer.transport
                assert isinstance(tr, asyncio.Transport)
                sslobj = tr.get_extra_info("ssl_object")
                assert isinstance(sslobj, ssl.SSLObject)
                assert sslobj.version() in ("TLSv1.2", "TLSv1.3")
                assert sslobj.server_hostname == "localhost"
                peercert = tr.get_extra_info("peercert")
                assert ("DNS", "localhost") in peercert["subjectAltName"]
                cipher = tr.get_extra_info("cipher")
                assert isinstance(cipher, tuple)
                assert len(cipher) == 3
                assert cipher == sslobj.cipher()
                assert tr.get_extra_info("sslcontext") is certs.client
                assert tr.get_extra_info("peername") == (HOST, port)
                assert tr.get_extra_info("socket") is not None
                writer.write(b"hello")
                assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
                (extra,) = echo.extra
                assert isinstance(extra["ssl_object"], ssl.SSLObject)
                assert extra["ssl_object"].server_side
                assert extra["peercert"] is None  # no client certificate was asked for
                assert extra["sslcontext"] is certs.server
                assert extra["cipher"] == cipher
                assert extra["peername"] == tr.get_extra_info("sockname")
            finally:
                writer.close()
                await writer.wait_closed()
            await echo.finish()

    run(main())


@pytest.mark.parametrize(
    ("ctx_name", "hostname"),
    [("wrong_client", "localhost"), ("client", "not-the-server.example")],
)
def test_handshake_failure_and_server_keeps_serving(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs, ctx_name: str, hostname: str
) -> None:
    # An SSLError is an OSError: outside debug mode it is not reported to the handler.
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            for _ in range(3):
                with pytest.raises(ssl.SSLCertVerificationError):
                    await asyncio.wait_for(
                        asyncio.open_connection(
                            HOST, port, ssl=getattr(certs, ctx_name), server_hostname=hostname
                        ),
                        10,
                    )
            assert server.is_serving()
            # No handler ran for the failed handshakes; a good client still works.
            assert await roundtrip(port, certs.client, b"after failures") == b"after failures"
            assert len(echo.extra) == 1
            await echo.finish()
        assert contexts == []

    run(main())


def test_plain_client_to_tls_server(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(
            echo.handle, HOST, 0, ssl=certs.server, ssl_handshake_timeout=5
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(b"GET / HTTP/1.0\r\n\r\n")
                # The server gives up on the garbage handshake and drops us.
                await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            assert echo.extra == []
            assert await roundtrip(port, certs.client, b"real") == b"real"
            await echo.finish()
        assert contexts == []

    run(main())


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.data = bytearray()
        self.transports: list[asyncio.BaseTransport] = []
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def test_loop_start_tls_client(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    """A plain TCP connection upgraded with loop.start_tls() talks to a TLS server."""

    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            plain, proto = await loop.create_connection(Collect, HOST, port)
            try:
                tls = await asyncio.wait_for(
                    loop.start_tls(plain, proto, certs.client, server_hostname="localhost"), 10
                )
            except BaseException:
                plain.close()
                raise
            try:
                assert tls is not plain
                assert isinstance(tls, asyncio.Transport)
                assert isinstance(tls.get_extra_info("ssl_object"), ssl.SSLObject)
                tls.write(b"upgraded")
                await wait_until(lambda: bytes(proto.data) == b"upgraded")
                assert proto.transports == [plain]  # connection_made is not repeated
            finally:
                tls.close()
                await asyncio.wait_for(proto.lost, 10)
            await echo.finish()

    run(main())


def test_stream_starttls_both_sides(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    """A STARTTLS exchange: plain greeting, then both sides upgrade with start_tls."""

    async def main() -> None:
        results: list[Any] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                assert await reader.readline() == b"STARTTLS\n"
                writer.write(b"GO\n")
                await writer.drain()
                await writer.start_tls(certs.server)  # type: ignore[attr-defined]
                results.append(writer.get_extra_info("ssl_object"))
                line = await reader.readline()
                writer.write(line.upper())
                await writer.drain()
            except BaseException as exc:
                results.append(exc)
                raise
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()

        server = await asyncio.start_server(handle, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                assert writer.get_extra_info("ssl_object") is None
                writer.write(b"STARTTLS\n")
                assert await asyncio.wait_for(reader.readline(), 5) == b"GO\n"
                await asyncio.wait_for(
                    writer.start_tls(certs.client, server_hostname="localhost"),  # type: ignore[attr-defined]
                    10,
                )
                assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
                writer.write(b"secret\n")
                assert await asyncio.wait_for(reader.readline(), 5) == b"SECRET\n"
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
            await wait_until(lambda: bool(results))
            assert isinstance(results[0], ssl.SSLObject)

    if not hasattr(asyncio.StreamWriter, "start_tls"):
        pytest.skip("StreamWriter.start_tls needs Python 3.11")
    run(main())


def test_start_tls_rejects_bad_context(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            plain, proto = await loop.create_connection(Collect, HOST, port)
            try:
                with pytest.raises(TypeError):
                    await loop.start_tls(plain, proto, "not a context")  # type: ignore[arg-type]
                assert not plain.is_closing()
                plain.write(b"still plain")
                await wait_until(lambda: bytes(proto.data) == b"still plain")
            finally:
                plain.close()
                await asyncio.wait_for(proto.lost, 5)
            await echo.finish()

    run(main())


def test_tls_many_clients(loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs) -> None:
    async def main() -> None:
        echo = EchoServer()
        server = await asyncio.start_server(echo.handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            payloads = [f"client-{i}".encode() * 100 for i in range(10)]
            results = await asyncio.gather(*(roundtrip(port, certs.client, p) for p in payloads))
            assert results == payloads
            await echo.finish()

    run(main())


def test_tls_close_delivers_eof(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    async def main() -> None:
        got: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.read())  # until the client's close_notify
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

        server = await asyncio.start_server(handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection(
                HOST, port, ssl=certs.client, server_hostname="localhost"
            )
            assert not writer.can_write_eof()  # TLS has no half-close
            writer.write(b"last words")
            await writer.drain()
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 10)
            await wait_until(lambda: bool(got))
            assert got == [b"last words"]

    run(main())


def test_tls_shutdown_timeout(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    """A peer that never answers close_notify: the client gives up after
    ssl_shutdown_timeout and closes the connection with a TimeoutError."""
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main() -> None:
        release = asyncio.Event()
        handlers: list[asyncio.Task[Any]] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.append(task)
            writer.transport.pause_reading()  # the close_notify is never processed
            await release.wait()
            writer.transport.abort()

        server = await asyncio.start_server(handle, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection(
                HOST, port, ssl=certs.client, server_hostname="localhost", ssl_shutdown_timeout=0.3
            )
            await wait_until(lambda: bool(handlers))
            start = loop.time()
            writer.close()
            try:
                with pytest.raises(TimeoutError, match="SSL shutdown timed out"):
                    await asyncio.wait_for(writer.wait_closed(), 3)
                assert loop.time() - start < 2.5
                assert writer.transport.is_closing()
            finally:
                writer.transport.abort()
                release.set()
                await asyncio.wait_for(asyncio.gather(*handlers), 5)
                await asyncio.sleep(0.01)
        assert contexts == []

    run(main())


def test_tls_protocol_callbacks_see_creation_context(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs
) -> None:
    """Behind TLS, the application protocol's callbacks (connection_made included,
    which runs once the handshake completes) see the context the connection was made
    in: the server's for accepted connections, the caller's for create_connection."""
    servers: list[ContextRecorder] = []

    def factory() -> ContextRecorder:
        proto = ContextRecorder()
        servers.append(proto)
        return proto

    async def main() -> None:
        WHO.set("server")
        server = await loop.create_server(factory, HOST, 0, ssl=certs.server)
        port = server.sockets[0].getsockname()[1]
        WHO.set("client")
        transport, client = await loop.create_connection(
            ContextRecorder, HOST, port, ssl=certs.client, server_hostname="localhost"
        )
        await wait_until(lambda: bool(servers) and servers[0].transport is not None)
        for _ in range(3):
            transport.write(b"ping")
            await asyncio.sleep(0.01)
        await wait_until(lambda: len(servers[0].data) == 12)
        assert servers[0].transport is not None
        servers[0].transport.write(b"pong")
        await wait_until(lambda: client.data == b"pong")
        transport.close()
        await asyncio.wait_for(client.lost, 10)
        await asyncio.wait_for(servers[0].lost, 10)
        server.close()
        await server.wait_closed()
        assert ("connection_made", "client") in client.seen
        assert ("data_received", "client") in client.seen
        assert client.values() == {"client"}
        assert ("connection_made", "server") in servers[0].seen
        assert ("data_received", "server") in servers[0].seen
        assert servers[0].values() == {"server"}

    run_isolated(run, main())


@pytest.mark.parametrize("reader_kind", ["stream", "protocol"])
def test_tls_close_after_large_transfer_delivers_everything(
    loop: asyncio.AbstractEventLoop, run: Run[None], certs: Certs, reader_kind: str
) -> None:
    """The sender writes 4.5 MB and closes at once (its close_notify follows the data):
    the receiver gets every byte before end of file."""
    payload = os.urandom(4 * MiB + MiB // 2)

    async def main() -> None:
        async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

        server = await asyncio.start_server(send, HOST, 0, ssl=certs.server)
        async with server:
            port = server.sockets[0].getsockname()[1]
            if reader_kind == "stream":
                reader, writer = await asyncio.open_connection(
                    HOST, port, ssl=certs.client, server_hostname="localhost"
                )
                got = await reader.read()
                assert reader.at_eof()
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
            else:
                _, proto = await loop.create_connection(
                    Collect, HOST, port, ssl=certs.client, server_hostname="localhost"
                )
                await asyncio.wait_for(proto.lost, 10)
                got = bytes(proto.data)
            assert len(got) == len(payload)
            assert got == payload

    run(main())
