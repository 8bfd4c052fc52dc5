"""The in-process broker: fans committed events out to subscribers. It knows nothing
of HTTP: each event's SSE frame is encoded once and the same bytes are shared by every
subscriber; a subscriber whose bounded queue is full is closed, never waited for.

A subscription queues frames until its stream is live, then takes them through a sink
the stream hands it (see events/stream.py), which writes them at once: waking one task
per subscriber for every event cost more than the write itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from telentir_box.config import EventsConfig
from telentir_box.db.events import Event
from telentir_box.errors import RateLimited

log = logging.getLogger("telentir_box.events")

# Why a subscription ended; the stream turns these into its closing `event: error` frame.
CLOSED_SLOW = "slow"
CLOSED_SHUTDOWN = "shutdown"
CLOSED_REVOKED = "revoked"


class Frame:
    """One event as it goes on the wire, encoded once; its payload is decoded at most
    once, and only if some subscriber's filter needs it."""

    __slots__ = ("_payload", "data", "event")

    def __init__(self, event: Event, data: bytes) -> None:
        self.event = event
        self.data = data
        self._payload: dict[str, Any] | None = None

    @classmethod
    def of(cls, event: Event) -> Frame:
        return cls(event, encode_frame(event))

    @property
    def id(self) -> int:
        return self.event.id

    @property
    def payload(self) -> dict[str, Any]:
        if self._payload is None:
            decoded = msgspec.json.decode(self.event.data)
            self._payload = decoded if isinstance(decoded, dict) else {}
        return self._payload


def encode_frame(event: Event) -> bytes:
    # LF only, one `data:` line: the real client splits events on "\n\n" alone, and
    # msgspec's compact JSON never holds a raw newline.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.type.encode(), event.data)


# A keep-alive comment for idle streams; id 0 so it is never taken for a delivered event.
HEARTBEAT = Frame(Event(0, "", "", b"", ""), b":\n\n")

Accepts = Callable[[Frame], bool]
# Takes the bytes of one or more frames for the client; False when it cannot (too far behind).
Sink = Callable[[bytes], bool]


class Subscription:
    """One listener's bounded mailbox. The bus offers; the stream takes what was queued,
    then (once live) gives the subscription a sink that receives every later frame."""

    __slots__ = (
        "_items",
        "_sent_through",
        "_sink",
        "_waiter",
        "accepts",
        "active",
        "credential",
        "limit",
        "reason",
        "user_id",
    )

    def __init__(self, user_id: str, accepts: Accepts, limit: int, credential: str | None = None) -> None:
        self.user_id = user_id
        self.accepts = accepts
        # The session or API key id that opened the stream, rechecked while it is open.
        self.credential = credential
        self.limit = limit
        self.reason: str | None = None
        # Set on every delivery and cleared by each heartbeat tick: busy streams need none.
        self.active = False
        self._items: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Sink | None = None
        self._sent_through = 0

    def offer(self, frames: list[Frame]) -> bool:
        """Hand over frames, in order: to the sink in one piece, else into the queue.
        False when this subscriber cannot take them (the bus then closes it)."""
        self.active = True
        if self._sink is not None:
            if frames[0].id <= self._sent_through:
                # Committed before the stream's replay read the log, published after it.
                frames = [f for f in frames if f.id > self._sent_through or f.id == 0]
                if not frames:
                    return True
            return self._sink(frames[0].data if len(frames) == 1 else b"".join(f.data for f in frames))
        if len(self._items) + len(frames) > self.limit:
            return False
        self._items.extend(frames)
        return True

    def drain(self) -> list[Frame]:
        """Every queued frame, without waiting."""
        items = list(self._items)
        self._items.clear()
        return items

    def deliver_to(self, sink: Sink, sent_through: int) -> None:
        """From now on frames go to `sink` as they are offered, but for those with ids up
        to `sent_through`, which the stream already sent. Call with an empty queue."""
        assert not self._items, "drain the queue before handing frames to a sink"
        self._sink = sink
        self._sent_through = sent_through

    async def wait_closed(self) -> None:
        """Until the bus closes this subscription (see `reason`)."""
        while self.reason is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self, reason: str) -> None:
        """End the subscription: queued frames are dropped, its stream wakes and sees `reason`."""
        if self.reason is None:
            self.reason = reason
            self._items.clear()
            self._sink = None
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Bus:
    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        self._by_user: dict[str, set[Subscription]] = {}
        self._count = 0
        self.closed = False

    @property
    def subscriber_count(self) -> int:
        return self._count

    def subscriptions(self) -> list[Subscription]:
        return [subscription for mine in self._by_user.values() for subscription in mine]

    def subscribe(self, user_id: str, accepts: Accepts, credential: str | None = None) -> Subscription:
        """A new subscription, or RateLimited when the per-user or total cap is reached."""
        if self.closed:
            raise RateLimited("The server is shutting down")
        mine = self._by_user.get(user_id)
        if self._count >= self.config.max_streams:
            raise RateLimited("Too many event streams are open on this server")
        if mine is not None and len(mine) >= self.config.max_streams_per_user:
            raise RateLimited("Too many event streams are open for this account")
        subscription = Subscription(user_id, accepts, self.config.queue_size, credential)
        self._by_user.setdefault(user_id, set()).add(subscription)
        self._count += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        mine = self._by_user.get(subscription.user_id)
        if mine is not None and subscription in mine:
            mine.discard(subscription)
            self._count -= 1
            if not mine:
                del self._by_user[subscription.user_id]

    def publish(self, events: list[Event]) -> None:
        """Database.on_commit: runs in the writer right after commit, so it must never
        wait. Events arrive in id order, batch after batch; a subscriber gets the frames
        of one batch together, so a burst of commits costs it one write."""
        frames_by_user: dict[str, list[Frame]] = {}
        for event in events:
            if event.user_id in self._by_user:
                frames_by_user.setdefault(event.user_id, []).append(Frame.of(event))
        for user_id, frames in frames_by_user.items():
            slow = []
            for subscription in self._by_user.get(user_id, ()):
                accepted = [frame for frame in frames if subscription.accepts(frame)]
                if accepted and not subscription.offer(accepted):
                    slow.append(subscription)
            for subscription in slow:
                log.info("closing a slow event stream", extra={"user_id": subscription.user_id})
                self.close(subscription, CLOSED_SLOW)

    def beat(self) -> None:
        """Queue a keep-alive on every stream that delivered nothing since the last beat."""
        for mine in self._by_user.values():
            for subscription in mine:
                if not subscription.active:
                    subscription.offer([HEARTBEAT])
                subscription.active = False

    def close(self, subscription: Subscription, reason: str) -> None:
        """End one stream: its reader wakes, sends the closing frame and returns."""
        subscription.close(reason)
        self.unsubscribe(subscription)

    def close_all(self, reason: str = CLOSED_SHUTDOWN) -> None:
        self.closed = True
        for subscription in self.subscriptions():
            self.close(subscription, reason)

    async def run(self, stopping: asyncio.Event) -> None:
        """Heartbeats until the box starts to stop, then ends every stream, so the
        server's graceful wait is not spent on streams that never finish."""
        while not stopping.is_set():
            try:
                async with asyncio.timeout(self.config.heartbeat_seconds):
                    await stopping.wait()
            except TimeoutError:
                self.beat()
        self.close_all(CLOSED_SHUTDOWN)
