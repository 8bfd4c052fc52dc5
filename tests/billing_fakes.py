"""A real local HTTP server in Stripe's place for the billing tests (customers, card on
file, Checkout and billing-portal sessions, subscriptions, customer balance), and
webhooks signed exactly as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.connect_fakes import FakeStripe, Recorded

WEBHOOK_SECRET = "whsec_test_billing"


@dataclass
class FakeStripeBilling(FakeStripe):
    """FakeStripe (customer balance, balance transactions) plus the billing routes.
    `has_card` is what the payment-method list answers; `fail` answers every POST with
    Stripe's 500 api_error."""

    has_card: bool = False
    fail: bool = False
    subscription_item: str = "si_1"
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _replies: dict[str, Any] = field(default_factory=dict)

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and urlsplit(r.path).path == path]

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        path = urlsplit(request.path).path
        if self.fail and request.method == "POST":
            self._send(handler, 500, {"error": {"type": "api_error", "message": "injected failure"}})
        elif request.method == "POST" and path == "/v1/customers":
            self._send(
                handler, 200, self._once(request, lambda n: {"id": f"cus_new{n}", "object": "customer"})
            )
        elif request.method == "GET" and path.endswith("/payment_methods"):
            cards = (
                [{"id": "pm_1", "object": "payment_method", "card": {"last4": "4242"}}]
                if self.has_card
                else []
            )
            self._send(handler, 200, {"object": "list", "data": cards, "has_more": False, "url": path})
        elif request.method == "POST" and path == "/v1/checkout/sessions":
            session = lambda n: {  # noqa: E731
                "id": f"cs_test_{n}",
                "object": "checkout.session",
                "url": f"https://checkout.stripe.test/c/pay/cs_test_{n}",
                "status": "open",
                "mode": request.form()["mode"],
            }
            self._send(handler, 200, self._once(request, session))
        elif request.method == "POST" and path == "/v1/billing_portal/sessions":
            portal = lambda n: {  # noqa: E731
                "id": f"bps_{n}",
                "object": "billing_portal.session",
                "url": f"https://billing.stripe.test/p/session/{n}",
            }
            self._send(handler, 200, self._once(request, portal))
        elif request.method == "GET" and path.startswith("/v1/subscriptions/"):
            sub_id = path.rsplit("/", 1)[1]
            items = {
                "object": "list",
                "data": [{"id": self.subscription_item, "object": "subscription_item"}],
            }
            self._send(
                handler, 200, {"id": sub_id, "object": "subscription", "status": "active", "items": items}
            )
        else:
            super()._handle(handler, request)

    def _once(self, request: Recorded, make: Any) -> Any:
        """Stripe's idempotency: the first answer for a key is replayed."""
        key = request.headers.get("idempotency-key", "")
        with self._lock:
            if key not in self._replies:
                self._replies[key] = make(next(self._ids))
            return self._replies[key]


def stripe_signature(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe-Signature as Stripe makes it: t=<unix time>,v1=hex(HMAC-SHA256(secret, "t.payload"))."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


_event_ids = itertools.count(1)


def stripe_event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> str:
    """A classic snapshot event's JSON, as Stripe sends it."""
    return json.dumps(
        {
            "id": event_id or f"evt_{next(_event_ids)}",
            "object": "event",
            "type": kind,
            "api_version": "2026-10-28.endive",
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
    )


def subscription_checkout(
    session_id: str, subscription: str, plan: str, customer: str = "cus_new1", user_id: str = ""
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "customer": customer,
        "subscription": subscription,
        "client_reference_id": user_id,
        "metadata": {"user_id": user_id, "plan_key": plan},
    }


def topup_checkout(session_id: str, amount: int, user_id: str = "", paid: bool = True) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid" if paid else "unpaid",
        "customer": "cus_new1",
        "amount_total": amount,
        "currency": "usd",
        "client_reference_id": user_id,
        "metadata": {"user_id": user_id, "kind": "topup", "amount_cents": str(amount)},
    }


def subscription(sub_id: str, status: str, price: str, customer: str = "cus_new1") -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "lookup_key": None}}]},
        "metadata": {},
    }


def invoice(
    invoice_id: str, sub_id: str, period_start: int, reason: str = "subscription_cycle"
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_new1",
        "billing_reason": reason,
        "parent": {"subscription_details": {"subscription": sub_id}},
        "lines": {
            "object": "list",
            "data": [{"period": {"start": period_start, "end": period_start + 30 * 86400}}],
        },
        "period_start": period_start - 30 * 86400,
        "period_end": period_start,
    }
