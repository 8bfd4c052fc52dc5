"""Repository for calls: their operational metadata and sealed live details, spent
session-call JWTs, and post-call webhooks waiting for their call."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import IO, Any

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction


@dataclass(frozen=True, slots=True)
class CallRow:
    id: str
    user_id: str
    direction: str
    phone_number_id: str | None
    server: str
    call_sid: str | None
    conversation_id: str | None
    status: str
    twilio_status: str | None
    twilio_sequence: int
    answered_by: str | None
    outcome: str | None
    started_at: str
    answered_at: str | None
    ended_at: str | None
    duration_seconds: int | None
    record_object_id: str | None
    transcription_object_id: str | None
    audio_object_id: str | None
    audio_source: str | None
    recording_sid: str | None
    final: int
    live: bytes | None
    created_at: str
    updated_at: str
    successful: int | None = None  # ElevenLabs' analysis: 1 success, 0 failure


_NAMES = tuple(f.name for f in fields(CallRow))
_COLUMNS = ", ".join(_NAMES)
# Every column but the key and owner may change as the call goes on.
UPDATABLE = frozenset(_NAMES) - {"id", "user_id", "created_at"}


def _call(r: Row) -> CallRow:
    values = [r[i] for i in range(len(_NAMES))]
    live = values[_NAMES.index("live")]
    values[_NAMES.index("live")] = bytes(live) if live is not None else None
    return CallRow(*values)


async def insert_call(tx: Transaction, row: CallRow) -> None:
    placeholders = ", ".join("?" * len(_NAMES))
    await tx.conn.execute(
        f"INSERT INTO calls ({_COLUMNS}) VALUES ({placeholders})", tuple(getattr(row, n) for n in _NAMES)
    )


async def _one(conn: Connection, where: str, value: str) -> CallRow | None:
    rows = await conn.execute_fetchall(f"SELECT {_COLUMNS} FROM calls WHERE {where} = ?", (value,))
    return _call(rows[0]) if rows else None


async def get_call(conn: Connection, call_id: str) -> CallRow | None:
    return await _one(conn, "id", call_id)


async def get_call_by_sid(conn: Connection, call_sid: str) -> CallRow | None:
    return await _one(conn, "call_sid", call_sid)


async def get_call_by_conversation(conn: Connection, conversation_id: str) -> CallRow | None:
    return await _one(conn, "conversation_id", conversation_id)


async def update_call(tx: Transaction, call_id: str, changes: dict[str, Any]) -> CallRow:
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    changes = {**changes, "updated_at": tx.now}
    assignments = ", ".join(f"{name} = ?" for name in changes)
    rows = await tx.conn.execute_fetchall(
        f"UPDATE calls SET {assignments} WHERE id = ? RETURNING {_COLUMNS}", (*changes.values(), call_id)
    )
    return _call(rows[0])


async def object_key_id(conn: Connection, user_id: str, object_id: str) -> str | None:
    rows = await conn.execute_fetchall(
        "SELECT key_id FROM objects WHERE id = ? AND user_id = ?", (object_id, user_id)
    )
    return rows[0][0] if rows else None


async def insert_call_object(
    tx: Transaction,
    user_id: str,
    object_id: str,
    key_id: str,
    parent: str,
    content: bytes | IO[bytes],
    size: int,
    auth_tag: bytes,
) -> int:
    """A call's object (its record or a child): its content written piece by piece into
    a zeroblob, so a recording is never copied whole. Answers its seq."""
    rows = await tx.conn.execute_fetchall(
        "INSERT INTO objects (id, user_id, key_id, related_object_id, content, auth_tag, metadata,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, zeroblob(?), ?, '{}', ?, ?) RETURNING seq",
        (object_id, user_id, key_id, parent, size, auth_tag, tx.now, tx.now),
    )
    seq = int(rows[0][0])
    await tx.conn.write_blob("objects", "content", seq, content)
    return seq


async def replace_call_object(
    tx: Transaction,
    user_id: str,
    object_id: str,
    key_id: str,
    content: bytes | IO[bytes],
    size: int,
    auth_tag: bytes,
) -> int | None:
    """A new version (key, content, tag) of a call's object; its seq, or None if gone."""
    rows = await tx.conn.execute_fetchall(
        "UPDATE objects SET key_id = ?, content = zeroblob(?), auth_tag = ?, updated_at = ?"
        " WHERE id = ? AND user_id = ? RETURNING seq",
        (key_id, size, auth_tag, tx.now, object_id, user_id),
    )
    if not rows:
        return None
    seq = int(rows[0][0])
    await tx.conn.write_blob("objects", "content", seq, content)
    return seq


