"""The identity flow end to end over the real `telentir-box serve`, with a local fake
Twilio whose received SMS supplies the phone code; and the limits that must hold
against a real server: sign-ups per client address, one text per resend interval."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.auth_support import FAST_ENV, PASSWORD, bearer, fake_twilio, setup_token, sign_up, totp_code
from tests.conftest import LiveServer, free_port

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


def send_with(http: httpx.Client) -> Callable[..., httpx.Response]:
    def send(method: str, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        http.cookies.clear()
        return http.request(method, path, headers=bearer(token) if token else {}, **kwargs)  # type: ignore[arg-type]

    return send


def setup_root(send: Callable[..., httpx.Response], data_dir: Path) -> str:
    body = {"setupToken": setup_token(data_dir), "email": EMAIL, "password": PASSWORD}
    created = send("POST", "/api/setup-super-admin", json=body)
    assert created.status_code == 200, created.text
    return created.json()["token"]


def test_auth_live_registrations_limited_per_address(
    live_server_factory: Callable[..., LiveServer], data_dir: Path
) -> None:
    server = live_server_factory(
        **FAST_ENV,
        TELENTIR_BOX_AUTH__REGISTRATION="open",
        TELENTIR_BOX_AUTH__REGISTRATIONS_PER_IP_PER_HOUR="3",
    )
    with server.client() as http:
        send = send_with(http)
        root = setup_root(send, data_dir)
        # Failed sign-ups count too: the duplicate cost an argon2 hash all the same.
        statuses = [
            send("POST", "/api/auth/register", json=sign_up(email)).status_code
            for email in ("a@example.com", "a@example.com", "b@example.com", "c@example.com")
        ]
        assert statuses == [200, 409, 200, 429]
        refused = send("POST", "/api/auth/register", json=sign_up("d@example.com"))
        assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
        assert refused.json()["status"] == "error"
        assert 3500 <= int(refused.headers["retry-after"]) <= 3600
        # the refused sign-ups created nothing
        members = [m["email"] for m in send("GET", "/api/team/members", root).json()]
        assert sorted(members) == ["a@example.com", "b@example.com", EMAIL]
        for email in ("c@example.com", "d@example.com"):
            assert (
                send("POST", "/api/auth/login", json={"email": email, "password": PASSWORD}).status_code
                == 401
            )
        # an invite still lets someone join from the same address
        invite = send("POST", "/api/team/invites", root, json={"email": "e@example.com"}).json()[
            "inviteToken"
        ]
        joined = send("POST", "/api/auth/register", json=sign_up("e@example.com", inviteToken=invite))
        assert joined.status_code == 200, joined.text
        lockouts = send("GET", "/api/audit?event=lockout", root).json()["items"]
        assert [(row["detail"], row["ip"]) for row in lockouts] == [({"scope": "register"}, "127.0.0.1")]


async def test_auth_live_concurrent_phone_sends_text_once(
    live_server_factory: Callable[..., LiveServer], data_dir: Path
) -> None:
    with fake_twilio() as twilio:
        server = live_server_factory(**FAST_ENV, **twilio.env())
        with server.client() as http:
            root = setup_root(send_with(http), data_dir)
        async with httpx.AsyncClient(base_url=server.base_url, headers=bearer(root), timeout=30) as http:
            body = {"phone": "+14155550123"}
            responses = await asyncio.gather(
                *(http.post("/api/auth/phone/send", json=body) for _ in range(20))
            )
            assert Counter(r.status_code for r in responses) == {200: 1, 429: 19}
            assert {r.json()["code"] for r in responses if r.status_code == 429} == {"RATE_LIMITED"}
            assert len(twilio.messages) == 1
            verified = await http.post("/api/auth/phone/verify", json={"code": twilio.last_code()})
            assert verified.status_code == 200, verified.text


def test_auth_live_failed_text_frees_the_resend_slot(
    live_server_factory: Callable[..., LiveServer], data_dir: Path
) -> None:
    with fake_twilio() as twilio:
        # Twilio's address with nothing listening there: every text fails
        unreachable = {**twilio.env(), "TELENTIR_BOX_TWILIO__API_BASE": f"http://127.0.0.1:{free_port()}"}
    server = live_server_factory(**FAST_ENV, **unreachable)
    with server.client() as http:
        send = send_with(http)
        root = setup_root(send, data_dir)
        body = {"phone": "+14155550123"}
        # The second try is sent too (502, not 429): neither the in-memory slot nor the
        # stored code of the failed text holds it back.
        for _ in range(2):
            failed = send("POST", "/api/auth/phone/send", root, json=body)
            assert (failed.status_code, failed.json()["code"]) == (502, "UPSTREAM_ERROR")
