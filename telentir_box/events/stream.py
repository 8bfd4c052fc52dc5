"""One SSE stream as bytes: subscribe to the bus first, replay what the client missed
from the durable log, then go live, skipping whatever the replay already sent, so
there is no gap and no duplicate. Ends with an `event: error` frame when closed."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from telentir_box.db import events as events_repo
from telentir_box.db.database import Database
from telentir_box.events.bus import CLOSED_REVOKED, CLOSED_SHUTDOWN, CLOSED_SLOW, Bus, Frame, Subscription
from telentir_box.events.filters import EventFilter

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


def open_stream(bus: Bus, db: Database, request: StreamRequest) -> AsyncIterator[bytes]:
    """Subscribe now (so caps answer 429 before any byte is sent) and return the
    stream's bytes. The subscription is released when the stream ends, or when the
    iterator is dropped without ever being started (client gone before the body)."""
    subscription = bus.subscribe(request.user_id, request.event_filter.accepts, request.credential_id)
    chunks = _stream(bus, db, request, subscription)
    weakref.finalize(chunks, bus.unsubscribe, subscription)
    return chunks


async def _stream(
    bus: Bus, db: Database, request: StreamRequest, subscription: Subscription
) -> AsyncIterator[bytes]:
    try:
        yield b": connected\nretry: %d\n\n" % RETRY_MS
        last_id = 0
        if request.resume_after is not None:
            async for chunk, replayed_through in _replay(db, request):
                last_id = replayed_through
                if chunk:
                    yield chunk
        while True:
            frames = await subscription.take()
            if subscription.reason is not None:
                yield error_frame(_CLOSE_MESSAGES.get(subscription.reason, "Event stream closed."))
                return
            chunk = b"".join(f.data for f in frames if f.id > last_id or f.id == 0)
            if chunk:
                yield chunk
    finally:
        bus.unsubscribe(subscription)


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
