"""HTTP routes for billing: GET /api/billing/state, GET /api/billing/portal, POST
/api/billing/plan, POST /api/credits/add (no body, no content type, as the real client
sends it) and the Stripe webhook POST /api/webhooks/stripe (raw signed body)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from telentir_box.auth.guards import requires_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.billing.checkout import CheckoutService, StripeNotConfigured
from telentir_box.billing.state import BillingState
from telentir_box.billing.webhooks import (
    StripeWebhooks,
    WebhookNotConfigured,
    WebhookRejected,
    verify_stripe_event,
)
from telentir_box.box import Box
from telentir_box.config import ServerConfig
from telentir_box.db import users as users_repo
from telentir_box.errors import Conflict, UpstreamFailed, ValidationFailed
from telentir_box.web.csrf import origin_of
from telentir_box.web.openapi import errors

MAX_RETURN_URL = 2048
ReturnTo = Annotated[str | None, QueryParameter(name="returnTo", max_length=MAX_RETURN_URL)]
TAGS = ["billing"]


class PlanBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    plan: Literal["starter", "pro", "growth", "agency"]
    mode: Literal["upgrade"] | None = None


class SessionUrl(msgspec.Struct):
    url: str


class WebhookReceipt(msgspec.Struct):
    received: bool
    applied: bool


def return_url(server: ServerConfig, return_to: str | None, request_origin: str | None) -> str:
    """Where Stripe sends the user back: `returnTo` if it is on the box's origin (its
    public_url, or while that is unset the origin the request came to) or a
    `cors_origins` entry; by default the box's origin. Anything else is refused: the
    box never redirects to a site it does not know."""
    own = origin_of(server.public_url) if server.public_url else request_origin
    if return_to is None:
        if own is None:
            raise ValidationFailed("returnTo is required while [server] public_url is unset")
        return server.public_url or own
    allowed = {own, *(origin_of(origin) for origin in server.cors_origins)} - {None}
    if not _plain_url(return_to) or origin_of(return_to) not in allowed:
        raise ValidationFailed("returnTo must be a URL on the box's origin or a configured dashboard origin")
    return return_to


def _plain_url(url: str) -> bool:
    """No credentials, whitespace or control characters: nothing a browser or Stripe
    could read as another host than the one checked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    printable = all(32 < ord(char) < 127 for char in url)
    return printable and len(url) <= MAX_RETURN_URL and not parts.username and not parts.password


async def _context(
    request: Request[Any, Any, Any], box: Box, principal: Principal, return_to: str | None
) -> tuple[CheckoutService, str, str]:
    """The checkout service, the caller's email (for a first Stripe customer) and the
    URL Stripe sends the user back to."""
    back = return_url(box.config.server, return_to, origin_of(str(request.base_url)))
    user = await box.db.read(users_repo.get_user, principal.user_id)
    email = user.email if user is not None else ""
    return CheckoutService(box.db, box.config.billing, box.billing.stripe), email, back


@get(
    "/billing/state",
    guards=[requires_auth],
    tags=TAGS,
    summary="The team's plan, usage this period, card on file and balance",
)
async def billing_state(box: NamedDependency[Box]) -> BillingState:
    return await box.billing.state()


@get(
    "/billing/portal",
    guards=[requires_role("admin")],
    tags=TAGS,
    summary="Open a Stripe billing-portal session (owners and admins)",
    responses=errors(UpstreamFailed, StripeNotConfigured),
)
async def billing_portal(
    request: Request[Any, Any, Any],
    box: NamedDependency[Box],
    principal: NamedDependency[Principal],
    return_to: ReturnTo = None,
) -> SessionUrl:
    service, email, back = await _context(request, box, principal, return_to)
    return SessionUrl(await service.portal(email, principal.user_id, back))


@post(
    "/billing/plan",
    guards=[requires_role("admin")],
    tags=TAGS,
    status_code=200,
    summary="Open a Stripe Checkout session for a plan (mode upgrade: change the subscription)",
    responses=errors(Conflict, UpstreamFailed, StripeNotConfigured),
)
async def choose_plan(
    request: Request[Any, Any, Any],
    data: JSONBody[PlanBody],
    box: NamedDependency[Box],
    principal: NamedDependency[Principal],
    return_to: ReturnTo = None,
) -> SessionUrl:
    service, email, back = await _context(request, box, principal, return_to)
    url = await service.plan_checkout(data.plan, data.mode == "upgrade", email, principal.user_id, back)
    return SessionUrl(url)


@post(
    "/credits/add",
    guards=[requires_role("admin")],
    tags=TAGS,
    status_code=200,
    summary="Open a Stripe Checkout session buying the configured credit pack (no request body)",
    responses=errors(UpstreamFailed, StripeNotConfigured),
)
async def add_credits(
    request: Request[Any, Any, Any],
    box: NamedDependency[Box],
    principal: NamedDependency[Principal],
    return_to: ReturnTo = None,
) -> SessionUrl:
    service, email, back = await _context(request, box, principal, return_to)
    return SessionUrl(await service.topup_checkout(email, principal.user_id, back))


@post(
    "/webhooks/stripe",
    tags=TAGS,
    status_code=200,
    summary="Stripe events (signed with Stripe-Signature; 400 WEBHOOK_REJECTED when the signature fails)",
    responses=errors(WebhookRejected, WebhookNotConfigured),
    description=(
        "Stripe's raw event JSON, verified against [billing] stripe_webhook_secret over the exact bytes"
        " received. Each event is applied once: `applied` is false for one seen before. 503"
        " STRIPE_WEBHOOK_NOT_CONFIGURED while the secret is unset."
    ),
)
async def stripe_webhook(request: Request[Any, Any, Any], box: NamedDependency[Box]) -> WebhookReceipt:
    # The raw body, never re-encoded JSON: the signature covers the exact bytes.
    event = verify_stripe_event(
        await request.body(), request.headers.get("stripe-signature"), box.config.billing
    )
    applied = await StripeWebhooks(box.config.billing, box.credits).apply(event)
    return WebhookReceipt(received=True, applied=applied)


billing_routes = [billing_state, billing_portal, choose_plan, add_credits, stripe_webhook]
