"""TOTP two-factor authentication: enrolment, the pending token that can only finish
2FA, codes and recovery codes accepted once, and turning it off."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.auth_support import FAST_ENV, OWNER, call, login, setup_owner, totp_code


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV}


def enrol(client: TestClient, token: str) -> tuple[str, list[str]]:
    started = call(client, "POST", "/api/auth/2fa/enable", token)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    assert started.json()["url"].startswith("otpauth://totp/")
    confirmed = call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": totp_code(secret)})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "ok"
    assert body["token"] == token
    assert len(body["recoveryCodes"]) == 10
    return secret, body["recoveryCodes"]


def test_2fa_login_requires_code_and_pending_token_is_confined(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    secret, _ = enrol(client, token)

    response = login(client, OWNER)
    assert response.json()["status"] == "2fa_required"
    pending = response.json()["token"]
    for method, path in (
        ("GET", "/api/api-keys"),
        ("POST", "/api/auth/2fa/enable"),
        ("GET", "/api/team/members"),
        ("POST", "/api/auth/phone/send"),
    ):
        refused = call(client, method, path, pending)
        assert refused.status_code == 401, path
        assert refused.json()["code"] == "TWO_FACTOR_REQUIRED", path
    me = call(client, "GET", "/api/auth", pending).json()
    assert me["status"] == "2fa_required"
    assert me["auth"]["twoFactorPassed"] is False

    # the code used to confirm enrolment cannot be replayed
    replay = call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"code": totp_code(secret)})
    assert replay.status_code == 400
    assert call(client, "GET", "/api/api-keys", pending).status_code == 401

    fresh = call(client, "POST", "/api/auth/2fa/authenticate", pending, json={"code": totp_code(secret, 1)})
    assert fresh.status_code == 200, fresh.text
    full = fresh.json()["token"]
    assert fresh.json()["status"] == "phone_not_verified"
    assert call(client, "GET", "/api/api-keys", full).status_code == 200
    assert call(client, "GET", "/api/auth", full).json()["auth"]["twoFactorPassed"] is True
    # the pending session is spent
    assert call(client, "GET", "/api/auth", pending).json()["auth"] is None

    again = login(client, OWNER).json()["token"]
    replayed = call(client, "POST", "/api/auth/2fa/authenticate", again, json={"code": totp_code(secret, 1)})
    assert replayed.status_code == 400
    assert replayed.json()["status"] == "error"


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

    secret, _ = enrol(client, token)
    assert call(client, "POST", "/api/auth/2fa/enable", token).status_code == 409
    off = call(client, "POST", "/api/auth/2fa/reset", token, json={"code": totp_code(secret, 1)})
    assert off.status_code == 200
    assert login(client, OWNER).json()["status"] == "phone_not_verified"


def test_2fa_routes_need_auth(client: TestClient) -> None:
    for path in ("/api/auth/2fa/enable", "/api/auth/2fa/confirm", "/api/auth/2fa/authenticate"):
        response = call(client, "POST", path, "tbx_forged", json={"code": "123456"})
        assert response.status_code == 401
        assert response.json()["status"] == "error"
