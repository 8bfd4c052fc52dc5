"""The identity flow end to end over the real `telentir-box serve`, with a local fake
Twilio whose received SMS supplies the phone code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.auth_support import PASSWORD, bearer, fake_twilio, setup_token, totp_code
from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e
EMAIL = "root@example.com"


def test_auth_live_full_flow(live_server_factory: Callable[..., LiveServer], data_dir: Path) -> None:
    with fake_twilio() as twilio:
        server = live_server_factory(**twilio.env())
        with server.client() as http:

            def send(method: str, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
                http.cookies.clear()
                return http.request(method, path, headers=bearer(token) if token else {}, **kwargs)  # type: ignore[arg-type]

            setup = {
                "setupToken": setup_token(data_dir),
                "email": EMAIL,
                "password": PASSWORD,
                "firstName": "Root",
                "lastName": "Admin",
            }
            created = send("POST", "/api/setup-super-admin", json=setup)
            assert created.status_code == 200, created.text
            assert send("POST", "/api/setup-super-admin", json=setup).status_code == 403

            signed_in = send("POST", "/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
            assert signed_in.json()["status"] == "phone_not_verified"
            token = signed_in.json()["token"]

            secret = send("POST", "/api/auth/2fa/enable", token).json()["secret"]
            confirmed = send("POST", "/api/auth/2fa/confirm", token, json={"code": totp_code(secret)})
            assert confirmed.status_code == 200, confirmed.text
            assert len(confirmed.json()["recoveryCodes"]) == 10

            second = send("POST", "/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
            assert second.json()["status"] == "2fa_required"
            pending = second.json()["token"]
            assert send("GET", "/api/server", pending).json()["code"] == "TWO_FACTOR_REQUIRED"
            passed = send("POST", "/api/auth/2fa/authenticate", pending, json={"code": totp_code(secret, 1)})
            assert passed.status_code == 200, passed.text
            assert passed.json()["status"] == "phone_not_verified"
            token = passed.json()["token"]

            assert send("GET", "/api/server", token).json()["code"] == "PHONE_VERIFICATION_REQUIRED"
            assert (
                send("POST", "/api/auth/phone/send", token, json={"phone": "+14155550123"}).status_code == 200
            )
            assert twilio.messages[-1]["To"] == "+14155550123"
            verified = send("POST", "/api/auth/phone/verify", token, json={"code": twilio.last_code()})
            assert verified.json() == {"status": "ok", "token": token}

            created_key = send("PUT", "/api/api-keys", token, json={"name": "script"}).json()
            key = created_key["key"]
            assert send("GET", "/api/server", key).status_code == 200
            assert send("DELETE", f"/api/api-keys/{created_key['id']}", token).status_code == 204
            gone = send("GET", "/api/server", key)
            assert gone.status_code == 401
            assert gone.json()["code"] == "UNAUTHORIZED"

            assert send("GET", "/api/auth/logout", token).json() == {"status": "logout"}
            assert send("GET", "/api/server", token).status_code == 401
