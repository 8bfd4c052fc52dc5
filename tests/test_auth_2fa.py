"""TOTP two-factor authentication: enrolment, the pending token that can only finish
2FA, codes and recovery codes accepted once, replacing the recovery codes, and turning
it off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from telentir_box.auth.accounts import PENDING_2FA_TTL
from tests.auth_support import (
    FAST_ENV,
    OWNER,
    LimiterClock,
    call,
    login,
    register,
    set_clock,
    setup_owner,
    totp_code,
)


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV}


def enrol(client: TestClient, token: str, at: datetime | None = None) -> tuple[str, list[str]]:
    started = call(client, "POST", "/api/auth/2fa/enable", token)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    assert started.json()["url"].startswith("otpauth://totp/")
    code = {"code": totp_code(secret, at=at)}
    confirmed = call(client, "POST", "/api/auth/2fa/confirm", token, json=code)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "ok"
    assert body["token"] == token
    assert len(body["recoveryCodes"]) == 10
    return secret, body["recoveryCodes"]


def test_2fa_login_requires_code_and_pending_token_is_confined(client: TestClient, data_dir: Path) -> None:
    # The box's clock stands still, so the codes below fall in known TOTP steps.
    now = set_clock(client, datetime.now(UTC))
    token = setup_owner(client, data_dir)
    secret, _ = enrol(client, token, at=now)

    response = login(client, OWNER)
    assert response.json()["status"] == "2fa_required"
    pending = response.json()["token"]
    for method, path in (
        ("GET", "/api/api-keys"),
        ("POST", "/api/auth/2fa/enable"),
        ("GET", "/api/team/members"),
        ("POST", "/api/auth/phone/send"),
        # the object hot path (store/hot_path.py) applies the same rule
        ("GET", "/api/objects/obj_0123456789abcdef0123"),
        ("PUT", "/api/objects"),
    ):
        refused = call(client, method, path, pending)
        assert refused.status_code == 401, path
        assert refused.json()["code"] == "TWO_FACTOR_REQUIRED", path
    me = call(client, "GET", "/api/auth", pending).json()
    assert me["status"] == "2fa_required"
    assert me["auth"]["twoFactorPassed"] is False

    # the code used to confirm enrolment cannot be replayed
    replay = call(
        client, "POST", "/api/auth/2fa/authenticate", pending, json={"code": totp_code(secret, at=now)}
    )
    assert replay.status_code == 400
    assert replay.json()["code"] == "VALIDATION_ERROR"
    assert call(client, "GET", "/api/api-keys", pending).status_code == 401

    next_code = {"code": totp_code(secret, 1, at=now)}
    fresh = call(client, "POST", "/api/auth/2fa/authenticate", pending, json=next_code)
    assert fresh.status_code == 200, fresh.text
    full = fresh.json()["token"]
    assert fresh.json()["status"] == "phone_not_verified"
    assert call(client, "GET", "/api/api-keys", full).status_code == 200
    assert call(client, "GET", "/api/auth", full).json()["auth"]["twoFactorPassed"] is True
    # the pending session is spent
    assert call(client, "GET", "/api/auth", pending).json()["auth"] is None

    again = login(client, OWNER).json()["token"]
    replayed = call(client, "POST", "/api/auth/2fa/authenticate", again, json=next_code)
    assert replayed.status_code == 400
    assert replayed.json()["status"] == "error"


def test_2fa_pending_token_expires_after_minutes(client: TestClient, data_dir: Path) -> None:
    now = datetime.now(UTC)
    token = setup_owner(client, data_dir)
    # enrolled before both sign-ins below, so their codes are later than the one it used
    secret, _ = enrol(client, token, at=set_clock(client, now - timedelta(minutes=10)))

    # signed in just over PENDING_2FA_TTL ago: the pending token is dead
    signed_in_at = set_clock(client, now - PENDING_2FA_TTL - timedelta(seconds=1))
    response = login(client, OWNER)
    assert response.json()["status"] == "2fa_required"
    assert "Max-Age=300" in response.headers["set-cookie"]
    stale = response.json()["token"]
    code = {"code": totp_code(secret, 1, at=signed_in_at)}
    refused = call(client, "POST", "/api/auth/2fa/authenticate", stale, json=code)
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHORIZED"
    assert call(client, "GET", "/api/auth", stale).json()["auth"] is None

    # signed in a minute before that limit: still accepted, and the full session that
    # finishing 2FA gives lasts the normal 12 hours from sign-in
    signed_in_at = set_clock(client, now - PENDING_2FA_TTL + timedelta(minutes=1))
    pending = login(client, OWNER).json()["token"]
    code = {"code": totp_code(secret, 1, at=signed_in_at)}
    done = call(client, "POST", "/api/auth/2fa/authenticate", pending, json=code)
    assert done.status_code == 200, done.text
    assert call(client, "GET", "/api/api-keys", done.json()["token"]).status_code == 200
    max_age = int(done.headers["set-cookie"].split("Max-Age=")[1].split(";")[0])
    assert 12 * 3600 - 60 <= max_age <= 12 * 3600


def test_2fa_recovery_code_works_once(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    _, codes = enrol(client, token)
    pending = login(client, OWNER).json()["token"]
    used = call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"recoveryCode": codes[0]})
    assert used.status_code == 200
    pending = login(client, OWNER).json()["token"]
    reused = call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"recoveryCode": codes[0]})
    assert reused.status_code == 400
    assert call(client, "GET", "/api/auth", pending).json()["status"] == "2fa_required"
    assert call(client, "POST", "/api/auth/2fa/authenticate", pending, json={}).status_code == 400
    assert (
        call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"code": "1" * 100}).status_code
        == 400
    )


def test_2fa_confirm_rejects_wrong_code_and_reset_turns_it_off(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    started = call(client, "POST", "/api/auth/2fa/enable", token).json()
    wrong = "000000" if totp_code(started["secret"]) != "000000" else "111111"
    assert call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": wrong}).status_code == 400
    assert call(client, "GET", "/api/auth", token).json()["auth"]["twoFactorConfigured"] is False
    assert call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": "1", "x": 1}).status_code == 400
    oversized = call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": "1" * 100})
    assert oversized.status_code == 400
    assert oversized.json()["code"] == "VALIDATION_ERROR"
    assert call(client, "GET", "/api/auth", token).json()["auth"]["twoFactorConfigured"] is False

    now = set_clock(client, datetime.now(UTC))
    secret, _ = enrol(client, token, at=now)
    assert call(client, "POST", "/api/auth/2fa/enable", token).status_code == 409
    valid = {totp_code(secret, step, at=now) for step in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    for body, status in (
        ({"code": wrong}, 400),
        ({"code": "1" * 100}, 400),
        ({"code": totp_code(secret, 1, at=now), "x": 1}, 400),
    ):
        kept = call(client, "POST", "/api/auth/2fa/reset", token, json=body)
        assert kept.status_code == status, body
        assert kept.json()["code"] == "VALIDATION_ERROR"
    malformed = call(client, "POST", "/api/auth/2fa/reset", token, content=b"{code")
    assert malformed.status_code == 400
    assert call(client, "GET", "/api/auth", token).json()["auth"]["twoFactorConfigured"] is True
    off = call(client, "POST", "/api/auth/2fa/reset", token, json={"code": totp_code(secret, 1, at=now)})
    assert off.status_code == 200
    assert login(client, OWNER).json()["status"] == "phone_not_verified"


def test_2fa_routes_need_auth(client: TestClient) -> None:
    for path in (
        "/api/auth/2fa/enable",
        "/api/auth/2fa/confirm",
        "/api/auth/2fa/authenticate",
        "/api/auth/2fa/reset",
        "/api/auth/2fa/recovery-codes",
    ):
        response = call(client, "POST", path, "tbx_forged", json={"code": "123456"})
        assert response.status_code == 401
        assert response.json()["status"] == "error"


def regenerate(client: TestClient, token: str | None, **sent: Any) -> Any:
    return call(client, "POST", "/api/auth/2fa/recovery-codes", token, **sent)


def authenticate(client: TestClient, body: dict[str, str]) -> int:
    """Sign the owner in again and finish 2FA with `body`; the status it got."""
    pending = login(client, OWNER).json()["token"]
    return call(client, "POST", "/api/auth/2fa/authenticate", pending, json=body).status_code


def test_2fa_recovery_codes_regenerated_replace_every_old_one(client: TestClient, data_dir: Path) -> None:
    now = set_clock(client, datetime.now(UTC))
    token = setup_owner(client, data_dir)
    secret, old = enrol(client, token, at=now)
    assert authenticate(client, {"recoveryCode": old[0]}) == 200

    fresh = regenerate(client, token, json={"code": totp_code(secret, 1, at=now)})
    assert fresh.status_code == 200, fresh.text
    new = fresh.json()["recoveryCodes"]
    assert fresh.json()["status"] == "ok"
    assert len(set(new)) == 10 and not set(new) & set(old)
    # the code that bought them cannot buy another set
    assert regenerate(client, token, json={"code": totp_code(secret, 1, at=now)}).status_code == 400

    # (four failures in all: one more would lock this client address out of 2FA)
    for code in (old[1], old[9]):
        assert authenticate(client, {"recoveryCode": code}) == 400
    assert authenticate(client, {"recoveryCode": new[0]}) == 200
    assert authenticate(client, {"recoveryCode": new[0]}) == 400
    assert authenticate(client, {"recoveryCode": new[1].upper()}) == 200

    trail = call(client, "GET", "/api/auth/audit?event=recovery_codes_regenerated", token).json()["items"]
    assert [(row["event"], row["detail"]) for row in trail] == [("recovery_codes_regenerated", {"count": 10})]
    everything = call(client, "GET", "/api/auth/audit?limit=1000", token).text
    assert not any(code in everything or code.upper() in everything for code in old + new)


def test_2fa_recovery_codes_refusals_change_nothing(client: TestClient, data_dir: Path) -> None:
    now = set_clock(client, datetime.now(UTC))
    token = setup_owner(client, data_dir)
    other = register_member(client, token, "other@example.com")
    off = regenerate(client, other, json={"code": "123456"})
    assert (off.status_code, off.json()["code"]) == (409, "CONFLICT")
    assert "off" in off.json()["message"]

    secret, codes = enrol(client, token, at=now)
    valid = {"code": totp_code(secret, 1, at=now)}
    pending = login(client, OWNER).json()["token"]
    for credential, sent, status, error in (
        (None, {"json": valid}, 401, "UNAUTHORIZED"),
        ("tbx_forged", {"json": valid}, 401, "UNAUTHORIZED"),
        (pending, {"json": valid}, 401, "TWO_FACTOR_REQUIRED"),
        # another account with a code of this one's: its own 2FA is off
        (other, {"json": valid}, 409, "CONFLICT"),
        (token, {"content": b"{code"}, 400, "VALIDATION_ERROR"),
        (token, {"json": {"code": "1" * 100}}, 400, "VALIDATION_ERROR"),
        (token, {"json": {**valid, "recoveryCode": codes[0]}}, 400, "VALIDATION_ERROR"),
        (token, {"json": {}}, 400, "VALIDATION_ERROR"),
        (token, {"json": {"code": "x" * 32}}, 400, "VALIDATION_ERROR"),
    ):
        refused = regenerate(client, credential, **sent)
        assert (refused.status_code, refused.json()["code"]) == (status, error), sent
        assert refused.json()["status"] == "error"
    # every old code still works and the code sent above was never spent
    assert authenticate(client, {"recoveryCode": codes[0]}) == 200
    assert regenerate(client, token, json=valid).status_code == 200


def test_2fa_recovery_codes_wrong_codes_count_against_the_2fa_limit(
    client: TestClient, data_dir: Path
) -> None:
    clock = LimiterClock(client)
    now = set_clock(client, datetime.now(UTC))
    token = setup_owner(client, data_dir)
    secret, codes = enrol(client, token, at=now)
    valid = {totp_code(secret, step, at=now) for step in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    allowed = client.app.state.box.config.auth.max_attempts
    for _ in range(allowed):
        refused = regenerate(client, token, json={"code": wrong})
        assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR")
    locked = regenerate(client, token, json={"code": totp_code(secret, 1, at=now)})
    assert (locked.status_code, locked.json()["code"]) == (429, "RATE_LIMITED")
    # the same limit guards signing in with a code
    assert authenticate(client, {"recoveryCode": codes[0]}) == 429
    clock.advance(client.app.state.box.config.auth.lockout_seconds + 1)
    assert authenticate(client, {"recoveryCode": codes[0]}) == 200
    trail = call(client, "GET", "/api/auth/audit", token).json()["items"]
    events = [row["event"] for row in trail]
    assert (events.count("2fa_failed"), events.count("lockout")) == (allowed, 1)
    assert "recovery_codes_regenerated" not in events


def register_member(client: TestClient, owner: str, email: str) -> str:
    invited = call(client, "POST", "/api/team/invites", owner, json={"email": email})
    assert invited.status_code == 201, invited.text
    return register(client, email, inviteToken=invited.json()["inviteToken"])


# Digits of other scripts pass str.isdigit and int(), and made hmac.compare_digest raise.
NON_ASCII_CODES = ["١٢٣٤٥٦", "\uff11\uff12\uff13\uff14\uff15\uff16", "12345é"]


def test_2fa_non_ascii_codes_are_a_400_on_every_route(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    limiter = LimiterClock(client)
    assert call(client, "POST", "/api/auth/2fa/enable", token).status_code == 200
    for code in NON_ASCII_CODES:
        refused = call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": code})
        assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR"), code
    assert call(client, "GET", "/api/auth", token).json()["auth"]["twoFactorConfigured"] is False

    _, recovery = enrol(client, token)
    pending = login(client, OWNER).json()["token"]
    attempts = [
        ("/api/auth/2fa/reset", token, "code"),
        ("/api/auth/2fa/recovery-codes", token, "code"),
        ("/api/auth/2fa/authenticate", pending, "code"),
        ("/api/auth/2fa/authenticate", pending, "recoveryCode"),
    ]
    for path, credential, field in attempts:
        limiter.advance(client.app.state.box.config.auth.lockout_seconds + 1)  # forget earlier guesses
        for code in NON_ASCII_CODES:
            refused = call(client, "POST", path, credential, json={field: code})
            assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR"), (path, code)
    # nothing changed: 2FA still on, the pending session still pending, the codes still good
    assert call(client, "GET", "/api/auth", token).json()["auth"]["twoFactorConfigured"] is True
    done = call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"recoveryCode": recovery[0]})
    assert done.status_code == 200, done.text
