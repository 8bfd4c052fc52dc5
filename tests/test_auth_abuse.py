"""Brute-force limits that trip and release as configured (also under concurrent
guesses), password reset by email through a real local SMTP server, and the audit
trail of auth events."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.auth.ratelimit import RateLimiter
from telentir_box.config import Config
from telentir_box.db import identity as identity_repo
from telentir_box.errors import RateLimited
from tests.auth_support import (
    FAST_ENV,
    OWNER,
    PASSWORD,
    Inbox,
    LimiterClock,
    all_audit,
    bearer,
    call,
    login,
    register,
    set_clock,
    setup_owner,
    setup_token,
    smtp_server,
    totp_code,
)
from tests.conftest import free_port

MAX_ATTEMPTS = 5
LOCKOUT = 900
GUESSES = 60


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    port = free_port()
    with smtp_server(port) as received:
        yield received, port


@pytest.fixture
def env(env: dict[str, str], inbox: tuple[Inbox, int]) -> dict[str, str]:
    return {
        **env,
        **FAST_ENV,
        "TELENTIR_BOX_AUTH__MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "TELENTIR_BOX_AUTH__LOCKOUT_SECONDS": str(LOCKOUT),
        "TELENTIR_BOX_AUTH__REGISTRATION": "open",
        "TELENTIR_BOX_SMTP__HOST": "127.0.0.1",
        "TELENTIR_BOX_SMTP__PORT": str(inbox[1]),
        "TELENTIR_BOX_SMTP__STARTTLS": "false",
        "TELENTIR_BOX_SERVER__PUBLIC_URL": "https://box.example.com",
    }


def audit_events(client: TestClient) -> list[str]:
    box = client.app.state.box

    async def read() -> list[identity_repo.AuditRow]:
        async with box.db.reading() as conn:
            return await all_audit(conn)

    with client.portal() as portal:
        return [row.event for row in portal.call(read)]


def test_login_rate_limit_trips_and_releases(client: TestClient, data_dir: Path) -> None:
    clock = LimiterClock(client)
    setup_owner(client, data_dir)
    for _ in range(MAX_ATTEMPTS):
        assert login(client, OWNER, "wrong password!!").status_code == 401
    locked = login(client, OWNER)
    assert locked.status_code == 429
    assert locked.json()["code"] == "RATE_LIMITED"
    assert locked.json()["status"] == "error"
    assert locked.headers["retry-after"] == str(LOCKOUT)
    clock.advance(LOCKOUT - 1)
    assert login(client, OWNER).status_code == 429
    clock.advance(2)
    released = login(client, OWNER)
    assert released.status_code == 200
    assert released.headers["set-cookie"].count("Secure") == 1
    events = audit_events(client)
    assert events.count("login_failed") == MAX_ATTEMPTS
    assert events.count("lockout") == 1
    assert "login_ok" in events


@asynccontextmanager
async def concurrent_client(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop, so gathered requests really overlap (Litestar's test
    clients run each request to completion in a portal thread)."""
    app = create_app(config)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://box") as client:
            client.app = app  # type: ignore[attr-defined]  # for LimiterClock and set_clock
            yield client


