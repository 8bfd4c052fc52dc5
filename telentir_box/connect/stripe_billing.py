"""Prepaid lead credits held by Stripe: the configured customer's credit balance is
the prepaid balance, reservations debit it and refunds credit it back, each call with
an idempotency key derived from the reservation so a retry never charges twice."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import stripe

from telentir_box.config import BillingConfig

# The library retries connection failures, 409 and 5xx answers with the same key.
STRIPE_RETRIES = 1
STRIPE_TIMEOUT_SECONDS = 15.0


class StripeFailed(Exception):
    """A Stripe call failed. `rejected` is True when Stripe answered 4xx, so the call
    certainly had no effect; otherwise its outcome is unknown."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


class _BoxHTTPClient(stripe.HTTPClient):
    """Lets the stripe library send through the box's one shared httpx client."""

    name = "telentir-box-httpx"

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__()
        self._http = http

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._http.request(
                method, url, headers=dict(headers), content=post_data, timeout=STRIPE_TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise stripe.APIConnectionError(f"could not reach Stripe: {exc!r}", should_retry=True) from exc
        return response.content, response.status_code, response.headers

    def sleep_async(self, secs: float) -> Any:
        return asyncio.sleep(secs)

    async def close_async(self) -> None:
        """The box owns and closes the shared client."""


class StripeBilling:
    def __init__(self, billing: BillingConfig, http: httpx.AsyncClient) -> None:
        self._billing = billing
        self._client = stripe.StripeClient(
            billing.stripe_secret_key,
            base_addresses={"api": billing.stripe_api_base},
            http_client=_BoxHTTPClient(http),
            max_network_retries=STRIPE_RETRIES,
        )

    @staticmethod
    def configured(billing: BillingConfig) -> bool:
        return bool(billing.stripe_secret_key and billing.stripe_customer_id)

    async def balance_cents(self) -> int:
        """The customer's credit in cents (Stripe keeps credit as a negative balance)."""
        try:
            customer = await self._client.v1.customers.retrieve_async(self._billing.stripe_customer_id)
        except stripe.StripeError as exc:
            raise _failed(exc) from exc
        return max(0, -int(customer.balance or 0))

    async def prepaid_credits(self) -> int:
        return await self.balance_cents() // self._billing.lead_price_cents

    async def debit(self, reservation_id: str, credits: int) -> None:
        await self._transact(
            credits * self._billing.lead_price_cents,
            f"{reservation_id}-reserve",
            f"lead credits reserved ({reservation_id})",
            reservation_id,
        )

    async def credit_back(self, reservation_id: str, credits: int) -> None:
        await self._transact(
            -credits * self._billing.lead_price_cents,
            f"{reservation_id}-refund",
            f"unused lead credits refunded ({reservation_id})",
            reservation_id,
        )

    async def grant(self, grant_id: str, credits: int) -> None:
        await self._transact(
            -credits * self._billing.lead_price_cents,
            f"{grant_id}-grant",
            f"lead credits granted ({grant_id})",
            grant_id,
        )

    async def grant_topup(self, session_id: str, credits: int) -> None:
        """Credit a paid top-up Checkout session; its id keys the call, so a redelivered
        webhook never credits twice."""
        await self._transact(
            -credits * self._billing.lead_price_cents,
            f"topup-{session_id}-grant",
            f"credit top-up ({session_id})",
            session_id,
        )

    async def charge_call(self, call_id: str, credits: int) -> None:
        """Debit a finished call's overage, once per call id."""
        await self._transact(
            credits * self._billing.lead_price_cents,
            f"call-{call_id}-charge",
            f"call overage ({call_id})",
            call_id,
        )

    async def _transact(self, amount: int, idempotency_key: str, description: str, reference: str) -> None:
        try:
            await self._client.v1.customers.balance_transactions.create_async(
                self._billing.stripe_customer_id,
                params={
                    "amount": amount,
                    "currency": self._billing.currency,
                    "description": description,
                    "metadata": {"telentir_box_reference": reference},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _failed(exc) from exc


def _failed(exc: stripe.StripeError) -> StripeFailed:
    status = exc.http_status or 0
    return StripeFailed(
        f"Stripe: {exc.user_message or type(exc).__name__}", rejected=400 <= status < 500 and status != 409
    )