async def count_open_calls(conn: Connection, user_id: str | None = None) -> int:
    """Calls not yet ended (no final Twilio status), of one user or of the whole box."""
    sql = "SELECT count(*) FROM calls WHERE final = 0 AND ended_at IS NULL"
    rows = await (
        conn.execute_fetchall(sql + " AND user_id = ?", (user_id,))
        if user_id is not None
        else conn.execute_fetchall(sql)
    )
    return int(rows[0][0])


async def list_open_calls_started_before(conn: Connection, before: str) -> list[str]:
    rows = await conn.execute_fetchall(
        "SELECT id FROM calls WHERE final = 0 AND started_at < ? ORDER BY started_at", (before,)
    )
    return [r[0] for r in rows]


async def spend_session_token(tx: Transaction, digest: str, user_id: str, expires_at: str) -> bool:
    """Record a session-call JWT as spent; False when it already was. Spent tokens are
    forgotten once expired, since an expired token is refused anyway."""
    await tx.conn.execute("DELETE FROM session_call_tokens WHERE expires_at < ?", (tx.now,))
    cursor = await tx.conn.execute(
        "INSERT INTO session_call_tokens (digest, user_id, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (digest) DO NOTHING",
        (digest, user_id, expires_at),
    )
    return cursor.rowcount > 0


async def keep_waiting_webhook(
    tx: Transaction, conversation_id: str, call_sid: str | None, sealed_body: bytes
) -> None:
    await tx.conn.execute(
        "INSERT INTO call_webhooks_waiting (conversation_id, call_sid, body, received_at)"
        " VALUES (?, ?, ?, ?)",
        (conversation_id, call_sid, sealed_body, tx.now),
    )


async def waiting_webhooks(
    conn: Connection, conversation_id: str | None, call_sid: str | None
) -> list[tuple[int, bytes]]:
    """Waiting webhooks for a conversation or a CallSid, oldest first: (id, sealed body)."""
    rows = await conn.execute_fetchall(
        "SELECT id, body FROM call_webhooks_waiting WHERE conversation_id = ? OR call_sid = ? ORDER BY id",
        (conversation_id, call_sid),
    )
    return [(int(r[0]), bytes(r[1])) for r in rows]


async def drop_waiting_webhook(tx: Transaction, waiting_id: int) -> None:
    await tx.conn.execute("DELETE FROM call_webhooks_waiting WHERE id = ?", (waiting_id,))


async def drop_waiting_webhooks_before(tx: Transaction, before: str) -> int:
    cursor = await tx.conn.execute("DELETE FROM call_webhooks_waiting WHERE received_at < ?", (before,))
    return cursor.rowcount


async def find_number(conn: Connection, phone_number: str) -> tuple[str, str, str | None] | None:
    """(number id, owner, inbound configuration id) of the number the box sold."""
    rows = await conn.execute_fetchall(
        "SELECT id, user_id, inbound_configuration_id FROM phone_numbers WHERE phone_number = ?",
        (phone_number,),
    )
    return (rows[0][0], rows[0][1], rows[0][2]) if rows else None


@dataclass(frozen=True, slots=True)
class UsageRow:
    direction: str
    calls: int
    seconds: int


async def usage(conn: Connection, user_id: str, start: str, end: str) -> list[UsageRow]:
    """Calls started in [start, end) by direction: how many, and their seconds."""
    rows = await conn.execute_fetchall(
        "SELECT direction, count(*), coalesce(sum(duration_seconds), 0) FROM calls"
        " WHERE user_id = ? AND started_at >= ? AND started_at < ? GROUP BY direction",
        (user_id, start, end),
    )
    return [UsageRow(r[0], int(r[1]), int(r[2])) for r in rows]