@pytest.mark.parametrize("target", ["login", "2fa"])
async def test_ratelimit_admits_no_more_concurrent_guesses_than_the_limit(
    config: Config, data_dir: Path, target: str
) -> None:
    async with concurrent_client(config) as client:
        LimiterClock(client)  # type: ignore[arg-type]  # a lockout that cannot end mid-test
        moment = set_clock(client, datetime.now(UTC))  # type: ignore[arg-type]
        body = {"setupToken": setup_token(data_dir), "email": OWNER, "password": PASSWORD}
        owner = (await client.post("/api/setup-super-admin", json=body)).json()["token"]
        client.cookies.clear()
        if target == "login":
            path, guess, headers, evaluated = (
                "/api/auth/login",
                {"email": OWNER, "password": "x" * 12},
                {},
                401,
            )
        else:
            secret = (await client.post("/api/auth/2fa/enable", headers=bearer(owner))).json()["secret"]
            code = {"code": totp_code(secret, at=moment)}
            assert (await client.post("/api/auth/2fa/confirm", headers=bearer(owner), json=code)).is_success
            login_body = {"email": OWNER, "password": PASSWORD}
            pending = (await client.post("/api/auth/login", json=login_body)).json()["token"]
            client.cookies.clear()
            valid = {totp_code(secret, step, at=moment) for step in (-1, 0, 1)}
            wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
            path, guess, headers, evaluated = (
                "/api/auth/2fa/authenticate",
                {"code": wrong},
                bearer(pending),
                400,
            )

        responses = await asyncio.gather(
            *(client.post(path, json=guess, headers=headers) for _ in range(GUESSES))
        )

        assert Counter(r.status_code for r in responses) == {
            evaluated: MAX_ATTEMPTS,
            429: GUESSES - MAX_ATTEMPTS,
        }
        assert {r.json()["code"] for r in responses if r.status_code == 429} == {"RATE_LIMITED"}
        async with client.app.state.box.db.reading() as conn:  # type: ignore[attr-defined]
            events = [row.event for row in await all_audit(conn)]
        assert events.count(f"{target}_failed") == MAX_ATTEMPTS
        assert events.count("lockout") == 1


def test_password_reset_by_email_is_single_use(
    client: TestClient, data_dir: Path, inbox: tuple[Inbox, int]
) -> None:
    setup_owner(client, data_dir)
    token = login(client, OWNER).json()["token"]
    unknown = call(client, "POST", "/api/auth/password/forgot", json={"email": "ghost@example.com"})
    known = call(client, "POST", "/api/auth/password/forgot", json={"email": OWNER})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json() == {"status": "ok"}
    assert len(inbox[0].messages) == 1
    message = inbox[0].messages[0]
    assert message["To"] == OWNER
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    link = re.search(r"https://box\.example\.com/reset-password\?token=(\S+)", payload.decode())
    assert link is not None
    reset_token = link.group(1)
    new = "my new password is long"

    # a forged token is refused as such (this address has attempts left: 2 of 5 spent)
    forged = {"token": "tbr_" + "A" * 43, "password": new, "confirmPassword": new}
    refused = call(client, "POST", "/api/auth/password/reset", json=forged)
    assert refused.status_code == 400
    assert refused.json()["code"] == "VALIDATION_ERROR"
    assert "invalid" in refused.json()["message"]

    mismatch = {"token": reset_token, "password": new, "confirmPassword": "other password here"}
    assert call(client, "POST", "/api/auth/password/reset", json=mismatch).status_code == 400
    body = {"token": reset_token, "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password/reset", json=body).status_code == 200
    reused = call(client, "POST", "/api/auth/password/reset", json=body)
    assert reused.status_code == 400
    assert reused.json()["code"] == "VALIDATION_ERROR"
    assert call(client, "GET", "/api/auth", token).json()["auth"] is None
    assert login(client, OWNER, PASSWORD).status_code == 401
    assert login(client, OWNER, new).status_code == 200
    assert (
        call(client, "POST", "/api/auth/password/reset", json={**body, "token": "x" * 999}).status_code == 400
    )
    assert {"password_reset_requested", "password_reset"} <= set(audit_events(client))


