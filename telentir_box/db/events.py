"""The durable event log: every mutation appends its event here in the same
transaction, so an event exists if and only if its change committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite
import msgspec

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


async def record_event(tx: Transaction, user_id: str, type: str, payload: dict[str, Any]) -> Event:
    data = msgspec.json.encode(payload)
    cursor = await tx.conn.execute(
        "INSERT INTO events (user_id, type, data) VALUES (?, ?, ?) RETURNING id, created_at",
        (user_id, type, data),
    )
    row = await cursor.fetchone()
    assert row is not None
    event = Event(row["id"], user_id, type, data, row["created_at"])
    tx.events.append(event)
    return event


async def events_after(conn: aiosqlite.Connection, user_id: str, after_id: int, limit: int) -> list[Event]:
    rows = await conn.execute_fetchall(
        "SELECT id, user_id, type, data, created_at FROM events"
        " WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
        (user_id, after_id, limit),
    )
    return [Event(r["id"], r["user_id"], r["type"], r["data"], r["created_at"]) for r in rows]
