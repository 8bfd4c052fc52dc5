"""The team's billing state and what calls may spend: the plan in force, usage of the
current period (calls from the call-usage seam, leads from the lead ledger), the
prepaid balance, and the enforcement the calls code calls: `authorize_call` before a
call is placed (402 INSUFFICIENT_CREDITS), `settle_call(tx, CallEnded)` in the
transaction that ends it, then `push_call_charges()` after commit (or `finish_call`,
both in one, where the call's end has no transaction of its own)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import msgspec

from telentir_box.billing.checkout import StripeCheckout, StripeUnavailable
from telentir_box.billing.plans import ENTITLED, Plan, catalog_plan, plan_view, require_plan
from telentir_box.config import BillingConfig, PlanConfig
from telentir_box.connect.credits import Credits, period_key
from telentir_box.connect.stripe_billing import StripeFailed
from telentir_box.db import billing as repo
from telentir_box.db import credits as credits_repo
from telentir_box.db.billing import AccountRow, ChargeRow, Direction, UsageRow
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import InsufficientCredits

log = logging.getLogger("telentir_box.billing")
CHARGE_PUSH_INTERVAL_SECONDS = 60.0


class Usage(msgspec.Struct):
    seconds_inbound: int
    seconds_outbound: int
    calls_inbound: int
    calls_outbound: int
    leads: int


class Money(msgspec.Struct):
    currency: str
    amount: float


class BillingState(msgspec.Struct):
    plan: Plan | None
    usage: Usage
    hasCard: bool
    balance: Money


@dataclass(frozen=True, slots=True)
class CallEnded:
    """What the calls code hands over when a call ends: plain figures the box keeps in clear."""

    call_id: str
    user_id: str
    direction: Direction
    seconds: int


@dataclass(frozen=True, slots=True)
class CallCover:
    """Why a call may be placed: the plan's included minutes, or the prepaid balance."""

    covered_by: Literal["plan", "balance"]


@dataclass(frozen=True, slots=True)
class CallCost:
    overage_seconds: int
    cents: int


def period_of(account: AccountRow, now: datetime) -> str:
    """The current billing period's key: the subscription's (from its last paid
    invoice), else the calendar month."""
    return account.period_key or period_key(now)


def entitled_plan(billing: BillingConfig, account: AccountRow) -> PlanConfig | None:
    """The plan whose allowances apply now: none while unpaid (past due) or cancelled."""
    if account.status not in ENTITLED:
        return None
    return catalog_plan(billing, account.plan_key)


def call_cost(
    plan: PlanConfig | None, before: UsageRow, direction: Direction, seconds: int, payg_usd_per_minute: float
) -> CallCost:
    """A call's price beyond the plan, given the team's usage before it: seconds past
    the included minutes at the overage rate, plus the fixed per-call price once the
    direction's included calls are used up. With no plan every second is charged at
    the pay-as-you-go rate."""
    if plan is None:
        return CallCost(seconds, _cents(Decimal(str(payg_usd_per_minute)) * seconds / 60))
    included = plan.included_minutes * 60
    used = before.seconds_inbound + before.seconds_outbound
    overage = max(0, used + seconds - max(included, used))
    if direction == "outbound":
        calls_before, included_calls, fixed = (
            before.calls_outbound,
            plan.included_outbound_calls,
            plan.outbound_fixed_usd,
        )
    else:
        calls_before, included_calls, fixed = (
            before.calls_inbound,
            plan.included_inbound_calls,
            plan.inbound_fixed_usd,
        )
    price = Decimal(str(plan.overage_usd_per_minute)) * overage / 60
    if calls_before >= included_calls:
        price += Decimal(str(fixed))
    return CallCost(overage, _cents(price))


def _cents(usd: Decimal) -> int:
    return math.ceil(usd * 100)


