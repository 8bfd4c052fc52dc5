"""Billing over the app with a real local server in Stripe's place: the walk from
choosing a plan to a new period, the real client's requests as it sends them, roles,
returnTo, signed webhooks (forged, stale, replayed), and the box without Stripe."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.billing.state import CallCover, CallEnded
from telentir_box.config import ConfigError, load_config
from telentir_box.connect.credits import record_leads_stored
from telentir_box.db.billing import ChargeRow
from telentir_box.errors import InsufficientCredits
from tests.billing_fakes import (
    WEBHOOK_SECRET,
    FakeStripeBilling,
    invoice,
    stripe_event,
    stripe_signature,
    subscription_checkout,
    topup_checkout,
)
from tests.test_connect_routes import add_user, bearer

BOX = "https://box.example"
DASHBOARD = "https://app.example"
PLAN = """
[billing.plans.{key}]
name = "{name}"
monthly_price_usd = 49
included_minutes = 10
overage_usd_per_minute = 0.12
included_leads = 5
included_outbound_calls = 2
included_inbound_calls = 2
outbound_fixed_usd = 0.05
inbound_fixed_usd = 0.03
lead_overage_usd_per_lead = 0.10
stripe_price = "price_{key}"
"""


def write_config(directory: Path, stripe_url: str | None) -> Path:
    stripe = (
        f'stripe_secret_key = "sk_test_billing"\nstripe_api_base = "{stripe_url}"\n'
        f'stripe_webhook_secret = "{WEBHOOK_SECRET}"\n'
        if stripe_url
        else ""
    )
    text = (
        f'[data]\ndir = "{directory / "data"}"\n[log]\nformat = "text"\n'
        "[auth]\nargon2_memory_kib = 1024\nargon2_time_cost = 1\n"
        f'[server]\npublic_url = "{BOX}"\ncors_origins = ["{DASHBOARD}"]\n'
        f"[billing]\nlead_price_cents = 10\ntopup_cents = 2000\n{stripe}"
        + PLAN.format(key="starter", name="Starter")
        + PLAN.format(key="pro", name="Pro")
        + PLAN.format(key="growth", name="Growth").replace('"price_growth"', '""')
    )
    path = directory / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripeBilling]:
    with FakeStripeBilling(customer_id="cus_unused") as fake:
        yield fake


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, stripe_fake: FakeStripeBilling) -> Iterator[TestClient]:
    config = load_config(str(write_config(tmp_path_factory.mktemp("billing"), stripe_fake.url)), environ={})
    with TestClient(create_app(config)) as client:
        yield client


@pytest.fixture(scope="module")
def users(app: TestClient) -> dict[str, dict[str, str]]:
    return {
        "owner": add_user(app, "owner@example.com", "owner"),
        "admin": add_user(app, "admin@example.com", "admin"),
        "member": add_user(app, "member@example.com"),
    }


def run(app: TestClient, fn: Callable[[], Awaitable[Any]]) -> Any:
    assert app.blocking_portal is not None
    return app.blocking_portal.call(fn)


def end_call(app: TestClient, call_id: str, user_id: str, direction: str, seconds: int) -> ChargeRow:
    """What the calls code does when a call ends: settle it in its transaction."""
    box = app.app.state.box
    ended = CallEnded(call_id, user_id, direction, seconds)  # type: ignore[arg-type]
    return run(app, lambda: box.db.write(lambda tx: box.billing.settle_call(tx, ended)))


def authorize(app: TestClient, user_id: str) -> CallCover:
    box = app.app.state.box
    return run(app, lambda: box.billing.authorize_call(user_id, "outbound"))


def webhook(app: TestClient, payload: str, signature: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    headers["stripe-signature"] = stripe_signature(payload) if signature is None else signature
    return app.post("/api/webhooks/stripe", content=payload, headers=headers)


def state(app: TestClient, user: dict[str, str]) -> dict[str, Any]:
    response = app.get("/api/billing/state", headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def test_billing_walk_plan_usage_overage_topup_new_period(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    owner, member = users["owner"], users["member"]
    assert state(app, member) == {
        "plan": None,
        "usage": {
            "seconds_inbound": 0,
            "seconds_outbound": 0,
            "calls_inbound": 0,
            "calls_outbound": 0,
            "leads": 0,
        },
        "hasCard": False,
        "balance": {"currency": "usd", "amount": 0.0},
    }
    # 100 prepaid credits of 10 cents: $10.00.
    granted = app.post("/api/credits/grants", json={"credits": 100}, headers=bearer(owner))
    assert granted.status_code == 201, granted.text

    # Choose a plan, as billing.createPlanCheckout sends it.
    back = f"{DASHBOARD}/billing?done=1"
    chosen = app.post(
        "/api/billing/plan", params={"returnTo": back}, json={"plan": "starter"}, headers=bearer(owner)
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json() == {"url": "https://checkout.stripe.test/c/pay/cs_test_2"}
    assert len(stripe_fake.posts("/v1/customers")) == 1
    sent = stripe_fake.posts("/v1/checkout/sessions")[-1].form()
    assert sent["mode"] == "subscription"
    assert sent["customer"] == "cus_new1"
    assert sent["line_items[0][price]"] == "price_starter"
    assert sent["success_url"] == back and sent["cancel_url"] == back
    assert sent["metadata[plan_key]"] == sent["subscription_data[metadata][plan_key]"] == "starter"

    now = int(time.time())
    completed = stripe_event(
        "checkout.session.completed", subscription_checkout("cs_test_2", "sub_1", "starter"), now - 50
    )
    assert webhook(app, completed).json() == {"received": True, "applied": True}
    stripe_fake.has_card = True
    seen = state(app, member)
    assert seen["plan"]["key"] == "starter"
    assert seen["plan"]["includedMinutes"] == 10 and seen["plan"]["outboundFixedUsd"] == 0.05
    assert seen["hasCard"] is True
    period_one = now - 3600
    assert (
        webhook(app, stripe_event("invoice.paid", invoice("in_1", "sub_1", period_one), now - 40)).status_code
        == 200
    )

    # Calls use the included minutes (600 s) ...
    assert authorize(app, member["id"]) == CallCover("plan")
    assert end_call(app, "call_1", member["id"], "outbound", 300).credits_charged == 0
    assert end_call(app, "call_2", member["id"], "inbound", 240).credits_charged == 0
    # ... then overage hits the balance: 120 s at $0.12/min = 24 cents = 3 credits.
    assert end_call(app, "call_3", member["id"], "outbound", 180).credits_charged == 3
    assert authorize(app, member["id"]) == CallCover("balance")
    # Past the included outbound calls: 60 s (12 cents) + the fixed 5 cents = 2 credits.
    fourth = end_call(app, "call_4", member["id"], "outbound", 60)
    assert (fourth.cost_cents, fourth.credits_charged) == (17, 2)
    assert end_call(app, "call_4", member["id"], "outbound", 60) == fourth  # settled once
    assert state(app, member)["balance"]["amount"] == 9.5

    # Leads count against the plan's included leads (5), then the balance (2 more).
    box = app.app.state.box
    reservation = run(app, lambda: box.credits.reserve(member["id"], 7))
    assert (reservation.allowance_reserved, reservation.prepaid_reserved) == (5, 2)
    run(app, lambda: box.db.write(lambda tx: record_leads_stored(tx, reservation.id, 7)))
    run(app, lambda: box.credits.settle(reservation.id))
    seen = state(app, member)
    assert seen["usage"] == {
        "seconds_inbound": 240,
        "seconds_outbound": 540,
        "calls_inbound": 1,
        "calls_outbound": 3,
        "leads": 7,
    }
    assert seen["balance"]["amount"] == 9.3

    # Top up, as credits.createTopUpSession sends it: no body, no content type.
    topup = app.post("/api/credits/add", params={"returnTo": f"{BOX}/credits"}, headers=bearer(owner))
    assert topup.status_code == 200, topup.text
    assert topup.json()["url"].startswith("https://checkout.stripe.test/")
    bought = stripe_fake.posts("/v1/checkout/sessions")[-1].form()
    assert bought["mode"] == "payment"
    assert bought["line_items[0][price_data][unit_amount]"] == "2000"
    assert bought["metadata[kind]"] == "topup"
    paid = stripe_event("checkout.session.completed", topup_checkout("cs_topup", 2000, owner["id"]), now - 30)
    assert webhook(app, paid).json()["applied"] is True
    assert state(app, member)["balance"]["amount"] == 29.3
    # The same session reported again, by a replay or by another event, grants nothing.
    assert webhook(app, paid).json()["applied"] is False
    again = stripe_event(
        "checkout.session.async_payment_succeeded", topup_checkout("cs_topup", 2000), now - 20
    )
    assert webhook(app, again).json()["applied"] is True
    assert state(app, member)["balance"]["amount"] == 29.3

    # The next paid invoice starts a new period: allowances start over, money stays.
    period_two = period_one + 30 * 86400
    assert (
        webhook(app, stripe_event("invoice.paid", invoice("in_2", "sub_1", period_two), now - 10)).status_code
        == 200
    )
    seen = state(app, member)
    assert seen["usage"] == {
        "seconds_inbound": 0,
        "seconds_outbound": 0,
        "calls_inbound": 0,
        "calls_outbound": 0,
        "leads": 0,
    }
    assert seen["balance"]["amount"] == 29.3
    assert authorize(app, member["id"]) == CallCover("plan")
    # A late copy of the first period's invoice does not bring the old period back.
    webhook(app, stripe_event("invoice.paid", invoice("in_1", "sub_1", period_one), now - 5))
    assert state(app, member)["usage"]["leads"] == 0


def test_billing_webhooks_forged_stale_or_unsigned_change_nothing(
    app: TestClient, users: dict[str, dict[str, str]]
) -> None:
    before = state(app, users["member"])
    payload = stripe_event(
        "checkout.session.completed", topup_checkout("cs_forged", 500_000), int(time.time())
    )
    attempts = [
        stripe_signature(payload, secret="whsec_wrong"),
        stripe_signature(payload, timestamp=int(time.time()) - 400),  # older than the 300 s tolerance
        stripe_signature(payload.replace("500000", "900000")),  # signed another body
        "",
        "t=1,v1=nothex",
    ]
    for signature in attempts:
        response = webhook(app, payload, signature)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "WEBHOOK_REJECTED"
    no_header = app.post(
        "/api/webhooks/stripe", content=payload, headers={"content-type": "application/json"}
    )
    assert no_header.status_code == 400
    signed_garbage = '{"not": "an event"}'
    assert webhook(app, signed_garbage).json()["code"] == "WEBHOOK_REJECTED"
    assert state(app, users["member"]) == before


def test_billing_roles_members_read_only(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    member, admin = users["member"], users["admin"]
    sessions = len(stripe_fake.requests)
    for method, path, kwargs in (
        ("POST", "/api/billing/plan", {"json": {"plan": "pro"}}),
        ("GET", "/api/billing/portal", {}),
        ("POST", "/api/credits/add", {}),
    ):
        response = app.request(method, path, headers=bearer(member), **kwargs)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "FORBIDDEN"
        assert app.request(method, path, **kwargs).status_code == 401
    assert app.get("/api/billing/state").status_code == 401
    assert len(stripe_fake.requests) == sessions
    portal = app.get("/api/billing/portal", params={"returnTo": f"{BOX}/settings"}, headers=bearer(admin))
    assert portal.status_code == 200, portal.text
    assert portal.json()["url"].startswith("https://billing.stripe.test/")
    assert stripe_fake.posts("/v1/billing_portal/sessions")[-1].form() == {
        "customer": "cus_new1",
        "return_url": f"{BOX}/settings",
    }


def test_billing_return_to_only_own_or_dashboard_origins(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    sessions = len(stripe_fake.requests)
    for target in (
        "https://evil.example/billing",
        "https://box.example.evil.example/",
        "https://user@box.example/",
        "javascript:alert(1)",
        "//evil.example",
        "http://box.example/",
        "https://box.example:8443/",
        "https://box.example\\@evil.example/",
        "https://box.example/\nLocation: https://evil.example",
        "http://[::1",
    ):
        response = app.get("/api/billing/portal", params={"returnTo": target}, headers=bearer(users["owner"]))
        assert response.status_code == 400, target
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert len(stripe_fake.requests) == sessions
    default = app.get("/api/billing/portal", headers=bearer(users["owner"]))
    assert default.status_code == 200
    assert stripe_fake.posts("/v1/billing_portal/sessions")[-1].form()["return_url"] == BOX


def test_billing_plan_body_validated(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    sessions = len(stripe_fake.requests)
    owner = bearer(users["owner"])
    for body in (
        {"plan": "platinum"},
        {"plan": "pro", "mode": "downgrade"},
        {"plan": "pro", "extra": 1},
        {},
        [],
    ):
        response = app.post("/api/billing/plan", json=body, headers=owner)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
    unsold = app.post("/api/billing/plan", json={"plan": "growth"}, headers=owner)
    assert (unsold.status_code, unsold.json()["code"]) == (503, "STRIPE_PRICE_NOT_CONFIGURED")
    assert "[billing.plans.growth] stripe_price" in unsold.json()["message"]
    form = app.post("/api/billing/plan", content=b"plan=pro", headers={**owner, "content-type": "text/plain"})
    assert form.status_code == 415
    huge = app.post("/api/billing/plan", json={"plan": "pro", "mode": "x" * 2_000_000}, headers=owner)
    assert huge.status_code == 413
    assert len(stripe_fake.requests) == sessions


def test_billing_subscribed_team_upgrades_through_the_portal(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    owner = bearer(users["owner"])
    assert app.post("/api/billing/plan", json={"plan": "pro"}, headers=owner).status_code == 409
    same = app.post("/api/billing/plan", json={"plan": "starter", "mode": "upgrade"}, headers=owner)
    assert (same.status_code, same.json()["code"]) == (409, "CONFLICT")
    upgraded = app.post("/api/billing/plan", json={"plan": "pro", "mode": "upgrade"}, headers=owner)
    assert upgraded.status_code == 200, upgraded.text
    flow = stripe_fake.posts("/v1/billing_portal/sessions")[-1].form()
    assert flow["flow_data[type]"] == "subscription_update_confirm"
    assert flow["flow_data[subscription_update_confirm][subscription]"] == "sub_1"
    assert flow["flow_data[subscription_update_confirm][items][0][id]"] == "si_1"
    assert flow["flow_data[subscription_update_confirm][items][0][price]"] == "price_pro"


def test_billing_stripe_failure_is_502_and_changes_nothing(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    before = state(app, users["member"])
    stripe_fake.fail = True
    try:
        response = app.post("/api/credits/add", headers=bearer(users["owner"]))
    finally:
        stripe_fake.fail = False
    assert response.status_code == 502
    assert response.json()["code"] == "UPSTREAM_ERROR"
    assert state(app, users["member"]) == before


@pytest.fixture
def offline_app(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(str(write_config(tmp_path, None)), environ={}))) as client:
        yield client


def test_billing_without_stripe_state_works_checkout_is_503(offline_app: TestClient, tmp_path: Path) -> None:
    owner = add_user(offline_app, "owner@example.com", "owner")
    for method, path, kwargs in (
        ("POST", "/api/billing/plan", {"json": {"plan": "pro"}}),
        ("GET", "/api/billing/portal", {}),
        ("POST", "/api/credits/add", {}),
    ):
        response = offline_app.request(method, path, headers=bearer(owner), **kwargs)
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "STRIPE_NOT_CONFIGURED"
    hook = offline_app.post("/api/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    assert (hook.status_code, hook.json()["code"]) == (503, "STRIPE_WEBHOOK_NOT_CONFIGURED")
    # No plan and no balance: no call is placed.
    with pytest.raises(InsufficientCredits):
        authorize(offline_app, owner["id"])
    box = offline_app.app.state.box
    run(offline_app, lambda: box.billing.set_plan("pro"))
    assert state(offline_app, owner)["plan"]["key"] == "pro"
    assert state(offline_app, owner)["hasCard"] is False
    assert authorize(offline_app, owner["id"]) == CallCover("plan")


def test_billing_admin_set_plan_command(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    env = {**os.environ, "TELENTIR_BOX_CONFIG": str(config)}

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telentir_box", "admin", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert admin("create-user", "boss@example.com", "--role", "owner").returncode == 0
    assert admin("set-plan", "boss@example.com", "agency").returncode != 0  # not in this catalog
    done = admin("set-plan", "boss@example.com", "starter")
    assert done.returncode == 0, done.stderr
    assert '"plan": "starter"' in done.stdout
    assert '"plan": null' in admin("set-plan", "boss@example.com", "none").stdout
    with sqlite3.connect(tmp_path / "data" / "telentir-box.sqlite3") as db:
        trail = db.execute("SELECT detail FROM auth_audit WHERE event = 'plan_set' ORDER BY id").fetchall()
    assert [json.loads(row[0]) for row in trail] == [
        {"from": "none", "to": "starter"},
        {"from": "starter", "to": "none"},
    ]


def test_billing_topup_from_a_signed_in_browser_needs_no_body_or_type(
    app: TestClient, users: dict[str, dict[str, str]], stripe_fake: FakeStripeBilling
) -> None:
    """The 415 rule reads only routes that take a JSON body: the bodiless top-up passes
    it, from a cookie session as from a Bearer; the origin rule still applies."""
    app.cookies.clear()
    signed_in = app.post(
        "/api/auth/login", json={"email": "admin@example.com", "password": "correct horse battery"}
    )
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["token"]
    app.cookies.clear()
    cookie = {"cookie": f"token={token}", "content-length": "0"}
    sessions = len(stripe_fake.posts("/v1/checkout/sessions"))
    refused = app.post("/api/credits/add", headers=cookie)
    assert (refused.status_code, refused.json()["code"]) == (403, "CSRF_REJECTED")
    allowed = app.post("/api/credits/add", headers={**cookie, "origin": DASHBOARD})
    assert allowed.status_code == 200, allowed.text
    assert "content-type" not in {k.lower() for k in allowed.request.headers}
    assert len(stripe_fake.posts("/v1/checkout/sessions")) == sessions + 1


def test_billing_catalog_keys_are_the_clients(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(PLAN.format(key="platinum", name="Platinum"))
    with pytest.raises(ConfigError, match="platinum"):
        load_config(str(path), environ={})
    assert set(load_config(environ={}).billing.plans) == {"starter", "pro", "growth", "agency"}


def test_billing_live_server_topup_and_signed_webhook(
    live_server_factory: Callable[..., Any],
    user_factory: Callable[..., dict[str, str]],
    stripe_fake: FakeStripeBilling,
) -> None:
    """The real server: the top-up exactly as the real client sends it (no body, no
    content type, Bearer), and Stripe's signed webhook over the raw body."""
    owner = user_factory("live-owner@example.com", "--role", "owner")
    server = live_server_factory(
        TELENTIR_BOX_BILLING__STRIPE_SECRET_KEY="sk_test_live",
        TELENTIR_BOX_BILLING__STRIPE_API_BASE=stripe_fake.url,
        TELENTIR_BOX_BILLING__STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TELENTIR_BOX_SERVER__PUBLIC_URL=BOX,
    )
    with server.client() as http:
        auth = {"authorization": f"Bearer {owner['api_key']}", "accept": "application/json"}
        topup = http.post("/api/credits/add", params={"returnTo": f"{BOX}/credits"}, headers=auth)
        assert topup.status_code == 200, topup.text
        assert "content-type" not in topup.request.headers
        assert topup.json()["url"].startswith("https://checkout.stripe.test/")
        payload = stripe_event(
            "checkout.session.completed", topup_checkout("cs_live", 1000), int(time.time())
        )
        signed = {
            "stripe-signature": stripe_signature(payload),
            "content-type": "application/json; charset=utf-8",
        }
        assert http.post("/api/webhooks/stripe", content=payload, headers=signed).json()["applied"] is True
        assert http.post("/api/webhooks/stripe", content=payload, headers=signed).json()["applied"] is False
        assert http.get("/api/credits", headers=auth).json() == {"amount": 10.0, "currency": "usd"}
        assert http.get("/api/billing/state", headers=auth).json()["balance"] == {
            "currency": "usd",
            "amount": 10.0,
        }
