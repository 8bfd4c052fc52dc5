"""The durable event log: every mutation appends its event here in the same
transaction, so an event exists if and only if its change committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from telentir_box.db.connection import Connection

if TYPE_CHECKING:
    from telentir_box.db.database import Transaction


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    user_id: str
    type: str
    data: bytes  # the JSON payload, encoded once for every subscriber
    created_at: str

    @property
    def payload(self) -> dict[str, Any]:
        return msgspec.json.decode(self.data)


async def record_event(tx: Transaction, user_id: str, type: str, payload: Any) -> Event:
    """`payload` is anything msgspec encodes (a dict, a Struct)."""
    data = msgspec.json.encode(payload)
    cursor = await tx.conn.execute(
        "INSERT INTO events (user_id, type, data, created_at) VALUES (?, ?, ?, ?)",
        (user_id, type, data, tx.now),
    )
    # AUTOINCREMENT makes the id the rowid.
    assert cursor.lastrowid is not None
    event = Event(cursor.lastrowid, user_id, type, data, tx.now)
    tx.events.append(event)
    return event


async def record_events(tx: Transaction, user_id: str, items: Sequence[tuple[str, Any]]) -> list[Event]:
    """Record many events of one user in one statement (bulk writes); each item is a
    type and a payload msgspec encodes."""
    encoded = [(type, msgspec.json.encode(payload)) for type, payload in items]
    await tx.conn.executemany(
        "INSERT INTO events (user_id, type, data, created_at) VALUES (?, ?, ?, ?)",
        [(user_id, type, data, tx.now) for type, data in encoded],
    )
    # AUTOINCREMENT ids of rows the single writer inserted back to back are consecutive.
    first = await tx.conn.last_insert_rowid() - len(encoded) + 1
    events = [Event(first + i, user_id, type, data, tx.now) for i, (type, data) in enumerate(encoded)]
    tx.events.extend(events)
    return events


async def events_after(
    conn: Connection, user_id: str, after_id: int, limit: int, *, type: str | None = None
) -> list[Event]:
    sql = "SELECT id, user_id, type, data, created_at FROM events WHERE user_id = ? AND id > ?"
    params: tuple[object, ...] = (user_id, after_id)
    if type is not None:
        sql += " AND type = ?"
        params += (type,)
    rows = await conn.execute_fetchall(sql + " ORDER BY id LIMIT ?", (*params, limit))
    return [Event(r["id"], r["user_id"], r["type"], r["data"], r["created_at"]) for r in rows]


async def latest_event_id(conn: Connection) -> int:
    """The highest id ever given out (0 if none), even if that event was pruned."""
    rows = list(await conn.execute_fetchall("SELECT seq FROM sqlite_sequence WHERE name = 'events'"))
    return int(rows[0]["seq"]) if rows else 0


async def first_retained_event_id(conn: Connection) -> int:
    """The id of the oldest event still in the log; everything below it is gone. With an
    empty log, the id the next event will get."""
    rows = list(await conn.execute_fetchall("SELECT MIN(id) AS id FROM events"))
    if rows and rows[0]["id"] is not None:
        return int(rows[0]["id"])
    return await latest_event_id(conn) + 1


async def first_event_since(conn: Connection, created_at: str) -> int:
    """The bound below which every event is older than `created_at`: the id of the
    oldest event created at or after it, or the next id to be given out. One writer
    stamps ids and times together, so times grow with ids and a bisection over the
    primary key (a few dozen point lookups) replaces a scan of the whole log."""
    low, high = await first_retained_event_id(conn), await latest_event_id(conn) + 1
    while low < high:
        middle = (low + high) // 2
        rows = await conn.execute_fetchall(
            "SELECT id, created_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        )
        if rows and rows[0]["created_at"] < created_at:
            low = rows[0]["id"] + 1
        else:
            high = middle
    return low


async def prune_events(tx: Transaction, below_id: int, limit: int) -> int:
    """Delete up to `limit` of the oldest events with ids below `below_id`; returns how many went."""
    cursor = await tx.conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < ? ORDER BY id LIMIT ?)",
        (below_id, limit),
    )
    return cursor.rowcount