def test_audit_records_keys_roles_and_2fa(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    key = call(client, "PUT", "/api/api-keys", owner, json={"name": "k"})
    assert key.status_code == 200
    assert call(client, "DELETE", f"/api/api-keys/{key.json()['id']}", owner).status_code == 204
    moment = set_clock(client, datetime.now(UTC))
    started = call(client, "POST", "/api/auth/2fa/enable", owner)
    assert started.status_code == 200
    code = {"code": totp_code(started.json()["secret"], at=moment)}
    assert call(client, "POST", "/api/auth/2fa/confirm", owner, json=code).status_code == 200
    member = register(client, "m@example.com")
    member_id = call(client, "GET", "/api/auth", member).json()["auth"]["id"]
    promoted = call(client, "PATCH", f"/api/team/members/{member_id}", owner, json={"role": "admin"})
    assert promoted.status_code == 200

    box = client.app.state.box

    async def read() -> list[identity_repo.AuditRow]:
        async with box.db.reading() as conn:
            return await all_audit(conn)

    with client.portal() as portal:
        rows = {row.event: row for row in portal.call(read)}
    assert {"super_admin_created", "api_key_created", "api_key_revoked", "registered"} <= set(rows)
    owner_id = call(client, "GET", "/api/auth", owner).json()["auth"]["id"]
    assert rows["2fa_enabled"].user_id == owner_id
    role = rows["role_changed"]
    assert (role.user_id, role.actor_id) == (member_id, owner_id)
    assert role.detail == {"from": "member", "to": "admin"}


def test_ratelimiter_counts_attempts_before_their_outcome() -> None:
    now = [0.0]
    limiter = RateLimiter(max_attempts=2, lockout_seconds=10, clock=lambda: now[0])
    assert limiter.attempt("a").locked is False
    now[0] = 11.0  # the first attempt fell out of the window
    first = limiter.attempt("a")
    second = limiter.attempt("a")  # admitted while the first is still being checked
    assert (first.locked, second.locked) == (False, True)
    with pytest.raises(RateLimited) as raised:
        limiter.attempt("b", "a")
    assert raised.value.headers["Retry-After"] == "10"
    # a refused attempt counted nothing against "b"
    assert limiter.attempt("b").locked is False
    # the attempt that tipped "a" over turned out right: its lockout is lifted, but the
    # failure before it still counts
    second.forgive()
    assert limiter.attempt("a").locked is True
    now[0] = 21.5
    limiter.attempt("a").forgive("a")
    assert limiter.attempt("a").locked is False


def reset_link(inbox: Inbox) -> str:
    payload = inbox.messages[-1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    found = re.search(r"/reset-password\?token=(\S+)", payload.decode())
    assert found is not None
    return found.group(1)


def test_password_reset_revokes_api_keys_but_a_change_keeps_them(
    client: TestClient, data_dir: Path, inbox: tuple[Inbox, int]
) -> None:
    owner = setup_owner(client, data_dir)
    member = register(client, "m@example.com")
    keys = [call(client, "PUT", "/api/api-keys", owner, json={"name": f"k{n}"}).json() for n in range(2)]
    theirs = call(client, "PUT", "/api/api-keys", member, json={"name": "theirs"}).json()["key"]
    assert all(call(client, "GET", "/api/api-keys", k["key"]).status_code == 200 for k in keys)

    # a change by someone who knows the password keeps the keys
    new = "my new password is long"
    change = {"currentPassword": PASSWORD, "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password", member, json=change).status_code == 200
    assert call(client, "GET", "/api/api-keys", theirs).status_code == 200

    # a refused reset revokes nothing
    forged = {"token": "tbr_" + "A" * 43, "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password/reset", json=forged).status_code == 400
    assert call(client, "GET", "/api/api-keys", keys[0]["key"]).status_code == 200

    assert call(client, "POST", "/api/auth/password/forgot", json={"email": OWNER}).status_code == 200
    body = {"token": reset_link(inbox[0]), "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password/reset", json=body).status_code == 200
    for key in keys:
        refused = call(client, "GET", "/api/api-keys", key["key"])
        assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")
    assert call(client, "GET", "/api/auth", owner).json()["auth"] is None
    fresh = login(client, OWNER, new).json()["token"]
    assert call(client, "GET", "/api/api-keys", fresh).json() == []
    # another user's key is untouched
    assert call(client, "GET", "/api/auth", theirs).json()["auth"]["email"] == "m@example.com"
    reset = call(client, "GET", "/api/audit?event=password_reset", fresh).json()["items"]
    assert [row["detail"] for row in reset] == [{"sessions_revoked": 1, "api_keys_revoked": 2}]
