"""Phone verification over a real local fake of Twilio's Messages API: the code in
the SMS verifies the phone once; wrong guesses, expiry and resends are limited."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.auth_support import FAST_ENV, FakeTwilio, call, fake_twilio, register, setup_owner


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


@pytest.fixture
def env(env: dict[str, str], twilio: FakeTwilio) -> dict[str, str]:
    return {**env, **FAST_ENV, **twilio.env(), "TELENTIR_BOX_AUTH__REGISTRATION": "open"}


def test_phone_code_sent_through_twilio_verifies(client: TestClient, twilio: FakeTwilio) -> None:
    token = register(client, "p@example.com")
    guarded = call(client, "POST", "/api/team/invites", token, json={"email": "x@example.com"})
    assert guarded.status_code == 403
    sent = call(client, "POST", "/api/auth/phone/send", token)
    assert sent.status_code == 200, sent.text
    path, headers = twilio.requests[-1]
    assert path == f"/2010-04-01/Accounts/AC{'1' * 32}/Messages.json"
    scheme, _, credentials = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    sid, token_value = (
        twilio.env()["TELENTIR_BOX_TWILIO__ACCOUNT_SID"],
        twilio.env()["TELENTIR_BOX_TWILIO__AUTH_TOKEN"],
    )
    assert base64.b64decode(credentials).decode() == f"{sid}:{token_value}"
    assert twilio.messages[-1]["To"] == "+14155550100"
    assert twilio.messages[-1]["From"] == "+15005550006"
    verified = call(client, "POST", "/api/auth/phone/verify", token, json={"code": twilio.last_code()})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"status": "ok", "token": token}
    assert call(client, "GET", "/api/auth", token).json()["auth"]["phoneVerified"] is True
    # the code is spent
    again = call(client, "POST", "/api/auth/phone/verify", token, json={"code": twilio.last_code()})
    assert again.status_code == 400


def test_phone_sixth_wrong_code_rejected(client: TestClient, twilio: FakeTwilio) -> None:
    token = register(client, "six@example.com")
    assert (
        call(client, "POST", "/api/auth/phone/send", token, json={"phone": "+447700900123"}).status_code
        == 200
    )
    assert twilio.messages[-1]["To"] == "+447700900123"
    code = twilio.last_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = call(client, "POST", "/api/auth/phone/verify", token, json={"code": wrong})
        assert response.status_code == 400
    sixth = call(client, "POST", "/api/auth/phone/verify", token, json={"code": code})
    assert sixth.status_code == 429
    assert sixth.json()["code"] == "RATE_LIMITED"
    assert int(sixth.headers["retry-after"]) > 0
    assert call(client, "GET", "/api/auth", token).json()["auth"]["phoneVerified"] is False


def test_phone_resend_throttled_and_input_checked(client: TestClient, twilio: FakeTwilio) -> None:
    token = register(client, "t@example.com")
    assert call(client, "POST", "/api/auth/phone/send", token).status_code == 200
    throttled = call(client, "POST", "/api/auth/phone/send", token)
    assert throttled.status_code == 429
    assert "retry-after" in throttled.headers
    assert len(twilio.messages) == 1
    assert (
        call(client, "POST", "/api/auth/phone/send", token, json={"phone": "0612345678"}).status_code == 400
    )
    assert call(client, "POST", "/api/auth/phone/send", token, json={"phone": "+1" * 100}).status_code == 400
    code = {"code": twilio.last_code()}
    for path, credential, body, status, error in (
        ("/api/auth/phone/verify", token, {**code, "y": 2}, 400, "VALIDATION_ERROR"),
        ("/api/auth/phone/verify", token, {"code": "1" * 100}, 400, "VALIDATION_ERROR"),
        ("/api/auth/phone/verify", None, code, 401, "UNAUTHORIZED"),
        ("/api/auth/phone/verify", "tbx_nope", code, 401, "UNAUTHORIZED"),
        ("/api/auth/phone/send", "tbx_nope", None, 401, "UNAUTHORIZED"),
    ):
        response = call(client, "POST", path, credential, json=body)
        assert (response.status_code, response.json()["code"]) == (status, error), (path, body)
    # none of those refusals spent the code
    assert call(client, "POST", "/api/auth/phone/verify", token, json=code).status_code == 200


def test_phone_codes_are_per_user(client: TestClient, twilio: FakeTwilio) -> None:
    alice = register(client, "alice@example.com")
    bob = register(client, "bob@example.com")
    call(client, "POST", "/api/auth/phone/send", alice)
    refused = call(client, "POST", "/api/auth/phone/verify", bob, json={"code": twilio.last_code()})
    assert refused.status_code == 400
    assert call(client, "GET", "/api/auth", bob).json()["auth"]["phoneVerified"] is False


def test_phone_console_sender_when_twilio_unconfigured(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(environ={"TELENTIR_BOX_DATA__DIR": str(data_dir), **FAST_ENV})
    with caplog.at_level(logging.WARNING), TestClient(create_app(config)) as client:
        assert any("Twilio is not configured" in r.message for r in caplog.records)
        token = setup_owner(client, data_dir)
        body = {"phone": "+14155550199"}
        assert call(client, "POST", "/api/auth/phone/send", token, json=body).status_code == 200
        logged = next(r for r in caplog.records if getattr(r, "to", None) == "+14155550199")
        code = logged.body[-6:]  # type: ignore[attr-defined]
        assert call(client, "POST", "/api/auth/phone/verify", token, json={"code": code}).status_code == 200


def test_phone_texts_are_capped_per_day_per_account_and_number(
    env: dict[str, str], twilio: FakeTwilio
) -> None:
    config = load_config(
        environ={
            **env,
            "TELENTIR_BOX_AUTH__PHONE_SENDS_PER_DAY": "2",
            "TELENTIR_BOX_AUTH__PHONE_RESEND_SECONDS": "0",
        }
    )
    with TestClient(create_app(config)) as client:
        first, second = register(client, "a@example.com"), register(client, "b@example.com")
        sends = [call(client, "POST", "/api/auth/phone/send", first).status_code for _ in range(3)]
        assert sends == [200, 200, 429]
        refused = call(client, "POST", "/api/auth/phone/send", first, json={"phone": "+447700900123"})
        assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
        # Another account gets no more texts to the same number...
        assert call(client, "POST", "/api/auth/phone/send", second).status_code == 429
        # ...but may text its own, different number.
        other = call(client, "POST", "/api/auth/phone/send", second, json={"phone": "+447700900456"})
        assert other.status_code == 200
        assert len(twilio.messages) == 3
