"""Repository for the short-lived secrets of identity (2FA recovery codes, phone codes,
reset and invite tokens, all stored as keyed hashes) and the auth audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from telentir_box.db.connection import Connection
from telentir_box.db.database import Transaction

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


async def replace_recovery_codes(tx: Transaction, user_id: str, code_hashes: list[bytes]) -> None:
    await tx.conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    await tx.conn.executemany(
        "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
        [(user_id, code_hash) for code_hash in code_hashes],
    )


async def use_recovery_code(tx: Transaction, user_id: str, code_hash: bytes) -> bool:
    cursor = await tx.conn.execute(
        f"UPDATE recovery_codes SET used_at = {_NOW} WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        (user_id, code_hash),
    )
    return cursor.rowcount == 1


@dataclass(frozen=True, slots=True)
class PhoneCodeRow:
    phone: str
    code_hash: bytes
    attempts: int
    sent_at: str
    expires_at: str


async def get_phone_code(conn: Connection, user_id: str) -> PhoneCodeRow | None:
    async with conn.execute(
        "SELECT phone, code_hash, attempts, sent_at, expires_at FROM phone_codes WHERE user_id = ?",
        (user_id,),
    ) as cursor:
        row = await cursor.fetchone()
    return PhoneCodeRow(row[0], bytes(row[1]), row[2], row[3], row[4]) if row else None


async def put_phone_code(
    tx: Transaction, user_id: str, phone: str, code_hash: bytes, sent_at: str, expires_at: str
) -> None:
    await tx.conn.execute(
        "INSERT INTO phone_codes (user_id, phone, code_hash, sent_at, expires_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone, code_hash = excluded.code_hash,"
        " attempts = 0, sent_at = excluded.sent_at, expires_at = excluded.expires_at",
        (user_id, phone, code_hash, sent_at, expires_at),
    )


async def count_phone_attempt(tx: Transaction, user_id: str) -> int:
    async with tx.conn.execute(
        "UPDATE phone_codes SET attempts = attempts + 1 WHERE user_id = ? RETURNING attempts", (user_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def delete_phone_code(tx: Transaction, user_id: str, code_hash: bytes | None = None) -> None:
    """Delete the user's pending code; given `code_hash`, only if it is still that code."""
    await tx.conn.execute(
        "DELETE FROM phone_codes WHERE user_id = ? AND (? IS NULL OR code_hash = ?)",
        (user_id, code_hash, code_hash),
    )


@dataclass(frozen=True, slots=True)
class AuthTokenRow:
    purpose: str
    user_id: str | None
    email: str
    role: str


async def insert_auth_token(
    tx: Transaction,
    token_hash: bytes,
    purpose: str,
    expires_at: str,
    *,
    user_id: str | None = None,
    email: str = "",
    role: str = "member",
    created_by: str | None = None,
) -> None:
    await tx.conn.execute(
        "INSERT INTO auth_tokens (token_hash, purpose, user_id, email, role, created_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_hash, purpose, user_id, email, role, created_by, expires_at),
    )


async def find_auth_token(conn: Connection, token_hash: bytes, purpose: str, now: str) -> AuthTokenRow | None:
    """An unexpired, unused token, left as it is (use_auth_token claims it)."""
    async with conn.execute(
        "SELECT purpose, user_id, email, role FROM auth_tokens WHERE token_hash = ? AND purpose = ?"
        " AND used_at IS NULL AND expires_at > ?",
        (token_hash, purpose, now),
    ) as cursor:
        row = await cursor.fetchone()
    return AuthTokenRow(row[0], row[1], row[2], row[3]) if row else None


async def use_auth_token(tx: Transaction, token_hash: bytes, purpose: str, now: str) -> AuthTokenRow | None:
    """Mark an unexpired, unused token used and return it; None if there is none such."""
    async with tx.conn.execute(
        "UPDATE auth_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL"
        " AND expires_at > ? RETURNING purpose, user_id, email, role",
        (now, token_hash, purpose, now),
    ) as cursor:
        row = await cursor.fetchone()
    return AuthTokenRow(row[0], row[1], row[2], row[3]) if row else None


async def insert_audit(
    tx: Transaction,
    event: str,
    *,
    user_id: str | None = None,
    actor_id: str | None = None,
    ip: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    await tx.conn.execute(
        "INSERT INTO auth_audit (event, user_id, actor_id, ip, detail) VALUES (?, ?, ?, ?, ?)",
        (event, user_id, actor_id, ip, json.dumps(detail or {}, separators=(",", ":"))),
    )


class AuditRow(msgspec.Struct, frozen=True):
    """One audit row; also what the audit listings answer, once `detail` is filtered."""

    id: int
    event: str
    user_id: str | None
    actor_id: str | None
    ip: str
    detail: dict[str, Any]
    created_at: str


async def page_audit(
    conn: Connection, *, user_id: str | None, event: str | None, before: int | None, limit: int
) -> list[AuditRow]:
    """Audit rows newest first, those older than `before` (an id) when given; a
    negative `limit` means all of them."""
    clauses: list[str] = ["1"]
    params: list[object] = []
    for clause, value in (("user_id = ?", user_id), ("event = ?", event), ("id < ?", before)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    rows = await conn.execute_fetchall(
        "SELECT id, event, user_id, actor_id, ip, detail, created_at FROM auth_audit"
        f" WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [AuditRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]
