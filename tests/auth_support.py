"""Helpers the identity tests share: fast argon2 settings, signing people in over the
test client, TOTP codes, clocks the tests set, and local Twilio and SMTP servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pyotp
from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from telentir_box.auth.ratelimit import RateLimiter
from telentir_box.db import identity as identity_repo
from telentir_box.db.connection import Connection

FAST_ENV = {
    "TELENTIR_BOX_AUTH__ARGON2_MEMORY_KIB": "1024",
    "TELENTIR_BOX_AUTH__ARGON2_TIME_COST": "1",
}
PASSWORD = "correct horse battery"
# A raw body declared as JSON: the JSON routes refuse an undeclared one from anonymous
# and cookie callers (415).
JSON = {"content-type": "application/json"}
OWNER = "owner@example.com"


async def all_audit(conn: Connection) -> list[identity_repo.AuditRow]:
    """Every audit row, oldest first."""
    newest_first = await identity_repo.page_audit(conn, user_id=None, event=None, before=None, limit=-1)
    return newest_first[::-1]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def call(client: TestClient, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
    """A request with only the given credential: the cookie jar is emptied each time."""
    client.cookies.clear()
    headers = {**kwargs.pop("headers", {}), **(bearer(token) if token else {})}
    response = client.request(method, path, headers=headers, **kwargs)
    client.cookies.clear()
    return response


def setup_token(data_dir: Path) -> str:
    return (data_dir / "setup-token").read_text().strip()


def setup_owner(client: TestClient, data_dir: Path, email: str = OWNER) -> str:
    body = {"setupToken": setup_token(data_dir), "email": email, "password": PASSWORD}
    response = call(client, "POST", "/api/setup-super-admin", json=body)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def sign_up(email: str, **extra: Any) -> dict[str, Any]:
    """A complete registration form, with `extra` fields added or replaced."""
    return {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": email,
        "phone": "+14155550100",
        "password": PASSWORD,
        "confirmPassword": PASSWORD,
        **extra,
    }


def register(client: TestClient, email: str, **extra: Any) -> str:
    response = call(client, "POST", "/api/auth/register", json=sign_up(email, **extra))
    assert response.status_code == 200, response.text
    return response.json()["token"]


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return call(client, "POST", "/api/auth/login", json={"email": email, "password": password})


def totp_code(secret: str, steps_ahead: int = 0, at: datetime | None = None) -> str:
    otp = pyotp.TOTP(secret)
    return otp.generate_otp(otp.timecode(at or datetime.now(UTC)) + steps_ahead)


def set_clock(client: TestClient, moment: datetime) -> datetime:
    """Stop the box's wall clock (TOTP steps, session expiry) at `moment`."""
    client.app.state.box.clock = lambda: moment
    return moment


class LimiterClock:
    """The monotonic clock of a rate limiter installed on the box, moved by the test."""

    def __init__(self, client: TestClient) -> None:
        self.now = 0.0
        auth = client.app.state.box.config.auth
        client.app.state.box.identity.limiter = RateLimiter(
            auth.max_attempts, auth.lockout_seconds, clock=lambda: self.now
        )

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeTwilio:
    """Twilio's Messages API as a real local HTTP server; keeps every form it received."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                received.requests.append((self.path, dict(self.headers)))
                received.messages.append(form)
                body = json.dumps({"sid": "SM" + "0" * 32, "status": "queued", "to": form.get("To")})
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        return {
            "TELENTIR_BOX_TWILIO__ACCOUNT_SID": "AC" + "1" * 32,
            "TELENTIR_BOX_TWILIO__AUTH_TOKEN": "twilio-auth-token",
            "TELENTIR_BOX_TWILIO__FROM_NUMBER": "+15005550006",
            "TELENTIR_BOX_TWILIO__API_BASE": self.base_url,
        }

    def last_code(self) -> str:
        body = self.messages[-1]["Body"]
        return "".join(ch for ch in body if ch.isdigit())[-6:]


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    thread = threading.Thread(target=fake._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake._server.shutdown()
        fake._server.server_close()


class Inbox:
    """An aiosmtpd handler keeping every message it was given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server(port: int, **options: Any) -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1:port (options go to aiosmtpd, e.g. tls_context)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
