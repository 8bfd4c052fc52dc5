"""Lead credits storage: the append-only ledger, the sums balances are derived from,
and lead credit reservations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telentir_box.db.connection import Connection
from telentir_box.db.database import Transaction

Kind = Literal["grant", "reserve", "consume", "refund"]
Source = Literal["allowance", "prepaid"]
StripeState = Literal["none", "pending", "debited", "void"]

_RESERVATION_COLUMNS = (
    "id, user_id, period, requested, allowance_reserved, prepaid_reserved, leads_stored,"
    " stripe_state, holder, created_at, settled_at"
)


@dataclass(frozen=True, slots=True)
class ReservationRow:
    id: str
    user_id: str
    period: str
    requested: int
    allowance_reserved: int
    prepaid_reserved: int
    leads_stored: int
    stripe_state: StripeState
    holder: str
    created_at: str
    settled_at: str | None

    @property
    def granted(self) -> int:
        return self.allowance_reserved + self.prepaid_reserved


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    kind: Kind
    source: Source
    amount: int
    period: str
    user_id: str
    reservation_id: str | None
    note: str
    created_at: str


async def insert_entry(
    tx: Transaction,
    kind: Kind,
    source: Source,
    amount: int,
    period: str,
    *,
    user_id: str = "",
    reservation_id: str | None = None,
    note: str = "",
) -> int:
    cursor = await tx.conn.execute(
        "INSERT INTO credit_ledger (kind, source, amount, period, user_id, reservation_id, note)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, source, amount, period, user_id, reservation_id, note),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def _scalar(conn: Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    rows = list(await conn.execute_fetchall(sql, params))
    return int(rows[0][0] or 0)


async def prepaid_balance(conn: Connection) -> int:
    """Prepaid credits neither spent nor held: grants - reserved + refunded."""
    return await _scalar(
        conn,
        "SELECT SUM(CASE kind WHEN 'grant' THEN amount WHEN 'refund' THEN amount"
        " WHEN 'reserve' THEN -amount ELSE 0 END) FROM credit_ledger WHERE source = 'prepaid'",
    )


async def allowance_held(conn: Connection, period: str) -> int:
    """Allowance of `period` spent or held by running streams: reserved - refunded."""
    return await _scalar(
        conn,
        "SELECT SUM(CASE kind WHEN 'reserve' THEN amount WHEN 'refund' THEN -amount ELSE 0 END)"
        " FROM credit_ledger WHERE source = 'allowance' AND period = ?",
        (period,),
    )


async def sum_entries(conn: Connection, kind: Kind, source: Source, period: str | None = None) -> int:
    if period is None:
        return await _scalar(
            conn, "SELECT SUM(amount) FROM credit_ledger WHERE kind = ? AND source = ?", (kind, source)
        )
    return await _scalar(
        conn,
        "SELECT SUM(amount) FROM credit_ledger WHERE kind = ? AND source = ? AND period = ?",
        (kind, source, period),
    )


async def leads_consumed(conn: Connection, period: str) -> int:
    """Leads stored in `period`, from the allowance or paid: consumptions of lead
    reservations (call charges consume prepaid credits with no reservation)."""
    return await _scalar(
        conn,
        "SELECT SUM(amount) FROM credit_ledger"
        " WHERE kind = 'consume' AND period = ? AND reservation_id IS NOT NULL",
        (period,),
    )


async def prepaid_awaiting_stripe(conn: Connection) -> int:
    """Prepaid credits held by open reservations whose Stripe debit is not confirmed yet,
    so the customer's Stripe balance does not reflect them."""
    return await _scalar(
        conn,
        "SELECT SUM(prepaid_reserved) FROM lead_credit_reservations"
        " WHERE settled_at IS NULL AND stripe_state = 'pending'",
    )


async def recent_entries(conn: Connection, user_id: str | None, limit: int) -> list[LedgerEntry]:
    """Newest first; `user_id` None means every user's entries."""
    where, params = ("", ()) if user_id is None else (" WHERE user_id = ?", (user_id,))
    rows = await conn.execute_fetchall(
        "SELECT id, kind, source, amount, period, user_id, reservation_id, note, created_at"
        f" FROM credit_ledger{where} ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [LedgerEntry(*tuple(row)) for row in rows]


async def insert_reservation(tx: Transaction, row: ReservationRow) -> None:
    await tx.conn.execute(
        "INSERT INTO lead_credit_reservations (id, user_id, period, requested, allowance_reserved,"
        " prepaid_reserved, stripe_state, holder) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.id,
            row.user_id,
            row.period,
            row.requested,
            row.allowance_reserved,
            row.prepaid_reserved,
            row.stripe_state,
            row.holder,
        ),
    )


async def get_reservation(conn: Connection, reservation_id: str) -> ReservationRow | None:
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_RESERVATION_COLUMNS} FROM lead_credit_reservations WHERE id = ?", (reservation_id,)
        )
    )
    return ReservationRow(*tuple(rows[0])) if rows else None


async def open_reservations(conn: Connection) -> list[ReservationRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_RESERVATION_COLUMNS} FROM lead_credit_reservations"
        " WHERE settled_at IS NULL ORDER BY created_at"
    )
    return [ReservationRow(*tuple(row)) for row in rows]


async def add_leads_stored(tx: Transaction, reservation_id: str, count: int) -> None:
    await tx.conn.execute(
        "UPDATE lead_credit_reservations SET leads_stored = leads_stored + ? WHERE id = ?",
        (count, reservation_id),
    )


async def set_stripe_state(tx: Transaction, reservation_id: str, state: StripeState) -> None:
    await tx.conn.execute(
        "UPDATE lead_credit_reservations SET stripe_state = ? WHERE id = ?", (state, reservation_id)
    )


async def release_holder(tx: Transaction, reservation_id: str) -> None:
    await tx.conn.execute("UPDATE lead_credit_reservations SET holder = '' WHERE id = ?", (reservation_id,))


async def mark_settled(tx: Transaction, reservation_id: str) -> bool:
    """True if this call settled it; False if it was already settled."""
    cursor = await tx.conn.execute(
        "UPDATE lead_credit_reservations SET settled_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
        " holder = '' WHERE id = ? AND settled_at IS NULL",
        (reservation_id,),
    )
    return cursor.rowcount == 1
