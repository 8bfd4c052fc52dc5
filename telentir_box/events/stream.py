"""One SSE stream: subscribe to the bus first, replay what the client missed from the
durable log, then go live, skipping whatever the replay already sent, so there is no
gap and no duplicate. Ends with an `event: error` frame when closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.response.base import ASGIResponse
from litestar.types import HTTPResponseBodyEvent, Receive, Scope, Send

from telentir_box.db import events as events_repo
from telentir_box.db.database import Database
from telentir_box.events.bus import CLOSED_REVOKED, CLOSED_SHUTDOWN, CLOSED_SLOW, Bus, Frame
from telentir_box.events.filters import EventFilter

log = logging.getLogger("telentir_box.events")

RETRY_MS = 3000
REPLAY_PAGE = 500
_CLOSE_MESSAGES = {
    CLOSED_SLOW: "Event stream fell behind and was closed; reconnect with Last-Event-ID to resume.",
    CLOSED_SHUTDOWN: "Server is shutting down; reconnect with Last-Event-ID to resume.",
    CLOSED_REVOKED: "The credentials this stream was opened with are no longer valid; sign in again.",
}


@dataclass(frozen=True, slots=True)
class StreamRequest:
    user_id: str
    channel: str | None  # None: every type
    event_filter: EventFilter
    resume_after: int | None  # the client's last event id, if it is resuming
    credential_id: str | None = None  # the session or API key it is rechecked by


class EventStream(ASGIResponse):
    """One SSE response: subscribed when built (so caps answer 429 before any byte is
    sent), then, once called, it replays what the client missed from the durable log,
    sends what was committed meanwhile (skipping what the replay already sent, so there
    is no gap and no duplicate) and goes live: from then on the bus writes each frame
    straight to the connection. Ends with an `event: error` frame when closed."""

    _should_set_content_length = False  # a stream: chunked, no length

    def __init__(self, bus: Bus, db: Database, request: StreamRequest, headers: dict[str, str]) -> None:
        super().__init__(headers=headers, media_type="text/event-stream")
        self._bus, self._db, self._request = bus, db, request
        self._subscription = bus.subscribe(
            request.user_id, request.event_filter.accepts, request.credential_id
        )
        # Released also if the response is dropped without ever being sent.
        weakref.finalize(self, bus.unsubscribe, self._subscription)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self._subscription
        gone = asyncio.ensure_future(_disconnected(receive))
        writer = EagerWriter(send, subscription.limit)
        try:
            await self.start_response(send)
            await send(_body(b": connected\nretry: %d\n\n" % RETRY_MS))
            last_id = 0
            if self._request.resume_after is not None:
                async for chunk, replayed_through in _replay(self._db, self._request):
                    last_id = replayed_through
                    if chunk:
                        await send(_body(chunk))
            # Frames committed meanwhile were queued. Once the queue is found empty, with no
            # await in between, the bus hands every later frame to the writer (but those the
            # replay read before their commit was published).
            while frames := subscription.drain():
                chunk = b"".join(f.data for f in frames if f.id > last_id or f.id == 0)
                if chunk:
                    await send(_body(chunk))
            if subscription.reason is None:
                subscription.deliver_to(writer, last_id)
            closed = asyncio.ensure_future(subscription.wait_closed())
            await asyncio.wait((closed, gone), return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            self._bus.unsubscribe(subscription)  # no frame reaches the writer after this
            await writer.stop()
            if subscription.reason is not None and not gone.done():
                message = _CLOSE_MESSAGES.get(subscription.reason, "Event stream closed.")
                await send(_body(error_frame(message)))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            self._bus.unsubscribe(subscription)
            await writer.stop()


class EagerWriter:
    """The bus's sink for one live stream. A chunk is written at once when the connection
    takes it without waiting: the ASGI send is stepped in place and, with the transport
    not paused, completes in that one step (what Python 3.12 calls an eager task). Only a
    paused transport leaves the send to finish in a task, with later chunks queued behind
    it up to `limit`; past that the subscriber is too far behind and is closed."""

    def __init__(self, send: Send, limit: int) -> None:
        self._send = send
        self._limit = limit
        self._queued: deque[bytes] = deque()
        self._finishing: asyncio.Task[None] | None = None

    def __call__(self, chunk: bytes) -> bool:
        if self._finishing is not None:
            if len(self._queued) >= self._limit:
                return False
            self._queued.append(chunk)
            return True
        sending = cast(Coroutine[Any, Any, None], self._send(_body(chunk)))
        try:
            waiting_for = sending.send(None)
        except StopIteration:
            return True
        except Exception:
            log.info("event stream write failed", exc_info=True)
            return False
        self._finishing = asyncio.ensure_future(self._finish(sending, waiting_for))
        return True

    async def _finish(self, sending: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        """Drive the suspended send as a task would, then send what queued behind it."""
        try:
            while True:
                if asyncio.isfuture(waiting_for):
                    await asyncio.wait((waiting_for,))
                else:  # a bare yield, as in asyncio.sleep(0)
                    await asyncio.sleep(0)
                try:
                    waiting_for = sending.send(None)
                except StopIteration:
                    break
            while self._queued:
                await self._send(_body(self._queued.popleft()))
        except Exception:
            # The stream learns of it from the bus: the next chunk fails or finds it closed.
            log.info("event stream write failed", exc_info=True)
        finally:
            sending.close()  # a no-op once it has finished
            self._finishing = None

    async def stop(self) -> None:
        """Drop what is queued and end a send still waiting: a stream that ends resumes by id."""
        self._queued.clear()
        finishing = self._finishing
        if finishing is not None:
            finishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await finishing


def _body(chunk: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _replay(db: Database, request: StreamRequest) -> AsyncIterator[tuple[bytes, int]]:
    """Missed events as (chunk, id of the last event read); a `reset` frame instead when
    the resume point is no longer covered by the retained log."""
    after = request.resume_after
    assert after is not None
    async with db.reading() as conn:
        first = await events_repo.first_retained_event_id(conn)
        latest = await events_repo.latest_event_id(conn)
    if after + 1 < first or after > latest:
        yield reset_frame(after, latest), latest
        return
    while True:
        async with db.reading() as conn:
            page = await events_repo.events_after(
                conn, request.user_id, after, REPLAY_PAGE, type=request.channel
            )
        if not page:
            return
        after = page[-1].id
        frames = (Frame.of(event) for event in page)
        yield b"".join(f.data for f in frames if request.event_filter.accepts(f)), after
        if len(page) < REPLAY_PAGE:
            return


def reset_frame(resume_after: int, latest: int) -> bytes:
    """Tells the client its resume point is gone: re-sync from /api/root, then this
    stream goes on live after `latest`, which is also the id to resume from."""
    data = msgspec.json.encode(
        {
            "reason": "resume point is older than the retained event log; re-sync from /api/root",
            "last_event_id": resume_after,
            "resume_from": latest,
        }
    )
    return b"id: %d\nevent: reset\ndata: %s\n\n" % (latest, data)


def error_frame(message: str) -> bytes:
    """The real client ends the stream on `event: error` and uses a JSON-string data as its message."""
    return b"event: error\ndata: %s\n\n" % msgspec.json.encode(message)
