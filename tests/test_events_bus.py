"""The bus, filters, tickets and retention without HTTP: fan-out, bounded queues,
caps, the filter mapping, ticket checks and pruning by age and count."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from telentir_box.auth.principal import Principal
from telentir_box.config import EventsConfig
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import Event, events_after, first_retained_event_id, latest_event_id, record_event
from telentir_box.db.migrate import apply_migrations
from telentir_box.db.timestamps import iso
from telentir_box.errors import RateLimited
from telentir_box.events.bus import CLOSED_SHUTDOWN, CLOSED_SLOW, HEARTBEAT, Bus, Frame
from telentir_box.events.filters import build_filter
from telentir_box.events.retention import prune_event_log
from telentir_box.events.stream import EagerWriter
from telentir_box.events.tickets import issue_ticket, verify_ticket


def event(id: int, type: str, payload: dict[str, object], user_id: str = "usr_a") -> Event:
    return Event(id, user_id, type, msgspec.json.encode(payload), "2025-01-01T00:00:00.000Z")


def always(frame: Frame) -> bool:
    return True


async def test_events_bus_fans_out_shared_bytes_to_the_owner_only() -> None:
    bus = Bus(EventsConfig(queue_size=10))
    mine, also_mine = bus.subscribe("usr_a", always), bus.subscribe("usr_a", always)
    other = bus.subscribe("usr_b", always)
    bus.publish([event(1, "publish", {"type": "agents"}), event(2, "object_deleted", {"object_id": "o"})])
    got, got_too = mine.drain(), also_mine.drain()
    assert [f.id for f in got] == [1, 2]
    assert got[0] is got_too[0]  # encoded once, shared
    assert got[0].data == b'id: 1\nevent: publish\ndata: {"type":"agents"}\n\n'
    assert other.drain() == []


async def test_events_bus_closes_full_subscriber_without_waiting() -> None:
    bus = Bus(EventsConfig(queue_size=5))
    stuck, reading = bus.subscribe("usr_a", always), bus.subscribe("usr_a", always)
    for n in range(1, 1001):
        # publish is synchronous: it cannot wait for a subscriber, it can only drop one.
        assert bus.publish([event(n, "object_updated", {"object_id": "o"})]) is None
        assert [f.id for f in reading.drain()] == [n]
        # The stuck queue holds queue_size frames; the next one closes it.
        assert (stuck.reason == CLOSED_SLOW) == (n > 5)
    assert bus.subscriber_count == 1
    assert stuck.drain() == []


async def test_events_bus_hands_a_live_stream_each_batch_in_one_piece() -> None:
    bus = Bus(EventsConfig(queue_size=10))
    live, refusing = bus.subscribe("usr_a", always), bus.subscribe("usr_a", always)
    written: list[bytes] = []
    live.deliver_to(lambda chunk: written.append(chunk) is None, sent_through=2)
    refusing.deliver_to(lambda chunk: False, sent_through=0)
    # Ids 1 and 2 were read by the stream's replay before their commit was published.
    bus.publish([event(n, "object_updated", {"object_id": "o"}) for n in (1, 2, 3, 4)])
    assert written == [
        Frame.of(event(3, "object_updated", {"object_id": "o"})).data
        + Frame.of(event(4, "object_updated", {"object_id": "o"})).data
    ]
    assert refusing.reason == CLOSED_SLOW and bus.subscriber_count == 1
    bus.publish([event(2, "object_updated", {"object_id": "o"})])
    bus.beat()
    assert written[1:] == []  # active since the last beat: no keep-alive, no replayed id
    bus.beat()
    assert written[1:] == [HEARTBEAT.data]


async def test_events_bus_caps_heartbeats_and_shutdown() -> None:
    bus = Bus(EventsConfig(max_streams_per_user=2, max_streams=3, heartbeat_seconds=0.05))
    first, _ = bus.subscribe("usr_a", always), bus.subscribe("usr_a", always)
    with pytest.raises(RateLimited):
        bus.subscribe("usr_a", always)
    bus.subscribe("usr_b", always)
    with pytest.raises(RateLimited):
        bus.subscribe("usr_c", always)
    bus.unsubscribe(first)
    bus.unsubscribe(first)  # idempotent
    assert bus.subscriber_count == 2
    third = bus.subscribe("usr_c", always)
    stopping = asyncio.Event()
    runner = asyncio.create_task(bus.run(stopping))
    async with asyncio.timeout(1):
        while not (beats := third.drain()):
            await asyncio.sleep(0.01)
    assert beats == [HEARTBEAT]
    closed = asyncio.create_task(third.wait_closed())
    stopping.set()
    await asyncio.wait_for(runner, 1)
    await asyncio.wait_for(closed, 1)
    assert third.drain() == [] and third.reason == CLOSED_SHUTDOWN
    assert bus.subscriber_count == 0
    with pytest.raises(RateLimited):
        bus.subscribe("usr_a", always)


async def test_events_writer_writes_at_once_and_queues_behind_a_paused_connection() -> None:
    sent: list[bytes] = []
    resumed = asyncio.Event()
    resumed.set()

    async def send(message: dict[str, object]) -> None:
        await resumed.wait()  # as uvicorn waits for a paused transport to drain
        sent.append(message["body"])  # type: ignore[arg-type]

    writer = EagerWriter(send, limit=2)  # type: ignore[arg-type]
    assert writer(b"a") and sent == [b"a"]  # written within the call: no task, no wait
    resumed.clear()
    assert writer(b"b") and writer(b"c") and writer(b"d")
    assert not writer(b"e")  # two queued behind the waiting send: too far behind
    assert sent == [b"a"]
    resumed.set()
    async with asyncio.timeout(1):
        while len(sent) < 4:
            await asyncio.sleep(0)
    assert sent == [b"a", b"b", b"c", b"d"]
    assert writer(b"f") and sent[-1] == b"f"  # back to writing at once

    resumed.clear()
    assert writer(b"g") and writer(b"h")
    await writer.stop()  # a stream that ends drops what waits; the client resumes by id
    resumed.set()
    await asyncio.sleep(0.01)
    assert sent == [b"a", b"b", b"c", b"d", b"f"]


@pytest.mark.parametrize(
    ("channel", "query", "ev", "accepted"),
    [
        ("object_created", {"objectId": "o1"}, event(1, "object_created", {"id": "o1"}), True),
        ("object_created", {"objectId": "o1"}, event(1, "object_created", {"id": "o2"}), False),
        (
            "object_created",
            {"relatedId": "s"},
            event(1, "object_created", {"related_object_id": None}),
            False,
        ),
        ("object_created", {}, event(1, "object_updated", {"object_id": "o1"}), False),
        (None, {"objectId": "o1"}, event(1, "object_updated", {"object_id": "o1"}), True),
        (None, {"objectId": "o1"}, event(1, "publish", {"object_id": "o1"}), True),
        (None, {"objectId": "o1"}, event(1, "unpublish", {"related_id": "o1"}), False),
        (None, {"objectId": "o1"}, event(1, "key_created", {"key_id": "o1"}), False),
        (
            None,
            {"type": "calls", "relatedId": "r"},
            event(1, "publish", {"type": "calls", "related_id": "r"}),
            True,
        ),
        (None, {"type": "calls"}, event(1, "unpublish", {"type": "agents"}), False),
        ("key_deleted", {"keyId": "k"}, event(1, "key_deleted", {"key_id": "k"}), True),
        (None, {"userId": "usr_a"}, event(1, "key_deleted", {"key_id": "k"}), True),
        (None, {"userId": "usr_b"}, event(1, "key_deleted", {"key_id": "k"}), False),
    ],
)
def test_events_filter_maps_query_to_payload(
    channel: str | None, query: dict[str, str], ev: Event, accepted: bool
) -> None:
    assert build_filter(channel, query, "usr_a").accepts(Frame.of(ev)) is accepted


def test_events_ticket_binds_user_credential_key_and_expiry() -> None:
    now = datetime.now(UTC)
    caller = Principal("usr_a", "member", False, True, False, False, api_key_id="ak_1")
    ticket, expires = issue_ticket(b"k" * 32, caller, now)
    assert expires - now == timedelta(seconds=60)
    claims = verify_ticket(b"k" * 32, ticket, now)
    assert claims is not None and (claims.user_id, claims.credential_id) == ("usr_a", "ak_1")
    again, _ = issue_ticket(b"k" * 32, caller, now)
    assert verify_ticket(b"k" * 32, again, now).nonce != claims.nonce  # type: ignore[union-attr]
    assert verify_ticket(b"k" * 32, ticket, now + timedelta(seconds=61)) is None
    assert verify_ticket(b"j" * 32, ticket, now) is None
    assert verify_ticket(b"k" * 32, ticket + "A", now) is None
    assert verify_ticket(b"k" * 32, "@@.@@", now) is None


async def test_events_retention_prunes_by_count_and_age(tmp_path: Path) -> None:
    db = Database(tmp_path / "box.db")
    await db.open()
    try:
        await apply_migrations(db.writer)

        async def write(tx: Transaction) -> None:
            for n in range(30):
                await record_event(tx, "usr_a", "object_deleted", {"object_id": f"o{n}"})

        await db.write(write)
        now = datetime.now(UTC)
        assert await prune_event_log(db, EventsConfig(retention_count=10), now) == 20
        async with db.reading() as conn:
            assert (await first_retained_event_id(conn), await latest_event_id(conn)) == (21, 30)
        assert await prune_event_log(db, EventsConfig(retention_days=1), now + timedelta(days=2)) == 10
        async with db.reading() as conn:
            assert (await first_retained_event_id(conn), await latest_event_id(conn)) == (31, 30)
    finally:
        await db.close()


async def test_events_retention_by_age_finds_the_boundary_across_gaps(tmp_path: Path) -> None:
    db = Database(tmp_path / "box.db")
    await db.open()
    try:
        await apply_migrations(db.writer)

        async def write(tx: Transaction) -> None:
            for n in range(40):
                await record_event(tx, "usr_a", "object_deleted", {"object_id": f"o{n}"})

        await db.write(write)
        now = datetime.now(UTC)
        # Events 1-17 are ten days old; 5-9 are already gone, so the bisection meets gaps.
        await db.writer.execute(
            "UPDATE events SET created_at = ? WHERE id <= 17", (iso(now - timedelta(days=10)),)
        )
        await db.writer.execute("DELETE FROM events WHERE id BETWEEN 5 AND 9")
        assert await prune_event_log(db, EventsConfig(retention_days=7), now) == 12
        async with db.reading() as conn:
            assert await first_retained_event_id(conn) == 18
            assert len(await events_after(conn, "usr_a", 0, 100)) == 23
    finally:
        await db.close()
