"""Lead credits with Stripe holding the prepaid balance: a local server plays Stripe
and records the reservation and the refund, each with its idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import BillingConfig, load_config
from telentir_box.connect.credits import Credits, record_leads_stored
from telentir_box.connect.stripe_billing import StripeBilling
from telentir_box.db.database import Database
from telentir_box.db.migrate import apply_migrations
from tests.connect_fakes import FakeConnector, FakeStripe, lead_frames
from tests.test_connect_routes import Users, bearer, leads_body, ledger, team


@pytest.fixture
def stripe_fake() -> Iterator[FakeStripe]:
    with FakeStripe(balance=-1000) as fake:  # $10.00 of credit = 100 leads at 10 cents
        yield fake


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    with FakeConnector() as fake:
        yield fake


@pytest.fixture
def app(env: dict[str, str], stripe_fake: FakeStripe, connector: FakeConnector) -> Iterator[TestClient]:
    environ = {
        **env,
        "TELENTIR_BOX_CONNECT__BASE_URL": connector.url,
        "TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": "2",
        "TELENTIR_BOX_BILLING__STRIPE_SECRET_KEY": "sk_test_box",
        "TELENTIR_BOX_BILLING__STRIPE_CUSTOMER_ID": stripe_fake.customer_id,
        "TELENTIR_BOX_BILLING__STRIPE_API_BASE": stripe_fake.url,
        "TELENTIR_BOX_AUTH__ARGON2_MEMORY_KIB": "1024",
    }
    with TestClient(create_app(load_config(environ=environ))) as client:
        yield client


@pytest.fixture
def users(app: TestClient) -> Users:
    return team(app)


@contextlib.asynccontextmanager
async def stripe_credits(tmp_path: Path, stripe_fake: FakeStripe) -> AsyncIterator[Credits]:
    """The credits service alone, on its own database, with no allowance: every credit
    it reserves is Stripe's."""
    billing = BillingConfig(
        lead_allowance=0,
        stripe_secret_key="sk_test_box",
        stripe_customer_id=stripe_fake.customer_id,
        stripe_api_base=stripe_fake.url,
    )
    db = Database(tmp_path / "stripe.sqlite3", synchronous="NORMAL", read_pool_size=1)
    await db.open()
    await apply_migrations(db.writer)
    try:
        async with httpx.AsyncClient() as http:
            yield Credits(
                db, billing, lambda: datetime(2026, 11, 1, tzinfo=UTC), StripeBilling(billing, http)
            )
    finally:
        await db.close()


def test_credits_stripe_balance_is_the_customers_credit(
    app: TestClient, users: Users, stripe_fake: FakeStripe
) -> None:
    response = app.get("/api/credits", headers=bearer(users["member"]))
    assert response.json() == {"amount": 10.0, "currency": "usd"}
    assert stripe_fake.requests[-1].headers["authorization"] == "Bearer sk_test_box"
    assert ledger(app, users["member"])["balance"] == 100


def test_credits_stripe_reserves_and_refunds_with_idempotency_keys(
    app: TestClient, users: Users, stripe_fake: FakeStripe, connector: FakeConnector
) -> None:
    connector.frames = lambda params: lead_frames(5)
    response = app.post("/api/connect", json=leads_body(10), headers=bearer(users["member"]))
    assert response.status_code == 204, response.text
    assert response.headers["x-telentir-credits-granted"] == "10"
    assert connector.requests[0].json() == {"credits": 10}
    reserve, refund = stripe_fake.transactions()
    reservation_id = ledger(app, users["member"])["entries"][0]["reservation_id"]
    assert reserve.headers["idempotency-key"] == f"{reservation_id}-reserve"
    assert reserve.form()["amount"] == "80"  # 8 paid leads (2 came from the allowance)
    assert reserve.form()["currency"] == "usd"
    assert refund.headers["idempotency-key"] == f"{reservation_id}-refund"
    assert refund.form()["amount"] == "-50"  # 5 stored: 2 allowance + 3 paid; 5 paid back
    assert stripe_fake.balance == -1000 + 80 - 50
    assert app.get("/api/credits", headers=bearer(users["member"])).json()["amount"] == 9.7


def test_credits_stripe_down_reserves_nothing(
    app: TestClient, users: Users, stripe_fake: FakeStripe, connector: FakeConnector
) -> None:
    stripe_fake.down = True
    response = app.post("/api/connect", json=leads_body(10), headers=bearer(users["member"]))
    assert response.status_code == 502
    assert response.json()["code"] == "UPSTREAM_ERROR"
    assert connector.requests == []
    assert stripe_fake.transactions() == []
    stripe_fake.down = False
    view = ledger(app, users["admin"])
    assert (view["entries"], view["used"], view["balance"]) == ([], 0, 100)


def test_credits_stripe_grant_credits_the_customer(
    app: TestClient, users: Users, stripe_fake: FakeStripe
) -> None:
    response = app.post("/api/credits/grants", json={"credits": 7}, headers=bearer(users["admin"]))
    assert response.status_code == 201, response.text
    (grant,) = stripe_fake.transactions()
    assert grant.form()["amount"] == "-70"
    assert grant.headers["idempotency-key"].endswith("-grant")
    assert response.json()["balance"] == 107


async def test_credits_stripe_recovery_replays_with_the_same_keys(
    tmp_path: Path, stripe_fake: FakeStripe
) -> None:
    """A crash after the debit reached Stripe but before the box recorded it: recovery
    replays the debit under the same key (Stripe applies it once) and refunds."""
    async with stripe_credits(tmp_path, stripe_fake) as credits:
        row = await credits.reserve("usr_a", 30)
        assert row is not None
        assert stripe_fake.balance == -1000 + 300
        await credits.db.write(lambda tx: record_leads_stored(tx, row.id, 4))
        await credits.db.write(
            lambda tx: tx.conn.execute(
                "UPDATE lead_credit_reservations SET holder = '999999999:1', stripe_state = 'pending'"
            )
        )
        assert await credits.settle_abandoned() == 1
    keys = [r.headers["idempotency-key"] for r in stripe_fake.transactions()]
    assert keys == [f"{row.id}-reserve", f"{row.id}-reserve", f"{row.id}-refund"]
    assert stripe_fake.balance == -1000 + 40  # 4 leads paid, once


async def test_credits_stripe_concurrent_reservations_never_spend_a_credit_twice(
    tmp_path: Path, stripe_fake: FakeStripe
) -> None:
    """One reservation's balance read is held on the wire (it answers the balance from
    before) while another reserves, debits and finishes: the held one must not grant
    what the other just spent."""
    async with stripe_credits(tmp_path, stripe_fake) as credits:
        release = stripe_fake.stall_next_read()
        held = asyncio.create_task(credits.reserve("usr_a", 100))
        assert await asyncio.to_thread(stripe_fake.read_arrived.wait, 10)
        other = asyncio.create_task(credits.reserve("usr_b", 100))
        # Give the other reservation the chance to run to completion if nothing stops it.
        await asyncio.wait({other}, timeout=1.0)
        release.set()
        rows = [row for row in await asyncio.gather(held, other) if row is not None]
    assert sum(row.prepaid_reserved for row in rows) == 100
    assert stripe_fake.balance == 0  # all $10.00 of credit spent, none of it twice
