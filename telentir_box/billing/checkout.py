"""Stripe Checkout (plan subscriptions and credit top-ups) and the billing portal: the
one module that knows those Stripe calls, and where a session may send the user back
to (the box's own origin and the configured dashboard origins only)."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from telentir_box.billing.plans import ENDED, require_plan
from telentir_box.config import BillingConfig, PlanConfig
from telentir_box.connect.stripe_billing import STRIPE_RETRIES, _BoxHTTPClient
from telentir_box.db import billing as repo
from telentir_box.db.database import Database
from telentir_box.errors import AppError, Conflict, UpstreamFailed

CUSTOMER_IDEMPOTENCY_KEY = "telentir-box-team-customer"


class StripeNotConfigured(AppError):
    code, status, default_message = (
        "STRIPE_NOT_CONFIGURED",
        503,
        "Stripe is not configured: set [billing] stripe_secret_key",
    )


class StripePriceNotConfigured(AppError):
    code, status, default_message = "STRIPE_PRICE_NOT_CONFIGURED", 503, "The plan has no Stripe price"


class StripeUnavailable(UpstreamFailed):
    default_message = "The billing service (Stripe) failed; nothing was changed"


class StripeCheckout:
    """The Stripe calls of checkout, portal and card on file, through the box's HTTP client."""

    def __init__(self, billing: BillingConfig, http: httpx.AsyncClient) -> None:
        self._client = stripe.StripeClient(
            billing.stripe_secret_key,
            base_addresses={"api": billing.stripe_api_base},
            http_client=_BoxHTTPClient(http),
            max_network_retries=STRIPE_RETRIES,
        )

    async def create_customer(self, email: str, user_id: str) -> str:
        # One key for the team: two first checkouts at once make one customer.
        customer = await self._call(
            self._client.v1.customers.create_async(
                params={"email": email, "metadata": {"user_id": user_id}},
                options={"idempotency_key": CUSTOMER_IDEMPOTENCY_KEY},
            )
        )
        return str(customer.id)

    async def subscription_checkout(
        self, customer: str, plan_key: str, plan: PlanConfig, user_id: str, back: str
    ) -> str:
        metadata = {"user_id": user_id, "plan_key": plan_key}
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "customer": customer,
                    "line_items": [{"price": plan.stripe_price, "quantity": 1}],
                    "success_url": back,
                    "cancel_url": back,
                    "client_reference_id": user_id,
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                }
            )
        )
        return str(session.url)

    async def topup_checkout(self, customer: str, billing: BillingConfig, user_id: str, back: str) -> str:
        amount = billing.topup_cents
        metadata = {"user_id": user_id, "kind": "topup", "amount_cents": str(amount)}
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "payment",
                    "customer": customer,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": billing.currency,
                                "unit_amount": amount,
                                "product_data": {
                                    "name": f"Credit top-up {amount / 100:.2f} {billing.currency.upper()}"
                                },
                            },
                        }
                    ],
                    "payment_intent_data": {"setup_future_usage": "off_session", "metadata": metadata},
                    "success_url": back,
                    "cancel_url": back,
                    "client_reference_id": user_id,
                    "metadata": metadata,
                }
            )
        )
        return str(session.url)

    async def portal(self, customer: str, back: str, flow: dict[str, Any] | None = None) -> str:
        params: dict[str, Any] = {"customer": customer, "return_url": back}
        if flow is not None:
            params["flow_data"] = flow
        session = await self._call(self._client.v1.billing_portal.sessions.create_async(params=params))
        return str(session.url)

    async def upgrade_portal(self, customer: str, subscription_id: str, price: str, back: str) -> str:
        """A portal session where the user confirms moving the subscription to `price`."""
        subscription = await self._call(self._client.v1.subscriptions.retrieve_async(subscription_id))
        item = subscription["items"]["data"][0]["id"]
        flow = {
            "type": "subscription_update_confirm",
            "subscription_update_confirm": {
                "subscription": subscription_id,
                "items": [{"id": item, "price": price, "quantity": 1}],
            },
            "after_completion": {"type": "redirect", "redirect": {"return_url": back}},
        }
        return await self.portal(customer, back, flow)

    async def has_card(self, customer: str) -> bool:
        methods = await self._call(
            self._client.v1.customers.payment_methods.list_async(
                customer, params={"type": "card", "limit": 1}
            )
        )
        return bool(methods.data)

    @staticmethod
    async def _call(request: Any) -> Any:
        try:
            return await request
        except stripe.StripeError as exc:
            raise StripeUnavailable() from exc


class CheckoutService:
    """Opens Checkout and portal sessions for the team's Stripe customer."""

    def __init__(self, db: Database, billing: BillingConfig, stripe_checkout: StripeCheckout | None) -> None:
        self.db = db
        self.billing = billing
        self.stripe = stripe_checkout

    def _client(self) -> StripeCheckout:
        if self.stripe is None:
            raise StripeNotConfigured()
        return self.stripe

    async def _customer(self, email: str, user_id: str) -> str:
        """The team's Stripe customer: the configured one, the one on record, or a new one."""
        if self.billing.stripe_customer_id:
            return self.billing.stripe_customer_id
        account = await self.db.read(repo.get_account)
        if account.stripe_customer_id:
            return account.stripe_customer_id
        customer = await self._client().create_customer(email, user_id)
        await self.db.write(lambda tx: repo.update_account(tx, stripe_customer_id=customer))
        return customer

    async def plan_checkout(self, plan_key: str, upgrade: bool, email: str, user_id: str, back: str) -> str:
        plan = require_plan(self.billing, plan_key)
        client = self._client()
        if not plan.stripe_price:
            raise StripePriceNotConfigured(f"Set [billing.plans.{plan_key}] stripe_price to sell this plan")
        customer = await self._customer(email, user_id)
        account = await self.db.read(repo.get_account)
        subscribed = bool(account.stripe_subscription_id) and account.status not in ENDED | {"none"}
        if subscribed and plan_key == account.plan_key:
            raise Conflict(f"The team is already on the {plan_key} plan")
        if subscribed and upgrade:
            return await client.upgrade_portal(
                customer, account.stripe_subscription_id, plan.stripe_price, back
            )
        if subscribed:
            raise Conflict('The team already has a subscription; change it with mode "upgrade"')
        return await client.subscription_checkout(customer, plan_key, plan, user_id, back)

    async def topup_checkout(self, email: str, user_id: str, back: str) -> str:
        client = self._client()
        return await client.topup_checkout(await self._customer(email, user_id), self.billing, user_id, back)

    async def portal(self, email: str, user_id: str, back: str) -> str:
        client = self._client()
        return await client.portal(await self._customer(email, user_id), back)
