"""The lead credit ledger at service level: clamping to allowance + prepaid,
reservation and settlement, append-only books that always balance."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telentir_box.config import BillingConfig
from telentir_box.connect.credits import Credits, period_key, process_holder, record_leads_stored
from telentir_box.db import credits as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.migrate import apply_migrations
from telentir_box.errors import ValidationFailed

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "credits.sqlite3", synchronous="NORMAL", read_pool_size=2)
    await database.open()
    await apply_migrations(database.writer)
    yield database
    await database.close()


def make_credits(db: Database, allowance: int = 10) -> Credits:
    return Credits(db, BillingConfig(lead_allowance=allowance), lambda: NOW)


async def store(credits: Credits, reservation_id: str, count: int) -> None:
    await credits.db.write(lambda tx: record_leads_stored(tx, reservation_id, count))


async def books(credits: Credits) -> dict[str, int]:
    period = credits.period()
    async with credits.db.reading() as conn:
        return {
            "used": await repo.allowance_held(conn, period),
            "balance": await repo.prepaid_balance(conn),
            "grants": await repo.sum_entries(conn, "grant", "prepaid"),
            "consumed": await repo.sum_entries(conn, "consume", "allowance", period)
            + await repo.sum_entries(conn, "consume", "prepaid", period),
        }


def test_credits_period_key_is_the_month() -> None:
    assert period_key(NOW) == "2026-11"


async def test_credits_allowance_only(db: Database) -> None:
    credits = make_credits(db, allowance=10)
    row = await credits.reserve("usr_a", 4)
    assert row is not None
    assert (row.granted, row.allowance_reserved, row.prepaid_reserved) == (4, 4, 0)
    await store(credits, row.id, 4)
    await credits.settle(row.id)
    assert await books(credits) == {"used": 4, "balance": 0, "grants": 0, "consumed": 4}


async def test_credits_clamped_to_allowance_plus_prepaid(db: Database) -> None:
    credits = make_credits(db, allowance=10)
    await credits.grant("usr_admin", 5)
    row = await credits.reserve("usr_a", 100)
    assert row is not None
    assert (row.requested, row.allowance_reserved, row.prepaid_reserved) == (100, 10, 5)
    assert await credits.prepaid_balance() == 0  # held while the stream runs
    await store(credits, row.id, 15)
    await credits.settle(row.id)
    assert await books(credits) == {"used": 10, "balance": 0, "grants": 5, "consumed": 15}


async def test_credits_nothing_available_reserves_nothing(db: Database) -> None:
    credits = make_credits(db, allowance=0)
    assert await credits.reserve("usr_a", 5) is None
    async with db.reading() as conn:
        assert await repo.open_reservations(conn) == []
        assert await repo.recent_entries(conn, None, 10) == []


async def test_credits_early_end_refunds_unused(db: Database) -> None:
    credits = make_credits(db, allowance=3)
    await credits.grant("usr_admin", 10)
    row = await credits.reserve("usr_a", 10)
    assert row is not None
    assert (row.allowance_reserved, row.prepaid_reserved) == (3, 7)
    await store(credits, row.id, 5)
    await credits.settle(row.id)
    # 3 from the allowance, 2 paid, 5 paid credits back.
    assert await books(credits) == {"used": 3, "balance": 8, "grants": 10, "consumed": 5}


async def test_credits_settle_is_idempotent(db: Database) -> None:
    credits = make_credits(db, allowance=5)
    row = await credits.reserve("usr_a", 5)
    assert row is not None
    await store(credits, row.id, 2)
    await credits.settle(row.id)
    await credits.settle(row.id)
    async with db.reading() as conn:
        entries = await repo.recent_entries(conn, None, 100)
    assert sorted((e.kind, e.amount) for e in entries) == [("consume", 2), ("refund", 3), ("reserve", 5)]


async def test_credits_ledger_is_append_only(db: Database) -> None:
    credits = make_credits(db)
    await credits.grant("usr_admin", 5)
    for statement in ("UPDATE credit_ledger SET amount = 500", "DELETE FROM credit_ledger"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await db.write(lambda tx, sql=statement: tx.conn.execute(sql))


async def test_credits_grant_rejects_nonpositive(db: Database) -> None:
    with pytest.raises(ValidationFailed):
        await make_credits(db).grant("usr_admin", 0)


async def test_credits_settle_abandoned_only_settles_dead_holders(db: Database) -> None:
    credits = make_credits(db, allowance=30)
    mine = await credits.reserve("usr_a", 10)
    other = await credits.reserve("usr_a", 10)
    dead = await credits.reserve("usr_a", 10)
    assert mine and other and dead

    async def reassign(tx: Transaction, rid: str, holder: str) -> None:
        await tx.conn.execute("UPDATE lead_credit_reservations SET holder = ? WHERE id = ?", (holder, rid))

    await db.write(lambda tx: reassign(tx, other.id, process_holder(os.getppid())))
    await db.write(lambda tx: reassign(tx, dead.id, "999999999:1"))
    await store(credits, dead.id, 4)
    assert await credits.settle_abandoned() == 1
    async with db.reading() as conn:
        still_open = {row.id for row in await repo.open_reservations(conn)}
    assert still_open == {mine.id, other.id}
    assert (await books(credits))["consumed"] == 4


async def test_credits_books_balance_after_random_sequences(db: Database) -> None:
    """Property: after any sequence of grants, ingestions (complete, early end, failed
    before streaming) the derived balance equals allowance + grants - consumed."""
    rng = random.Random(20261123)
    allowance = 25
    credits = make_credits(db, allowance=allowance)
    for _ in range(120):
        action = rng.choice(["grant", "ingest", "ingest", "ingest", "concurrent"])
        if action == "grant":
            await credits.grant("usr_admin", rng.randint(1, 20))
        else:
            rows = [await credits.reserve(f"usr_{rng.randint(1, 3)}", rng.randint(0, 30))]
            if action == "concurrent":
                rows.append(await credits.reserve("usr_x", rng.randint(0, 30)))
            for row in rows:
                if row is None:
                    continue
                outcome = rng.choice(["all", "some", "none"])
                stored = {"all": row.granted, "some": rng.randint(0, row.granted), "none": 0}[outcome]
                await store(credits, row.id, stored)
            for row in rows:
                if row is not None:
                    await credits.settle(row.id)
        totals = await books(credits)
        remaining = allowance - totals["used"]
        assert remaining >= 0
        assert totals["balance"] >= 0
        assert remaining + totals["balance"] == allowance + totals["grants"] - totals["consumed"]
