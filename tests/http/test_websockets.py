"""WebSocket routes against the real server, with the ``websockets`` package's client:
messages, parameters and dependencies, the handshake (subprotocols, refusals), close
codes each way, limits and backpressure, and ``TestClient.websocket_connect``."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from data_bridge import (
    APIRouter,
    App,
    Cookie,
    Depends,
    Header,
    Query,
    WebSocket,
    WebSocketDisconnect,
)
from data_bridge.exceptions import WebSocketException
from data_bridge.testclient import TestClient
from data_bridge.websockets import WebSocketState
from tests.waiting import wait_until

from .conftest import run_server

TIMEOUT = 5.0


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


def close_code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None


CLEANUPS = {"count": 0}


async def tracked() -> Any:
    try:
        yield "dep"
    finally:
        CLEANUPS["count"] += 1


def make_app() -> tuple[App, dict[str, Any]]:
    seen: dict[str, Any] = {"finally": threading.Event()}
    app = App()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(message)

    @app.websocket("/echo-bytes")
    async def echo_bytes(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_bytes(await websocket.receive_bytes())

    @app.websocket("/echo-json")
    async def echo_json(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})

    @app.websocket("/dict")
    async def dict_form(websocket: WebSocket) -> None:
        assert await websocket.receive() == {"type": "websocket.connect"}
        await websocket.send({"type": "websocket.accept"})
        message = await websocket.receive()
        await websocket.send({"type": "websocket.send", "text": message["text"].upper()})
        await websocket.send({"type": "websocket.close", "code": 4000})

    @app.websocket("/rooms/{room}")
    async def room(
        websocket: WebSocket,
        room: int,
        dep: Annotated[str, Depends(tracked)],
        token: str | None = Query(None),
        x_client: str | None = Header(None),
        session: str | None = Cookie(None),
    ) -> None:
        await websocket.accept()
        await websocket.send_json(
            {
                "room": room,
                "token": token,
                "header": x_client,
                "cookie": session,
                "dep": dep,
                "path_params": websocket.path_params,
                "query": websocket.query_params.get("token"),
                "url": websocket.url,
            }
        )
        await websocket.close()

    @app.websocket("/protocols")
    async def protocols(websocket: WebSocket) -> None:
        offered = websocket.headers.get("sec-websocket-protocol", "")
        wanted = "json" if "json" in offered else None
        await websocket.accept(subprotocol=wanted, headers=[(b"x-extra", b"1")])
        await websocket.send_text(offered)

    @app.websocket("/close/{code}")
    async def close_with(websocket: WebSocket, code: int) -> None:
        await websocket.accept()
        await websocket.close(code, "bye")

    @app.websocket("/returns")
    async def returns(websocket: WebSocket) -> None:
        await websocket.accept()

    @app.websocket("/refuse")
    async def refuse(websocket: WebSocket) -> None:
        await websocket.close()

    @app.websocket("/refuse-exception")
    async def refuse_exception(websocket: WebSocket) -> None:
        raise WebSocketException(code=1008, reason="no")

    @app.websocket("/fails")
    async def fails(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("handler failed")

    @app.websocket("/fails-early")
    async def fails_early(websocket: WebSocket) -> None:
        raise RuntimeError("failed before accept")

    @app.websocket("/watch")
    async def watch(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen["code"] = exc.code
            seen["state"] = websocket.client_state
        finally:
            seen["finally"].set()

    @app.websocket("/flood")
    async def flood(websocket: WebSocket) -> None:
        await websocket.accept()
        chunk = b"x" * 65536
        seen["sent"] = 0
        try:
            for _ in range(4000):
                await websocket.send_bytes(chunk)
                seen["sent"] += 1
        except WebSocketDisconnect:
            seen["flood_ended"] = True

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    return app, seen


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, dict[str, Any]]]:
    app, seen = make_app()
    with run_server(app) as base:
        yield base, seen


def test_echo_text(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with connect(ws_url(base, "/echo"), open_timeout=TIMEOUT) as ws:
        for text in ["hi", "", "é" * 1000]:
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == text


def test_echo_bytes_and_json(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with connect(ws_url(base, "/echo-bytes"), open_timeout=TIMEOUT) as ws:
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01binary"
    with connect(ws_url(base, "/echo-json"), open_timeout=TIMEOUT) as ws:
        ws.send('{"a": [1, 2]}')
        assert ws.recv(timeout=TIMEOUT) == '{"got":{"a":[1,2]}}'


def test_message_dicts(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with connect(ws_url(base, "/dict"), open_timeout=TIMEOUT) as ws:
        ws.send("shout")
        assert ws.recv(timeout=TIMEOUT) == "SHOUT"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=TIMEOUT)
        assert close_code(info.value) == 4000


def test_parameters_and_dependencies(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    before = CLEANUPS["count"]
    headers = {"x-client": "c1", "cookie": "session=s1"}
    url = ws_url(base, "/rooms/7?token=t1")
    with connect(url, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        got = json.loads(ws.recv(timeout=TIMEOUT))
    assert got == {
        "room": 7,
        "token": "t1",
        "header": "c1",
        "cookie": "s1",
        "dep": "dep",
        "path_params": {"room": "7"},
        "query": "t1",
        "url": url,
    }
    assert wait_until(lambda: CLEANUPS["count"] == before + 1)


@pytest.mark.parametrize(
    "path", ["/rooms/abc", "/nowhere", "/plain", "/refuse", "/refuse-exception"]
)
def test_refused_handshakes_answer_403(served: tuple[str, dict[str, Any]], path: str) -> None:
    base, _ = served
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(base, path), open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


def test_plain_request_to_a_websocket_route_is_404(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    r = httpx.get(base + "/echo")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}
    assert httpx.get(base + "/plain").json() == {"ok": "yes"}


def test_subprotocol_and_extra_headers(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with connect(
        ws_url(base, "/protocols"), subprotocols=["chat", "json"], open_timeout=TIMEOUT
    ) as ws:
        assert ws.subprotocol == "json"
        assert ws.response.headers["x-extra"] == "1"
        assert ws.recv(timeout=TIMEOUT) == "chat, json"


@pytest.mark.parametrize(
    ("path", "code"), [("/close/1000", 1000), ("/close/4001", 4001), ("/returns", 1000)]
)
def test_server_close_codes(served: tuple[str, dict[str, Any]], path: str, code: int) -> None:
    base, _ = served
    with (
        connect(ws_url(base, path), open_timeout=TIMEOUT) as ws,
        pytest.raises(ConnectionClosed) as info,
    ):
        ws.recv(timeout=TIMEOUT)
    assert close_code(info.value) == code
    if path.startswith("/close"):
        assert info.value.rcvd is not None and info.value.rcvd.reason == "bye"


def test_handler_exception_closes_with_1011(
    served: tuple[str, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = served
    with connect(ws_url(base, "/fails"), open_timeout=TIMEOUT) as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=TIMEOUT)
    assert close_code(info.value) == 1011
    assert wait_until(lambda: "handler failed" in caplog.text)


def test_handler_exception_before_accept_answers_500(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(base, "/fails-early"), open_timeout=TIMEOUT)
    assert info.value.response.status_code == 500


@pytest.mark.parametrize("how", ["close", "drop"])
def test_client_disconnect_reaches_the_handler(
    served: tuple[str, dict[str, Any]], how: str
) -> None:
    base, seen = served
    seen["finally"].clear()
    with connect(ws_url(base, "/watch"), open_timeout=TIMEOUT) as ws:
        if how == "close":
            ws.close(1001)
        else:
            # Gone without a close frame.
            ws.socket.shutdown(socket.SHUT_RDWR)
        assert seen["finally"].wait(TIMEOUT)
    assert seen["code"] == (1001 if how == "close" else 1006)
    assert seen["state"] is WebSocketState.DISCONNECTED


def test_ping_is_answered(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    with connect(ws_url(base, "/echo"), open_timeout=TIMEOUT) as ws:
        assert ws.ping().wait(TIMEOUT)


def test_sends_wait_for_a_slow_client(served: tuple[str, dict[str, Any]]) -> None:
    base, seen = served
    seen.pop("flood_ended", None)
    with connect(ws_url(base, "/flood"), open_timeout=TIMEOUT) as ws:
        assert wait_until(lambda: seen.get("sent", 0) > 20)

        def settled() -> bool:
            before = seen["sent"]
            time.sleep(0.3)
            return bool(seen["sent"] == before)

        assert wait_until(settled, timeout=10.0)
        stalled = seen["sent"]
        # 4000 messages of 64 KiB are 250 MiB: only socket buffers and the bounded
        # queues' worth may be ahead of a client that reads nothing.
        assert stalled < 1000
        for _ in range(50):
            assert len(ws.recv(timeout=TIMEOUT)) == 65536
        assert wait_until(lambda: seen["sent"] > stalled)
        ws.socket.shutdown(socket.SHUT_RDWR)
    assert wait_until(lambda: seen.get("flood_ended") is True)


def test_many_concurrent_connections(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    count = 50
    opened = threading.Barrier(count, timeout=TIMEOUT * 2)

    def session(i: int) -> list[str]:
        with connect(ws_url(base, "/echo"), open_timeout=TIMEOUT * 2) as ws:
            opened.wait()
            out = []
            for j in range(5):
                ws.send(f"{i}-{j}")
                out.append(ws.recv(timeout=TIMEOUT * 2))
            return out

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(session, range(count)))
    assert results == [[f"{i}-{j}" for j in range(5)] for i in range(count)]


def test_message_too_large_closes_with_1009() -> None:
    app, _ = make_app()
    with (
        run_server(app, max_body_size=1024) as base,
        connect(ws_url(base, "/echo"), open_timeout=TIMEOUT) as ws,
    ):
        ws.send("x" * 1024)
        assert len(ws.recv(timeout=TIMEOUT)) == 1024
        ws.send("x" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=TIMEOUT)
    assert close_code(info.value) == 1009


def test_router_websocket_with_prefix_and_dependency() -> None:
    calls: list[str] = []

    def audit(websocket: WebSocket) -> None:
        calls.append(websocket.path)

    router = APIRouter(prefix="/chat", dependencies=[Depends(audit)])

    @router.websocket("/{name}")
    async def chat(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {name}")

    app = App()
    app.include_router(router, prefix="/v1")
    assert app.url_path_for("chat", name="x") == "/v1/chat/x"
    with run_server(app) as base, connect(ws_url(base, "/v1/chat/ann"), open_timeout=TIMEOUT) as ws:
        assert ws.recv(timeout=TIMEOUT) == "hello ann"
    assert calls == ["/v1/chat/ann"]


def test_websocket_handlers_must_be_async() -> None:
    app = App()

    @app.websocket("/sync")
    def sync_handler(websocket: WebSocket) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        app.route_table()


# -- the test client ---------------------------------------------------------------------


def test_testclient_websocket_session() -> None:
    app, _ = make_app()
    with TestClient(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "hello"
            ws.send_json({"a": 1})
            assert ws.receive_json() == {"a": 1}
        with client.websocket_connect("/echo-bytes") as ws:
            ws.send_bytes(b"raw")
            assert ws.receive_bytes() == b"raw"
        with client.websocket_connect("/rooms/3?token=z") as ws:
            got = ws.receive_json()
            assert (got["room"], got["token"]) == (3, "z")
            assert got["url"] == "ws://testserver/rooms/3?token=z"
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1000
        with client.websocket_connect("/protocols", subprotocols=["json"]) as ws:
            assert ws.accepted_subprotocol == "json"
        with pytest.raises(WebSocketDisconnect) as refused:
            client.websocket_connect("/refuse")
        assert refused.value.code == 1008


def test_testclient_raises_the_handler_error() -> None:
    app, _ = make_app()
    with (
        TestClient(app) as client,
        pytest.raises(RuntimeError, match="handler failed"),
        client.websocket_connect("/fails") as ws,
    ):
        ws.send_text("go")
        ws.receive_text()
