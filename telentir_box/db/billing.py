"""Billing storage: the team's account row (plan, Stripe ids, period), the Stripe
events applied, top-ups granted, call usage per period and each finished call's charge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telentir_box.db.connection import Connection
from telentir_box.db.database import Transaction

Direction = Literal["inbound", "outbound"]

_ACCOUNT_COLUMNS = (
    "plan_key, status, stripe_customer_id, stripe_subscription_id, version,"
    " period_key, period_start, has_card"
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    plan_key: str | None
    status: str
    stripe_customer_id: str
    stripe_subscription_id: str
    version: int
    period_key: str
    period_start: int
    has_card: bool


@dataclass(frozen=True, slots=True)
class UsageRow:
    seconds_inbound: int = 0
    seconds_outbound: int = 0
    calls_inbound: int = 0
    calls_outbound: int = 0


@dataclass(frozen=True, slots=True)
class ChargeRow:
    call_id: str
    user_id: str
    period: str
    direction: Direction
    seconds: int
    overage_seconds: int
    cost_cents: int
    credits_charged: int
    credits_uncovered: int
    stripe_state: Literal["none", "pending", "debited"]


async def get_account(conn: Connection) -> AccountRow:
    rows = list(await conn.execute_fetchall(f"SELECT {_ACCOUNT_COLUMNS} FROM billing_account WHERE id = 1"))
    row = tuple(rows[0])
    return AccountRow(*row[:7], has_card=bool(row[7]))


async def update_account(tx: Transaction, **fields: object) -> None:
    """Set the given columns of the account row (names are this module's, never input)."""
    assignments = ", ".join(f"{name} = ?" for name in fields)
    await tx.conn.execute(
        f"UPDATE billing_account SET {assignments}, updated_at = ? WHERE id = 1",
        (*fields.values(), tx.now),
    )


async def mark_event_applied(tx: Transaction, event_id: str, event_type: str, created: int) -> bool:
    """True the first time `event_id` is seen; False for a replay."""
    cursor = await tx.conn.execute(
        "INSERT OR IGNORE INTO stripe_events (id, type, created) VALUES (?, ?, ?)",
        (event_id, event_type, created),
    )
    return cursor.rowcount == 1


async def insert_topup(
    tx: Transaction, session_id: str, user_id: str, amount_cents: int, credits: int
) -> bool:
    """True if this session's top-up is new; False if it was already granted."""
    cursor = await tx.conn.execute(
        "INSERT OR IGNORE INTO credit_topups (session_id, user_id, amount_cents, credits)"
        " VALUES (?, ?, ?, ?)",
        (session_id, user_id, amount_cents, credits),
    )
    return cursor.rowcount == 1


async def topup_granted(conn: Connection, session_id: str) -> bool:
    rows = await conn.execute_fetchall("SELECT 1 FROM credit_topups WHERE session_id = ?", (session_id,))
    return bool(rows)


async def record_call_usage(
    tx: Transaction, user_id: str, period: str, direction: Direction, seconds: int
) -> None:
    """One finished call's seconds, added to its user's period and direction (the
    billing service calls this once per call, from Billing.settle_call)."""
    await tx.conn.execute(
        "INSERT INTO call_usage (user_id, period, direction, seconds, calls) VALUES (?, ?, ?, ?, 1)"
        " ON CONFLICT (user_id, period, direction)"
        " DO UPDATE SET seconds = seconds + excluded.seconds, calls = calls + 1",
        (user_id, period, direction, seconds),
    )


async def team_usage(conn: Connection, period: str) -> UsageRow:
    """The whole team's seconds and calls in `period`: the plan's allowances are the team's."""
    rows = await conn.execute_fetchall(
        "SELECT direction, SUM(seconds), SUM(calls) FROM call_usage WHERE period = ? GROUP BY direction",
        (period,),
    )
    totals = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    inbound, outbound = totals.get("inbound", (0, 0)), totals.get("outbound", (0, 0))
    return UsageRow(inbound[0], outbound[0], inbound[1], outbound[1])


async def insert_charge(tx: Transaction, charge: ChargeRow) -> bool:
    """True if this call's charge is new; False if the call was already settled."""
    cursor = await tx.conn.execute(
        "INSERT OR IGNORE INTO call_charges (call_id, user_id, period, direction, seconds, overage_seconds,"
        " cost_cents, credits_charged, credits_uncovered, stripe_state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            charge.call_id,
            charge.user_id,
            charge.period,
            charge.direction,
            charge.seconds,
            charge.overage_seconds,
            charge.cost_cents,
            charge.credits_charged,
            charge.credits_uncovered,
            charge.stripe_state,
        ),
    )
    return cursor.rowcount == 1


async def get_charge(conn: Connection, call_id: str) -> ChargeRow | None:
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_CHARGE_COLUMNS} FROM call_charges WHERE call_id = ?", (call_id,)
        )
    )
    return ChargeRow(*tuple(rows[0])) if rows else None


async def pending_charges(conn: Connection) -> list[ChargeRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_CHARGE_COLUMNS} FROM call_charges WHERE stripe_state = 'pending' ORDER BY created_at"
    )
    return [ChargeRow(*tuple(row)) for row in rows]


async def credits_awaiting_stripe(conn: Connection) -> int:
    """Call charges not yet debited from the Stripe-held balance."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT SUM(credits_charged) FROM call_charges WHERE stripe_state = 'pending'"
        )
    )
    return int(rows[0][0] or 0)


async def set_charge_debited(tx: Transaction, call_id: str) -> None:
    await tx.conn.execute("UPDATE call_charges SET stripe_state = 'debited' WHERE call_id = ?", (call_id,))


_CHARGE_COLUMNS = (
    "call_id, user_id, period, direction, seconds, overage_seconds, cost_cents, credits_charged,"
    " credits_uncovered, stripe_state"
)
