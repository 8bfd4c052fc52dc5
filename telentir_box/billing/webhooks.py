"""Stripe webhooks: the Stripe-Signature check (the stripe library's), and each event
applied once, in the transaction that records its id, whatever the order: a
subscription snapshot older than the one applied is ignored, a cancelled
subscription stays cancelled, and only a later paid invoice starts a new period."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import stripe

from telentir_box.billing.plans import ENDED, ENTITLED, plan_for_price
from telentir_box.config import BillingConfig
from telentir_box.connect.credits import Credits
from telentir_box.connect.stripe_billing import StripeFailed
from telentir_box.db import billing as repo
from telentir_box.db import credits as credits_repo
from telentir_box.db.billing import AccountRow
from telentir_box.db.database import Transaction
from telentir_box.errors import AppError, UpstreamFailed

log = logging.getLogger("telentir_box.billing")
Event = dict[str, Any]


class WebhookRejected(AppError):
    code, status, default_message = "WEBHOOK_REJECTED", 400, "The webhook's signature does not verify"


class WebhookNotConfigured(AppError):
    code, status, default_message = (
        "STRIPE_WEBHOOK_NOT_CONFIGURED",
        503,
        "Stripe webhooks are not configured: set [billing] stripe_webhook_secret",
    )


def verify_stripe_event(payload: bytes, signature: str | None, billing: BillingConfig) -> Event:
    """The event in `payload` if Stripe-Signature signs it with the webhook secret
    within the tolerance; else 400 WEBHOOK_REJECTED."""
    if not billing.stripe_webhook_secret:
        raise WebhookNotConfigured()
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature or "", billing.stripe_webhook_secret, billing.webhook_tolerance_seconds
        )
        event = json.loads(text)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected() from exc
    valid = (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance(field(event, "data", "object"), dict)
    )
    if not valid:
        raise WebhookRejected("The webhook is not a Stripe event")
    return event


def field(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., or None where a step is missing."""
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def period_key_of(start: int) -> str:
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StripeWebhooks:
    def __init__(self, billing: BillingConfig, credits: Credits) -> None:
        self.billing = billing
        self.credits = credits

    async def apply(self, event: Event) -> bool:
        """Apply `event` once; False when it was applied before (a replay)."""
        obj = event["data"]["object"]
        topup = self._topup_credits(event["type"], obj)
        if topup and await self.credits.db.read(repo.topup_granted, obj["id"]):
            topup = 0  # another event already reported this session
        if topup and self.credits.stripe is not None:
            # Stripe holds the balance: credit it first, keyed by the session, so a
            # retry after a failure below credits it once.
            try:
                await self.credits.stripe.grant_topup(obj["id"], topup)
            except StripeFailed as exc:
                raise UpstreamFailed("could not credit the top-up; Stripe will retry the webhook") from exc
        return await self.credits.db.write(lambda tx: self._apply(tx, event, topup))

    def _topup_credits(self, event_type: str, obj: dict[str, Any]) -> int:
        """Credits a paid top-up session buys, 0 for anything else."""
        paid_session = event_type in (
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
        )
        if not paid_session or obj.get("mode") != "payment" or field(obj, "metadata", "kind") != "topup":
            return 0
        amount = obj.get("amount_total")
        if obj.get("payment_status") != "paid" or not isinstance(amount, int) or amount <= 0:
            return 0
        if obj.get("currency") != self.billing.currency or not isinstance(obj.get("id"), str):
            log.warning("top-up in another currency ignored", extra={"session": obj.get("id")})
            return 0
        return amount // self.billing.lead_price_cents

    async def _apply(self, tx: Transaction, event: Event, topup: int) -> bool:
        if not await repo.mark_event_applied(tx, event["id"], event["type"], event["created"]):
            return False
        obj, created = event["data"]["object"], event["created"]
        account = await repo.get_account(tx.conn)
        kind = event["type"]
        if topup:
            await self._grant_topup(tx, obj, topup)
        elif kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            await self._subscription_checkout(tx, account, obj, created)
        elif kind in ("customer.subscription.created", "customer.subscription.updated"):
            await self._subscription_snapshot(tx, account, obj, created)
        elif kind == "customer.subscription.deleted":
            await self._subscription_deleted(tx, account, obj, created)
        elif kind == "invoice.paid":
            await self._invoice_paid(tx, account, obj, created)
        elif kind == "invoice.payment_failed":
            await self._payment_failed(tx, account, obj, created)
        return True

    async def _grant_topup(self, tx: Transaction, session: dict[str, Any], credits: int) -> None:
        user_id = str(field(session, "metadata", "user_id") or session.get("client_reference_id") or "")
        if await repo.insert_topup(tx, session["id"], user_id, session["amount_total"], credits):
            await credits_repo.insert_entry(
                tx,
                "grant",
                "prepaid",
                credits,
                self.credits.period(),
                user_id=user_id,
                note=f"top-up ({session['id']})",
            )

    async def _subscription_checkout(
        self, tx: Transaction, account: AccountRow, session: dict[str, Any], created: int
    ) -> None:
        subscription = session.get("subscription")
        if session.get("mode") != "subscription" or not isinstance(subscription, str):
            return
        customer = (
            session.get("customer")
            if isinstance(session.get("customer"), str)
            else account.stripe_customer_id
        )
        if _stale(account, subscription, created):
            if not account.stripe_customer_id:
                await repo.update_account(tx, stripe_customer_id=customer)
            return
        plan_key = field(session, "metadata", "plan_key")
        status = (
            "active" if session.get("payment_status") in ("paid", "no_payment_required") else "incomplete"
        )
        await repo.update_account(
            tx,
            plan_key=plan_key if plan_key in self.billing.plans else account.plan_key,
            status=status,
            stripe_customer_id=customer,
            stripe_subscription_id=subscription,
            version=created,
            has_card=1,
        )

    async def _subscription_snapshot(
        self, tx: Transaction, account: AccountRow, sub: dict[str, Any], created: int
    ) -> None:
        if not isinstance(sub.get("id"), str) or _stale(account, sub["id"], created):
            return
        price = field(sub, "items", "data")
        price = (
            price[0].get("price")
            if isinstance(price, list) and price and isinstance(price[0], dict)
            else None
        )
        plan_key = plan_for_price(self.billing, str(field(price, "id") or ""), field(price, "lookup_key"))
        if plan_key is None and field(sub, "metadata", "plan_key") in self.billing.plans:
            plan_key = sub["metadata"]["plan_key"]
        status = str(sub.get("status") or "incomplete")
        current = account.stripe_subscription_id
        if status in ENDED and current and current != sub["id"]:
            return  # an old subscription ending does not touch the one in force
        await repo.update_account(
            tx,
            plan_key=None if status in ENDED else plan_key,
            status=status,
            stripe_customer_id=str(sub.get("customer") or account.stripe_customer_id),
            stripe_subscription_id=sub["id"],
            version=created,
        )

    async def _subscription_deleted(
        self, tx: Transaction, account: AccountRow, sub: dict[str, Any], created: int
    ) -> None:
        current = account.stripe_subscription_id
        if current and sub.get("id") != current:
            return  # an older subscription's end: the team has moved on
        await repo.update_account(
            tx,
            plan_key=None,
            status="canceled",
            stripe_subscription_id=str(sub.get("id") or current),
            version=max(created, account.version),
            period_key="",
        )

    async def _invoice_paid(
        self, tx: Transaction, account: AccountRow, invoice: dict[str, Any], created: int
    ) -> None:
        subscription = _invoice_subscription(invoice)
        current = account.stripe_subscription_id
        # Before the checkout's events (out of order) the invoice names the subscription.
        if subscription is None or (current and subscription != current) or account.status == "canceled":
            return
        if not current:
            await repo.update_account(tx, stripe_subscription_id=subscription)
        starts = [field(line, "period", "start") for line in field(invoice, "lines", "data") or []]
        starts = [start for start in starts if isinstance(start, int)]
        start = max(starts) if starts else invoice.get("period_end")
        if isinstance(start, int) and start > account.period_start:
            await repo.update_account(tx, period_key=period_key_of(start), period_start=start)
        if account.status == "past_due" and created >= account.version:
            await repo.update_account(tx, status="active", version=created)

    async def _payment_failed(
        self, tx: Transaction, account: AccountRow, invoice: dict[str, Any], created: int
    ) -> None:
        subscription = _invoice_subscription(invoice)
        if subscription != account.stripe_subscription_id or created < account.version:
            return
        if account.status in ENTITLED:
            await repo.update_account(tx, status="past_due", version=created)


def _stale(account: AccountRow, subscription: str, created: int) -> bool:
    """An event older than the subscription state applied, or about a subscription
    already cancelled (cancellation is final), changes nothing."""
    if account.status == "canceled" and account.stripe_subscription_id == subscription:
        return True
    return created < account.version


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    subscription = field(invoice, "parent", "subscription_details", "subscription") or invoice.get(
        "subscription"
    )
    return subscription if isinstance(subscription, str) else None
