"""Stripe events at service level, each signed as Stripe signs it and verified by the
box: applied once whatever the order, past due and cancellation, top-ups; call
charges that keep the credit ledger balanced (the property test extended to calls),
also when Stripe holds the balance and fails or the box stops between a call's end
and its debit."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from telentir_box.billing.state import Billing, CallCover, CallEnded
from telentir_box.billing.webhooks import StripeWebhooks, verify_stripe_event
from telentir_box.config import BillingConfig, PlanConfig
from telentir_box.connect.credits import Credits, record_leads_stored
from telentir_box.connect.stripe_billing import StripeBilling, StripeFailed
from telentir_box.db import billing as repo
from telentir_box.db import credits as credits_repo
from telentir_box.db.database import Database
from telentir_box.db.migrate import apply_migrations
from telentir_box.errors import InsufficientCredits, UpstreamFailed
from tests.billing_fakes import (
    WEBHOOK_SECRET,
    invoice,
    stripe_event,
    stripe_signature,
    subscription,
    subscription_checkout,
    topup_checkout,
)
from tests.connect_fakes import FakeStripe

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SMALL = PlanConfig(
    name="Starter",
    monthly_price_usd=49,
    included_minutes=2,
    overage_usd_per_minute=0.12,
    included_leads=5,
    included_outbound_calls=1,
    included_inbound_calls=1,
    outbound_fixed_usd=0.05,
    inbound_fixed_usd=0.03,
    lead_overage_usd_per_lead=0.1,
    stripe_price="price_starter",
)
PRO = PlanConfig(
    **{**{f: getattr(SMALL, f) for f in SMALL.__struct_fields__}, "name": "Pro", "stripe_price": "price_pro"}
)


def billing_config(**extra: Any) -> BillingConfig:
    return BillingConfig(
        stripe_webhook_secret=WEBHOOK_SECRET, plans={"starter": SMALL, "pro": PRO}, lead_allowance=3, **extra
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "billing.sqlite3", synchronous="NORMAL", read_pool_size=2)
    await database.open()
    await apply_migrations(database.writer)
    yield database
    await database.close()


class Books:
    """The services over one database, and Stripe's events delivered through the
    signature check."""

    def __init__(self, db: Database, config: BillingConfig, stripe: StripeBilling | None = None) -> None:
        self.config = config
        self.credits = Credits(db, config, lambda: NOW, stripe)
        self.billing = Billing(db, config, self.credits, None, lambda: NOW)
        self.hooks = StripeWebhooks(config, self.credits)

    async def deliver(
        self, kind: str, obj: dict[str, Any], created: int, event_id: str | None = None
    ) -> bool:
        payload = stripe_event(kind, obj, created, event_id)
        event = verify_stripe_event(payload.encode(), stripe_signature(payload), self.config)
        return await self.hooks.apply(event)

    async def account(self) -> repo.AccountRow:
        return await self.billing.account()

    async def end_call(self, call_id: str, direction: str, seconds: int) -> repo.ChargeRow:
        ended = CallEnded(call_id, "usr_a", direction, seconds)  # type: ignore[arg-type]
        return await self.credits.db.write(lambda tx: self.billing.settle_call(tx, ended))

    async def balance(self) -> int:
        return await self.credits.db.read(credits_repo.prepaid_balance)


@pytest.fixture
def books(db: Database) -> Books:
    return Books(db, billing_config())


async def test_billing_subscription_snapshots_apply_newest_first_wins(books: Books) -> None:
    assert await books.deliver(
        "customer.subscription.updated", subscription("sub_1", "active", "price_pro"), 200
    )
    assert await books.deliver(
        "customer.subscription.created", subscription("sub_1", "incomplete", "price_starter"), 100
    )
    assert await books.deliver(
        "checkout.session.completed", subscription_checkout("cs_1", "sub_1", "starter"), 90
    )
    account = await books.account()
    assert (account.plan_key, account.status, account.stripe_subscription_id, account.version) == (
        "pro",
        "active",
        "sub_1",
        200,
    )


async def test_billing_duplicate_event_changes_nothing(books: Books) -> None:
    assert await books.deliver(
        "customer.subscription.updated", subscription("sub_1", "active", "price_pro"), 100, "evt_x"
    )
    assert not await books.deliver(
        "customer.subscription.updated", subscription("sub_1", "active", "price_pro"), 100, "evt_x"
    )
    assert not await books.deliver(
        "customer.subscription.deleted", subscription("sub_1", "canceled", "price_pro"), 300, "evt_x"
    )
    assert (await books.account()).plan_key == "pro"


async def test_billing_cancellation_is_final_for_its_subscription(books: Books) -> None:
    await books.deliver("checkout.session.completed", subscription_checkout("cs_1", "sub_1", "pro"), 100)
    await books.deliver("customer.subscription.deleted", subscription("sub_1", "canceled", "price_pro"), 300)
    await books.deliver("customer.subscription.updated", subscription("sub_1", "active", "price_pro"), 300)
    await books.deliver("invoice.paid", invoice("in_late", "sub_1", 1_800_000_000), 301)
    account = await books.account()
    assert (account.plan_key, account.status, account.period_key) == (None, "canceled", "")
    # A new subscription afterwards is a new start.
    await books.deliver("checkout.session.completed", subscription_checkout("cs_2", "sub_2", "starter"), 400)
    await books.deliver("customer.subscription.updated", subscription("sub_1", "canceled", "price_pro"), 500)
    await books.deliver("customer.subscription.deleted", subscription("sub_1", "canceled", "price_pro"), 501)
    account = await books.account()
    assert (account.plan_key, account.status, account.stripe_subscription_id) == (
        "starter",
        "active",
        "sub_2",
    )


async def test_billing_invoice_before_checkout_still_starts_the_period(books: Books) -> None:
    await books.deliver("invoice.paid", invoice("in_1", "sub_1", 1_790_000_000, "subscription_create"), 101)
    await books.deliver("checkout.session.completed", subscription_checkout("cs_1", "sub_1", "starter"), 100)
    account = await books.account()
    assert (account.plan_key, account.status, account.stripe_subscription_id) == (
        "starter",
        "active",
        "sub_1",
    )
    assert account.period_key == "2026-09-21T14:13:20Z"  # the new line's start


async def test_billing_past_due_stops_allowances_until_paid(books: Books) -> None:
    await books.deliver("checkout.session.completed", subscription_checkout("cs_1", "sub_1", "starter"), 100)
    assert await books.billing.authorize_call("usr_a", "outbound") == CallCover("plan")
    await books.deliver("invoice.payment_failed", invoice("in_2", "sub_1", 1_790_000_000), 200)
    assert (await books.account()).status == "past_due"
    with pytest.raises(InsufficientCredits) as refused:
        await books.billing.authorize_call("usr_a", "outbound")
    assert refused.value.status == 402
    assert await books.credits.reserve("usr_a", 5) is None  # no included leads either
    assert (await books.billing.state()).plan is not None  # the plan is still the team's
    await books.deliver("invoice.paid", invoice("in_2", "sub_1", 1_790_000_000), 300)
    assert await books.billing.authorize_call("usr_a", "outbound") == CallCover("plan")


async def test_billing_topup_granted_only_when_paid_and_once(books: Books) -> None:
    assert await books.deliver("checkout.session.completed", topup_checkout("cs_t", 2000, paid=False), 100)
    assert await books.balance() == 0
    assert await books.deliver("checkout.session.async_payment_succeeded", topup_checkout("cs_t", 2000), 200)
    assert await books.deliver("checkout.session.async_payment_succeeded", topup_checkout("cs_t", 2000), 201)
    assert await books.balance() == 200
    other_currency = {**topup_checkout("cs_eur", 2000), "currency": "eur"}
    await books.deliver("checkout.session.completed", other_currency, 300)
    assert await books.balance() == 200


async def test_billing_call_cost_and_shortfall(books: Books) -> None:
    """No plan: every second at the pay-as-you-go rate ($0.20/min); what the balance
    cannot pay is recorded, never taken below zero."""
    with pytest.raises(InsufficientCredits):
        await books.billing.authorize_call("usr_a", "inbound")
    await books.credits.grant("usr_admin", 5)
    assert await books.billing.authorize_call("usr_a", "inbound") == CallCover("balance")
    charge = await books.end_call("call_1", "inbound", 90)  # 30 cents = 3 credits
    assert (charge.cost_cents, charge.credits_charged, charge.credits_uncovered) == (30, 3, 0)
    charge = await books.end_call("call_2", "inbound", 600)  # $2.00 = 20 credits, 2 left
    assert (charge.credits_charged, charge.credits_uncovered) == (2, 18)
    assert await books.balance() == 0


@pytest.fixture
def stripe_fake() -> Iterator[FakeStripe]:
    with FakeStripe(balance=-1000) as fake:  # $10.00 of credit at Stripe
        yield fake


async def test_billing_stripe_held_balance_call_debit_survives_failure_and_restart(
    db: Database, stripe_fake: FakeStripe
) -> None:
    config = billing_config(
        stripe_secret_key="sk_test",
        stripe_customer_id=stripe_fake.customer_id,
        stripe_api_base=stripe_fake.url,
    )
    async with httpx.AsyncClient() as http:
        books = Books(db, config, StripeBilling(config, http))
        assert await books.billing.authorize_call("usr_a", "outbound") == CallCover("balance")
        stripe_fake.down = True
        charge = await books.end_call("call_1", "outbound", 120)  # 40 cents = 4 credits
        assert (charge.credits_charged, charge.stripe_state) == (4, "pending")
        with pytest.raises(StripeFailed):
            await books.billing.push_call_charges()
        stripe_fake.down = False
        # The pending debit already counts against what calls and leads may spend.
        assert await books.billing.available_credits() == 96
        # A new process (the crash between the call's end and its debit) pushes it once.
        restarted = Books(db, config, StripeBilling(config, http))
        assert await restarted.billing.push_call_charges() == 1
        assert await restarted.billing.push_call_charges() == 0
        assert stripe_fake.balance == -1000 + 40
        # With Stripe up, finishing a call debits it at once.
        second = await restarted.billing.finish_call(CallEnded("call_2", "usr_a", "inbound", 60))
        assert second.stripe_state == "pending"  # as settled; the debit followed
        assert (await db.read(repo.get_charge, "call_2")).stripe_state == "debited"
        assert stripe_fake.balance == -1000 + 40 + 20
        again = await restarted.billing.finish_call(CallEnded("call_2", "usr_a", "inbound", 60))
        assert (again.credits_charged, again.stripe_state) == (2, "debited")  # the first one's
        assert stripe_fake.balance == -1000 + 60
        # A top-up credits the Stripe balance once, however often the webhook comes; while
        # Stripe fails the event is refused (Stripe redelivers it) and nothing is booked.
        stripe_fake.down = True
        with pytest.raises(UpstreamFailed):
            await restarted.deliver("checkout.session.completed", topup_checkout("cs_t", 2000), 99, "evt_t")
        assert stripe_fake.balance == -1000 + 60
        assert not await db.read(repo.topup_granted, "cs_t")
        stripe_fake.down = False
        await restarted.deliver("checkout.session.completed", topup_checkout("cs_t", 2000), 100, "evt_t")
        assert stripe_fake.balance == -1000 + 60 - 2000
        asked = len(stripe_fake.requests)
        await restarted.deliver("checkout.session.async_payment_succeeded", topup_checkout("cs_t", 2000), 101)
        assert len(stripe_fake.requests) == asked  # already granted: Stripe is not asked again
        assert (await restarted.billing.state()).balance.amount == 29.4


async def test_billing_books_balance_with_calls_after_random_sequences(books: Books) -> None:
    """Property: across grants, top-up webhooks (replayed), lead ingestions, calls
    (settled twice, some uncovered) and new periods, the prepaid balance is grants less
    what was consumed, never negative; each call is charged once, exactly its cost."""
    rng = random.Random(20261201)
    period_start = 1_790_000_000
    await books.deliver("checkout.session.completed", subscription_checkout("cs_p", "sub_1", "starter"), 1)
    calls: list[str] = []
    for step in range(150):
        action = rng.choice(["grant", "topup", "leads", "call", "call", "call", "repeat", "period"])
        if action == "grant":
            await books.credits.grant("usr_admin", rng.randint(1, 20))
        elif action == "topup":
            session = f"cs_{rng.randint(1, 10)}"  # some sessions come back: granted once
            await books.deliver(
                "checkout.session.completed", topup_checkout(session, rng.choice([500, 2000])), step + 2
            )
        elif action == "leads":
            row = await books.credits.reserve("usr_a", rng.randint(0, 12))
            if row is not None:
                count = rng.randint(0, row.granted)
                await books.credits.db.write(lambda tx, r=row, n=count: record_leads_stored(tx, r.id, n))
                await books.credits.settle(row.id)
        elif action == "call":
            calls.append(f"call_{step}")
            await books.end_call(calls[-1], rng.choice(["inbound", "outbound"]), rng.randint(0, 400))
        elif action == "repeat" and calls:
            first = await books.credits.db.read(repo.get_charge, calls[-1])
            assert await books.end_call(calls[-1], "outbound", 999) == first
        elif action == "period":
            period_start += 30 * 86400
            await books.deliver("invoice.paid", invoice(f"in_{step}", "sub_1", period_start), step + 2)
        async with books.credits.db.reading() as conn:
            balance = await credits_repo.prepaid_balance(conn)
            grants = await credits_repo.sum_entries(conn, "grant", "prepaid")
            consumed = await credits_repo.sum_entries(conn, "consume", "prepaid")
            charges = [await repo.get_charge(conn, call_id) for call_id in calls]
            call_entries = await conn.execute_fetchall(
                "SELECT note, kind, amount FROM credit_ledger"
                " WHERE reservation_id IS NULL AND kind != 'grant'"
            )
            period, allowance = await books.billing.lead_terms(conn)
            used = await credits_repo.allowance_held(conn, period)
        assert balance >= 0
        assert balance == grants - consumed
        assert 0 <= used <= allowance
        charged = [c for c in charges if c is not None and c.credits_charged]
        assert sorted((e[0], e[1], e[2]) for e in call_entries) == sorted(
            (f"call overage ({c.call_id})", kind, c.credits_charged)
            for c in charged
            for kind in ("reserve", "consume")
        )
        for charge in charges:
            assert charge is not None
            owed = math.ceil(charge.cost_cents / books.config.lead_price_cents)
            assert charge.credits_charged + charge.credits_uncovered == owed
