"""Brute-force limits that trip and release as configured, password reset by email
through a real local SMTP server, and the audit trail of auth events."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from telentir_box.db import identity as identity_repo
from tests.auth_support import FAST_ENV, OWNER, PASSWORD, call, login, setup_owner
from tests.conftest import free_port

LOCKOUT = 1


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def env(env: dict[str, str], inbox: tuple[Inbox, int]) -> dict[str, str]:
    return {
        **env,
        **FAST_ENV,
        "TELENTIR_BOX_AUTH__MAX_ATTEMPTS": "3",
        "TELENTIR_BOX_AUTH__LOCKOUT_SECONDS": str(LOCKOUT),
        "TELENTIR_BOX_SMTP__HOST": "127.0.0.1",
        "TELENTIR_BOX_SMTP__PORT": str(inbox[1]),
        "TELENTIR_BOX_SMTP__STARTTLS": "false",
        "TELENTIR_BOX_SERVER__PUBLIC_URL": "https://box.example.com",
    }


def audit_events(client: TestClient) -> list[str]:
    box = client.app.state.box

    async def read() -> list[dict[str, Any]]:
        async with box.db.reading() as conn:
            return await identity_repo.list_audit(conn)

    with client.portal() as portal:
        return [row["event"] for row in portal.call(read)]


def test_login_rate_limit_trips_and_releases(client: TestClient, data_dir: Path) -> None:
    setup_owner(client, data_dir)
    for _ in range(3):
        assert login(client, OWNER, "wrong password!!").status_code == 401
    locked = login(client, OWNER)
    assert locked.status_code == 429
    assert locked.json()["code"] == "RATE_LIMITED"
    assert locked.json()["status"] == "error"
    assert 1 <= int(locked.headers["retry-after"]) <= LOCKOUT
    time.sleep(LOCKOUT + 0.2)
    released = login(client, OWNER)
    assert released.status_code == 200
    assert released.headers["set-cookie"].count("Secure") == 1
    events = audit_events(client)
    assert events.count("login_failed") == 3
    assert "lockout" in events
    assert "login_ok" in events


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
    link = re.search(
        r"https://box\.example\.com/reset-password\?token=(\S+)", message.get_payload(decode=True).decode()
    )
    assert link is not None
    reset_token = link.group(1)
    new = "my new password is long"
    mismatch = {"token": reset_token, "password": new, "confirmPassword": "other password here"}
    assert call(client, "POST", "/api/auth/password/reset", json=mismatch).status_code == 400
    body = {"token": reset_token, "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password/reset", json=body).status_code == 200
    assert call(client, "POST", "/api/auth/password/reset", json=body).status_code == 400
    assert call(client, "GET", "/api/auth", token).json()["auth"] is None
    assert login(client, OWNER, PASSWORD).status_code == 401
    assert login(client, OWNER, new).status_code == 200
    # a forged token fails; by now this address has used up its attempts (3 here)
    forged = {"token": "tbr_" + "A" * 43, "password": new, "confirmPassword": new}
    assert call(client, "POST", "/api/auth/password/reset", json=forged).status_code == 429
    assert (
        call(client, "POST", "/api/auth/password/reset", json={**body, "token": "x" * 999}).status_code == 400
    )
    assert {"password_reset_requested", "password_reset"} <= set(audit_events(client))


def test_audit_records_keys_roles_and_2fa(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    key = call(client, "PUT", "/api/api-keys", owner, json={"name": "k"}).json()
    call(client, "DELETE", f"/api/api-keys/{key['id']}", owner)
    call(client, "POST", "/api/auth/2fa/enable", owner)
    events = audit_events(client)
    assert {"super_admin_created", "api_key_created", "api_key_revoked"} <= set(events)


def test_ratelimiter_unit_window_and_release() -> None:
    from telentir_box.auth.ratelimit import RateLimiter
    from telentir_box.errors import RateLimited

    now = [0.0]
    limiter = RateLimiter(max_attempts=2, lockout_seconds=10, clock=lambda: now[0])
    assert limiter.fail("a") is False
    now[0] = 11.0  # the first failure fell out of the window
    assert limiter.fail("a") is False
    assert limiter.fail("a") is True
    with pytest.raises(RateLimited) as raised:
        limiter.check("b", "a")
    assert raised.value.headers["Retry-After"] == "10"
    now[0] = 21.5
    limiter.check("a")
