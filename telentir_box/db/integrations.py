"""SQL for integrations: connections (sealed tokens), connect states and the delivery
outbox. Plain functions over a connection or a write transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from telentir_box.db.connection import Connection

if TYPE_CHECKING:
    from telentir_box.db.database import Transaction


@dataclass(frozen=True, slots=True)
class IntegrationRow:
    id: str
    user_id: str
    provider: str
    status: str
    account: str
    scopes: str
    tokens: bytes
    expires_at: str | None
    last_error: str
    connected_at: str


@dataclass(frozen=True, slots=True)
class StateRow:
    user_id: str
    provider: str
    redirect_uri: str
    verifier: bytes
    expires_at: str


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    user_id: str
    provider: str
    kind: str
    status: str
    payload: bytes | None
    idempotency_key: str
    attempts: int
    next_attempt_at: str
    last_error: str
    created_at: str
    updated_at: str


_INTEGRATION = (
    "SELECT id, user_id, provider, status, account, scopes, tokens, expires_at, last_error,"
    " connected_at FROM integrations"
)
_DELIVERY = (
    "SELECT id, user_id, provider, kind, status, payload, idempotency_key, attempts,"
    " next_attempt_at, last_error, created_at, updated_at FROM integration_deliveries"
)


def _integration(row: object) -> IntegrationRow:
    return IntegrationRow(*row)  # type: ignore[misc]


def _delivery(row: object) -> DeliveryRow:
    return DeliveryRow(*row)  # type: ignore[misc]


# --- connect states ---------------------------------------------------------------


async def insert_state(tx: Transaction, state_hash: bytes, row: StateRow) -> None:
    # Expired states of every user go as new ones come, so the table stays small.
    await tx.conn.execute("DELETE FROM integration_states WHERE expires_at <= ?", (tx.now,))
    await tx.conn.execute(
        "INSERT INTO integration_states (state_hash, user_id, provider, redirect_uri, verifier, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (state_hash, row.user_id, row.provider, row.redirect_uri, row.verifier, row.expires_at),
    )


async def take_state(tx: Transaction, state_hash: bytes, user_id: str, provider: str) -> StateRow | None:
    """The unexpired state of this user and provider, deleted as it is read (single use);
    None, with nothing deleted, for an unknown, expired or foreign state."""
    rows = await tx.conn.execute_fetchall(
        "DELETE FROM integration_states WHERE state_hash = ? AND user_id = ? AND provider = ?"
        " AND expires_at > ? RETURNING user_id, provider, redirect_uri, verifier, expires_at",
        (state_hash, user_id, provider, tx.now),
    )
    rows = list(rows)
    return StateRow(*rows[0]) if rows else None


# --- connections ------------------------------------------------------------------


async def get_integration(conn: Connection, user_id: str, provider: str) -> IntegrationRow | None:
    rows = list(
        await conn.execute_fetchall(_INTEGRATION + " WHERE user_id = ? AND provider = ?", (user_id, provider))
    )
    return _integration(rows[0]) if rows else None


async def get_integration_by_id(conn: Connection, integration_id: str) -> IntegrationRow | None:
    rows = list(await conn.execute_fetchall(_INTEGRATION + " WHERE id = ?", (integration_id,)))
    return _integration(rows[0]) if rows else None


async def user_integrations(conn: Connection, user_id: str) -> list[IntegrationRow]:
    rows = await conn.execute_fetchall(_INTEGRATION + " WHERE user_id = ? ORDER BY provider", (user_id,))
    return [_integration(row) for row in rows]


async def connected_integrations(conn: Connection, user_id: str) -> list[IntegrationRow]:
    rows = await conn.execute_fetchall(
        _INTEGRATION + " WHERE user_id = ? AND status = 'connected' ORDER BY provider", (user_id,)
    )
    return [_integration(row) for row in rows]


async def upsert_integration(tx: Transaction, row: IntegrationRow) -> None:
    """Connect (or connect again: the row keeps its id, so sealed tokens stay bound)."""
    await tx.conn.execute(
        "INSERT INTO integrations (id, user_id, provider, status, account, scopes, tokens, expires_at,"
        " last_error, connected_at, updated_at) VALUES (?, ?, ?, 'connected', ?, ?, ?, ?, '', ?, ?)"
        " ON CONFLICT (user_id, provider) DO UPDATE SET status = 'connected', account = excluded.account,"
        " scopes = excluded.scopes, tokens = excluded.tokens, expires_at = excluded.expires_at,"
        " last_error = '', connected_at = excluded.connected_at, updated_at = excluded.updated_at",
        (
            row.id,
            row.user_id,
            row.provider,
            row.account,
            row.scopes,
            row.tokens,
            row.expires_at,
            row.connected_at,
            tx.now,
        ),
    )


async def store_tokens(tx: Transaction, integration_id: str, tokens: bytes, expires_at: str | None) -> None:
    await tx.conn.execute(
        "UPDATE integrations SET tokens = ?, expires_at = ?, updated_at = ? WHERE id = ?",
        (tokens, expires_at, tx.now, integration_id),
    )


async def mark_broken(tx: Transaction, integration_id: str, error: str) -> bool:
    """True when this call broke it (it was connected)."""
    cursor = await tx.conn.execute(
        "UPDATE integrations SET status = 'broken', last_error = ?, updated_at = ?"
        " WHERE id = ? AND status = 'connected'",
        (error, tx.now, integration_id),
    )
    return cursor.rowcount > 0


async def set_last_error(tx: Transaction, user_id: str, provider: str, error: str) -> None:
    await tx.conn.execute(
        "UPDATE integrations SET last_error = ?, updated_at = ? WHERE user_id = ? AND provider = ?",
        (error, tx.now, user_id, provider),
    )


async def delete_integration(tx: Transaction, user_id: str, provider: str) -> int:
    """Delete the connection and its undelivered deliveries; returns how many were dropped."""
    await tx.conn.execute("DELETE FROM integrations WHERE user_id = ? AND provider = ?", (user_id, provider))
    cursor = await tx.conn.execute(
        "DELETE FROM integration_deliveries WHERE user_id = ? AND provider = ? AND status != 'delivered'",
        (user_id, provider),
    )
    return cursor.rowcount


# --- outbox -----------------------------------------------------------------------


async def insert_delivery(tx: Transaction, row: DeliveryRow) -> None:
    await tx.conn.execute(
        "INSERT INTO integration_deliveries (id, user_id, provider, kind, status, payload,"
        " idempotency_key, attempts, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, 0, ?, ?, ?)",
        (
            row.id,
            row.user_id,
            row.provider,
            row.kind,
            row.payload,
            row.idempotency_key,
            tx.now,
            tx.now,
            tx.now,
        ),
    )


async def claim_due(tx: Transaction, limit: int, lease_until: str) -> list[DeliveryRow]:
    """Lease up to `limit` due deliveries (not leased, or their lease ran out) to this
    sender and count the attempt; a row leased here is no one else's until lease_until."""
    rows = await tx.conn.execute_fetchall(
        "UPDATE integration_deliveries SET lease_until = ?, attempts = attempts + 1, updated_at = ?"
        " WHERE id IN (SELECT id FROM integration_deliveries WHERE status = 'pending'"
        " AND next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?)"
        " RETURNING id, user_id, provider, kind, status, payload, idempotency_key, attempts,"
        " next_attempt_at, last_error, created_at, updated_at",
        (lease_until, tx.now, tx.now, tx.now, limit),
    )
    return [_delivery(row) for row in rows]


