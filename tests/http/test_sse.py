"""Server-sent events (``data_bridge.sse``) against a real server, read with httpx's
streaming API: encoding, headers, delivery as events are produced, pings, and the
producer's clean-up when the client leaves."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from data_bridge import App
from data_bridge.sse import EventSourceResponse, ServerSentEvent

from .conftest import run_server

TIMEOUT = 5.0


def make_app() -> tuple[App, dict[str, Any]]:
    seen: dict[str, Any] = {"closed": threading.Event(), "release": threading.Event()}
    app = App()

    @app.get("/events")
    async def events() -> EventSourceResponse:
        async def gen() -> AsyncIterator[Any]:
            yield {"event": "tick", "data": "1"}
            yield ServerSentEvent("two\nlines", id=7, retry=1500)
            yield "plain"
            yield {"data": {"a": 1}, "comment": "note"}

        return EventSourceResponse(gen())

    @app.get("/sync")
    def sync_events() -> EventSourceResponse:
        def gen() -> Iterator[Any]:
            yield {"data": "a"}
            yield {"data": "b", "event": "end"}

        return EventSourceResponse(gen(), sep="\n")

    @app.get("/live")
    async def live() -> EventSourceResponse:
        async def gen() -> AsyncIterator[Any]:
            try:
                yield {"data": "first"}
                # The client must get the first event while this one is not yet made.
                while not seen["release"].is_set():
                    await asyncio.sleep(0.01)
                yield {"data": "second"}
                while True:
                    await asyncio.sleep(0.05)
                    yield {"data": "more"}
            finally:
                seen["closed"].set()

        return EventSourceResponse(gen())

    @app.get("/quiet")
    async def quiet() -> EventSourceResponse:
        async def gen() -> AsyncIterator[Any]:
            await asyncio.sleep(0.35)
            yield {"data": "late"}

        return EventSourceResponse(gen(), ping=0.1)

    @app.get("/custom-ping")
    async def custom_ping() -> EventSourceResponse:
        async def gen() -> AsyncIterator[Any]:
            await asyncio.sleep(0.25)
            yield {"data": "done"}

        return EventSourceResponse(
            gen(), ping=0.1, ping_message_factory=lambda: ServerSentEvent(event="ping")
        )

    @app.get("/echo-field")
    async def echo_field(field: str, value: str) -> EventSourceResponse:
        # A field taken from the request, as an id echoed from Last-Event-ID would be.
        event = ServerSentEvent("safe", **{field: value})
        return EventSourceResponse(iter([event]))

    return app, seen


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, dict[str, Any]]]:
    app, seen = make_app()
    with run_server(app) as base:
        yield base, seen


def test_events_are_encoded_with_sse_headers(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    r = httpx.get(base + "/events", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert r.text == (
        "event: tick\r\ndata: 1\r\n\r\n"
        "id: 7\r\ndata: two\r\ndata: lines\r\nretry: 1500\r\n\r\n"
        "data: plain\r\n\r\n"
        ": note\r\ndata: {'a': 1}\r\n\r\n"
    )


def test_sync_producer_and_separator(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    r = httpx.get(base + "/sync", timeout=TIMEOUT)
    assert r.text == "data: a\n\nevent: end\ndata: b\n\n"


def test_events_arrive_as_produced_and_the_producer_stops_with_the_client(
    served: tuple[str, dict[str, Any]],
) -> None:
    base, seen = served
    seen["release"].clear()
    seen["closed"].clear()
    with httpx.stream("GET", base + "/live", timeout=TIMEOUT) as r:
        lines = r.iter_lines()
        assert next(lines) == "data: first"
        seen["release"].set()
        assert next(lines) == ""
        assert next(lines) == "data: second"
        assert next(lines) == ""
        assert next(lines) == "data: more"
    assert seen["closed"].wait(TIMEOUT)


def test_pings_while_the_producer_is_quiet(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    body = httpx.get(base + "/quiet", timeout=TIMEOUT).text
    chunks = body.split("\r\n\r\n")
    pings = [c for c in chunks if c.startswith(": ping - ")]
    assert len(pings) >= 2
    assert chunks[-2] == "data: late"


def test_custom_ping_message(served: tuple[str, dict[str, Any]]) -> None:
    base, _ = served
    body = httpx.get(base + "/custom-ping", timeout=TIMEOUT).text
    assert body.startswith("event: ping\r\n\r\n")
    assert body.endswith("data: done\r\n\r\n")


def test_encoding_rules() -> None:
    assert ServerSentEvent().encode() == b"\r\n"
    assert ServerSentEvent("", event="e").encode() == b"event: e\r\ndata: \r\n\r\n"
    assert ServerSentEvent("x", sep="\n").encode() == b"data: x\n\n"
    with pytest.raises(TypeError):
        ServerSentEvent("x", retry="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sep"):
        EventSourceResponse(iter([]), sep="\t")


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("value", ["tick\ndata: injected", "tick\rdata: injected", "a\r\n"])
def test_a_line_break_in_a_single_line_field_is_refused(
    served: tuple[str, dict[str, Any]], field: str, value: str
) -> None:
    base, _ = served
    r = httpx.get(base + "/echo-field", params={"field": field, "value": value}, timeout=TIMEOUT)
    assert r.status_code == 500
    assert "injected" not in r.text
    # The same value without the line break is sent as one field.
    r = httpx.get(base + "/echo-field", params={"field": field, "value": "tick"}, timeout=TIMEOUT)
    assert r.text == f"{field}: tick\r\ndata: safe\r\n\r\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", "a\nb"),
        ("event", "a\rb"),
        ("id", "1\n2"),
        ("id", "1\r\n"),
        ("id", "1\0"),
    ],
    ids=repr,
)
def test_single_line_fields_are_checked_when_set(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"the {field} of an event cannot contain"):
        ServerSentEvent("x", **{field: value})
    event = ServerSentEvent("x")
    with pytest.raises(ValueError, match="cannot contain"):
        setattr(event, field, value)
    assert event.encode() == b"data: x\r\n\r\n"


def test_multi_line_data_and_comments_stay_within_their_fields() -> None:
    event = ServerSentEvent("a\rid: 1\r\nb", comment="c\nevent: x", retry=5)
    assert event.encode() == (
        b": c\r\n: event: x\r\ndata: a\r\ndata: id: 1\r\ndata: b\r\nretry: 5\r\n\r\n"
    )
    with pytest.raises(TypeError):
        ServerSentEvent("x", retry="5\ndata: y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sep"):
        ServerSentEvent("x", sep="\ndata: y\n")