class Billing:
    """The billing service: reads and changes the team's account; `stripe` is None when
    Stripe is not configured (the state then answers from the local plan and ledger)."""

    def __init__(
        self,
        db: Database,
        billing: BillingConfig,
        credits: Credits,
        stripe: StripeCheckout | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.billing = billing
        self.credits = credits
        self.stripe = stripe
        self.clock = clock
        # Lead credits follow the plan: its period and its included leads.
        credits.terms = self.lead_terms
        # One Stripe debit push at a time: the periodic sweep and the one after a call.
        self._pushing = asyncio.Lock()

    async def lead_terms(self, conn: Connection) -> tuple[str, int]:
        """For the lead credits code: the period and the lead allowance of the plan
        (the config's allowance with no plan; none while a plan is past due)."""
        account = await repo.get_account(conn)
        period = period_of(account, self.clock())
        if account.plan_key is None:
            return period, self.billing.lead_allowance
        plan = entitled_plan(self.billing, account)
        return period, plan.included_leads if plan is not None else 0

    async def account(self) -> AccountRow:
        return await self.db.read(repo.get_account)

    async def state(self) -> BillingState:
        async with self.db.reading() as conn:
            account = await repo.get_account(conn)
            period = period_of(account, self.clock())
            calls = await repo.team_usage(conn, period)
            leads = await credits_repo.leads_consumed(conn, period)
        plan = catalog_plan(self.billing, account.plan_key)
        cents = await self.credits.prepaid_cents()
        return BillingState(
            plan=plan_view(account.plan_key, plan) if plan is not None and account.plan_key else None,
            usage=Usage(
                calls.seconds_inbound,
                calls.seconds_outbound,
                calls.calls_inbound,
                calls.calls_outbound,
                leads,
            ),
            hasCard=await self._has_card(account),
            balance=Money(self.billing.currency, cents / 100),
        )

    async def _has_card(self, account: AccountRow) -> bool:
        customer = self.billing.stripe_customer_id or account.stripe_customer_id
        if self.stripe is None or not customer:
            return account.has_card
        try:
            return await self.stripe.has_card(customer)
        except StripeUnavailable:
            return account.has_card  # what the last checkout told us

    async def set_plan(self, key: str | None) -> None:
        """The admin command's change: a plan without Stripe (or none)."""
        if key is not None:
            require_plan(self.billing, key)
        status = "active" if key is not None else "none"
        await self.db.write(lambda tx: repo.update_account(tx, plan_key=key, status=status))

    async def available_credits(self) -> int:
        """Prepaid credits calls may spend: the ledger's, or Stripe's less what is
        reserved or charged but not yet debited there."""
        async with self.db.reading() as conn:
            local = await credits_repo.prepaid_balance(conn)
            awaiting = await credits_repo.prepaid_awaiting_stripe(conn) + await repo.credits_awaiting_stripe(
                conn
            )
        if self.credits.stripe is None:
            return max(0, local)
        return max(0, await self.credits.prepaid_balance() - awaiting)

    async def authorize_call(self, user_id: str, direction: Direction) -> CallCover:
        """Before a call is placed: covered by included minutes left, else by a balance
        that pays at least its first minute; else 402 INSUFFICIENT_CREDITS."""
        async with self.db.reading() as conn:
            account = await repo.get_account(conn)
            usage = await repo.team_usage(conn, period_of(account, self.clock()))
        plan = entitled_plan(self.billing, account)
        if plan is not None and usage.seconds_inbound + usage.seconds_outbound < plan.included_minutes * 60:
            return CallCover("plan")
        first_minute = call_cost(plan, usage, direction, 60, self.billing.payg_usd_per_minute)
        if await self.available_credits() * self.billing.lead_price_cents >= max(1, first_minute.cents):
            return CallCover("balance")
        reason = "no plan" if plan is None else "the plan's included minutes are used up"
        raise InsufficientCredits(
            f"Cannot place the call: {reason} and the prepaid balance does not cover it"
        )

    async def settle_call(self, tx: Transaction, ended: CallEnded) -> ChargeRow:
        """In the transaction that ends the call: count its usage and charge what the
        plan does not include to the balance, in the credit ledger. Once per call id: a
        second settlement returns the first's charge and changes nothing."""
        existing = await repo.get_charge(tx.conn, ended.call_id)
        if existing is not None:
            return existing
        account = await repo.get_account(tx.conn)
        period = period_of(account, self.clock())
        before = await repo.team_usage(tx.conn, period)
        plan = entitled_plan(self.billing, account)
        cost = call_cost(plan, before, ended.direction, ended.seconds, self.billing.payg_usd_per_minute)
        await repo.record_call_usage(tx, ended.user_id, period, ended.direction, ended.seconds)
        owed = math.ceil(cost.cents / self.billing.lead_price_cents)
        if self.credits.stripe is not None:
            # Stripe's customer balance may go into debt: it is added to the next invoice.
            charged, stripe_state = owed, ("pending" if owed else "none")
        else:
            charged, stripe_state = min(owed, max(0, await credits_repo.prepaid_balance(tx.conn))), "none"
        charge = ChargeRow(
            ended.call_id, ended.user_id, period, ended.direction, ended.seconds,
            cost.overage_seconds, cost.cents, charged, owed - charged, stripe_state,
        )  # fmt: skip
        await repo.insert_charge(tx, charge)
        if charged:
            note = f"call overage ({ended.call_id})"
            for kind in ("reserve", "consume"):
                await credits_repo.insert_entry(
                    tx, kind, "prepaid", charged, period, user_id=ended.user_id, note=note
                )
        return charge

    async def finish_call(self, ended: CallEnded) -> ChargeRow:
        """settle_call in a transaction of its own, then the Stripe debit if one is due;
        a Stripe failure leaves the debit to the periodic push."""
        charge = await self.db.write(lambda tx: self.settle_call(tx, ended))
        try:
            await self.push_call_charges()
        except StripeFailed:
            log.warning("could not debit a call charge from the Stripe balance; will retry")
        return charge

    async def push_call_charges(self) -> int:
        """Debit the Stripe-held balance for charges settled but not yet debited (after a
        call, and by the sweep after a crash or a Stripe failure); returns how many."""
        if self.credits.stripe is None:
            return 0
        pushed = 0
        async with self._pushing:
            for charge in await self.db.read(repo.pending_charges):
                await self.credits.stripe.charge_call(charge.call_id, charge.credits_charged)
                await self.db.write(lambda tx, call_id=charge.call_id: repo.set_charge_debited(tx, call_id))
                pushed += 1
        return pushed


async def push_call_charges_periodically(billing: Billing) -> None:
    while True:
        try:
            await billing.push_call_charges()
        except StripeFailed:
            log.warning("could not debit call charges from the Stripe balance; will retry")
        except Exception:
            log.exception("could not push call charges")
        await asyncio.sleep(CHARGE_PUSH_INTERVAL_SECONDS)


def utc_now() -> datetime:
    return datetime.now(UTC)
