"""Server-sent events with the API of ``sse-starlette``: ``EventSourceResponse`` and
``ServerSentEvent``.

An ``EventSourceResponse`` is a :class:`~data_bridge.responses.StreamingResponse` whose
chunks are encoded events, so it inherits its flow control (the next event is asked
for once the client has taken the previous ones) and its clean-up (a client that goes
away cancels the producer, and the generator's ``finally`` runs at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from data_bridge.background import BackgroundTask
from data_bridge.responses import StreamingResponse

__all__ = ["DEFAULT_PING_INTERVAL", "DEFAULT_SEPARATOR", "EventSourceResponse", "ServerSentEvent"]

DEFAULT_PING_INTERVAL = 15.0
DEFAULT_SEPARATOR = "\r\n"


def _check_sep(sep: str | None) -> str:
    if sep not in (None, "\r\n", "\r", "\n"):
        raise ValueError(f"sep must be one of: \\r\\n, \\r, \\n, got: {sep!r}")
    return sep or DEFAULT_SEPARATOR


def _check_single_line(field: str, value: str | int | None) -> None:
    # A line break ends the field: the rest of the value would be read as new fields
    # or events. ``data`` and ``comment`` are split into several lines instead.
    if value is not None and ("\r" in str(value) or "\n" in str(value)):
        raise ValueError(f"the {field} of an event cannot contain CR or LF, got {value!r}")


class ServerSentEvent:
    """One event: ``data`` (each of its lines sent as a ``data:`` field), with an
    optional ``event`` name, ``id``, ``retry`` (milliseconds) and ``comment``.

    ``event`` and ``id`` are single fields, so a value holding CR or LF (or, for
    ``id``, NUL, which makes clients drop it) raises ``ValueError``, and a ``retry``
    that is not an ``int`` raises ``TypeError``."""

    def __init__(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment
        self.sep = _check_sep(sep)

    # Checked on every assignment, so an event changed after it was made is checked too.
    @property
    def event(self) -> str | None:
        return self._event

    @event.setter
    def event(self, value: str | None) -> None:
        _check_single_line("event", value)
        self._event = value

    @property
    def id(self) -> str | int | None:
        return self._id

    @id.setter
    def id(self, value: str | int | None) -> None:
        if value is not None and "\0" in str(value):
            raise ValueError(f"the id of an event cannot contain NUL, got {value!r}")
        _check_single_line("id", value)
        self._id = value

    @property
    def retry(self) -> int | None:
        return self._retry

    @retry.setter
    def retry(self, value: int | None) -> None:
        if value is not None and not isinstance(value, int):
            raise TypeError("retry argument must be int")
        self._retry = value

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format, ending with a blank line."""
        sep = self.sep
        out: list[str] = []
        if self.comment is not None:
            out.extend(f": {line}{sep}" for line in str(self.comment).splitlines())
        if self.id is not None:
            out.append(f"id: {self.id!s}{sep}")
        if self.event is not None:
            out.append(f"event: {self.event!s}{sep}")
        if self.data is not None:
            # A field cannot hold a line break: each line of the data is a field.
            out.extend(f"data: {line}{sep}" for line in str(self.data).splitlines() or [""])
        if self.retry is not None:
            # ``int()``: an int subclass could print anything.
            out.append(f"retry: {int(self.retry)}{sep}")
        out.append(sep)
        return "".join(out).encode("utf-8")

    def __repr__(self) -> str:
        return f"ServerSentEvent(data={self.data!r}, event={self.event!r}, id={self.id!r})"


Item = ServerSentEvent | dict[str, Any] | str | bytes


def encode_item(item: Any, sep: str) -> bytes:
    """``item`` as sent: bytes as they are, an event (or a dict of its fields) encoded,
    anything else as the data of an event."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, dict):
        return ServerSentEvent(**{"sep": sep, **item}).encode()
    return ServerSentEvent(str(item), sep=sep).encode()


class EventSourceResponse(StreamingResponse):
    """Streams ``content`` (an async or sync iterable of events, dicts of event fields,
    or strings) as ``text/event-stream``, with ``cache-control: no-cache`` and
    ``x-accel-buffering: no`` (so proxies do not hold events back).

    While an async producer has nothing to send for ``ping`` seconds (15 by default),
    a comment line keeps the connection alive (``ping_message_factory`` makes a custom
    one); ``ping=0`` turns that off. Sync producers run in a worker thread, unpinged.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[Item] | Iterable[Item],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: float | None = None,
        sep: str | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
    ) -> None:
        self.sep = _check_sep(sep)
        self.ping_interval = DEFAULT_PING_INTERVAL if ping is None else ping
        self.ping_message_factory = ping_message_factory
        merged = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        if isinstance(content, AsyncIterable):
            stream: AsyncIterable[bytes] | Iterable[bytes] = self._encode_async(content)
        elif isinstance(content, Iterable):
            stream = self._encode_sync(content)
        else:
            raise TypeError(f"EventSourceResponse needs an iterable, not {type(content).__name__}")
        super().__init__(stream, status_code, merged, media_type)
        self.background = background

    def _ping(self) -> bytes:
        if self.ping_message_factory is not None:
            return self.ping_message_factory().encode()
        now = datetime.datetime.now(datetime.UTC)
        return ServerSentEvent(comment=f"ping - {now}", sep=self.sep).encode()

    def _encode_sync(self, content: Iterable[Item]) -> Iterator[bytes]:
        iterator = iter(content)
        try:
            for item in iterator:
                yield encode_item(item, self.sep)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    async def _encode_async(self, content: AsyncIterable[Item]) -> AsyncIterator[bytes]:
        iterator = aiter(content)
        if self.ping_interval <= 0:
            try:
                async for item in iterator:
                    yield encode_item(item, self.sep)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        # The producer's next item is awaited in a task of its own, so a ping can go
        # out while it waits without interrupting it.
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({pending}, timeout=self.ping_interval)
                if not done:
                    yield self._ping()
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                yield encode_item(item, self.sep)
        finally:
            if pending is not None and not pending.done():
                # Cancelling the step runs the producer's ``finally``.
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