async def mark_delivered(tx: Transaction, delivery_id: str) -> None:
    await tx.conn.execute(
        "UPDATE integration_deliveries SET status = 'delivered', payload = NULL, lease_until = '',"
        " last_error = '', updated_at = ? WHERE id = ? AND status = 'pending'",
        (tx.now, delivery_id),
    )


async def reschedule(tx: Transaction, delivery_id: str, next_attempt_at: str, error: str) -> None:
    await tx.conn.execute(
        "UPDATE integration_deliveries SET next_attempt_at = ?, lease_until = '', last_error = ?,"
        " updated_at = ? WHERE id = ? AND status = 'pending'",
        (next_attempt_at, error, tx.now, delivery_id),
    )


async def mark_dead(tx: Transaction, delivery_id: str, error: str) -> None:
    await tx.conn.execute(
        "UPDATE integration_deliveries SET status = 'dead', lease_until = '', last_error = ?,"
        " updated_at = ? WHERE id = ? AND status = 'pending'",
        (error, tx.now, delivery_id),
    )


async def revive_delivery(tx: Transaction, user_id: str, delivery_id: str) -> bool:
    """A dead delivery of this user back to pending, due now, its attempts counted afresh."""
    cursor = await tx.conn.execute(
        "UPDATE integration_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
        " lease_until = '', updated_at = ? WHERE id = ? AND user_id = ? AND status = 'dead'",
        (tx.now, tx.now, delivery_id, user_id),
    )
    return cursor.rowcount > 0


async def get_delivery(conn: Connection, user_id: str, delivery_id: str) -> DeliveryRow | None:
    rows = list(
        await conn.execute_fetchall(_DELIVERY + " WHERE id = ? AND user_id = ?", (delivery_id, user_id))
    )
    return _delivery(rows[0]) if rows else None


async def page_deliveries(
    conn: Connection, user_id: str, status: str | None, before: str | None, limit: int
) -> list[DeliveryRow]:
    """The user's deliveries, newest first (ids sort by creation time)."""
    sql = _DELIVERY + " WHERE user_id = ?"
    params: tuple[object, ...] = (user_id,)
    if status is not None:
        sql += " AND status = ?"
        params += (status,)
    if before is not None:
        sql += " AND id < ?"
        params += (before,)
    rows = await conn.execute_fetchall(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [_delivery(row) for row in rows]


async def delivery_counts(conn: Connection, user_id: str) -> dict[tuple[str, str], int]:
    """(provider, status) -> count of the user's pending and dead deliveries."""
    rows = await conn.execute_fetchall(
        "SELECT provider, status, COUNT(*) FROM integration_deliveries"
        " WHERE user_id = ? AND status != 'delivered' GROUP BY provider, status",
        (user_id,),
    )
    return {(row[0], row[1]): int(row[2]) for row in rows}
