"""Stream tickets: short-lived, single-purpose credentials for EventSource clients,
which cannot send headers, so a long-lived secret never goes into a URL. A ticket is
an HMAC over (purpose, user id, expiry, nonce) under a key derived for this purpose."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from telentir_box.auth.principal import Principal
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database

TICKET_SECONDS = 60
_PURPOSE = b"event-stream-v1"
_MAX_TICKET_CHARS = 512


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_ticket(key: bytes, user_id: str, now: datetime) -> tuple[str, datetime]:
    """A ticket for `user_id` and the moment it expires."""
    expires = now.astimezone(UTC) + timedelta(seconds=TICKET_SECONDS)
    body = b"%s|%s|%d|%s" % (
        _PURPOSE,
        user_id.encode(),
        int(expires.timestamp()),
        secrets.token_bytes(12).hex().encode(),
    )
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}", expires


def verify_ticket(key: bytes, ticket: str, now: datetime) -> str | None:
    """The user id a valid, unexpired ticket was issued to, else None."""
    if len(ticket) > _MAX_TICKET_CHARS or ticket.count(".") != 1:
        return None
    encoded_body, encoded_mac = ticket.split(".")
    try:
        body, mac = _unb64(encoded_body), _unb64(encoded_mac)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    parts = body.split(b"|")
    if len(parts) != 4 or parts[0] != _PURPOSE or not parts[2].isdigit():
        return None
    if int(parts[2]) <= now.timestamp():
        return None
    return parts[1].decode()


async def resolve_ticket(db: Database, key: bytes, ticket: str, now: datetime) -> Principal | None:
    """The caller a ticket stands for, from current server-side state: a deleted user or
    one whose phone is no longer verified gets nothing, whatever the ticket says."""
    user_id = verify_ticket(key, ticket, now)
    if user_id is None:
        return None
    async with db.reading() as conn:
        user = await users_repo.get_user(conn, user_id)
    if user is None or not user.phone_verified:
        return None
    return Principal(
        user_id=user.id,
        role=user.role,  # type: ignore[arg-type]
        super_admin=user.super_admin,
        phone_verified=user.phone_verified,
        two_factor_configured=user.totp_enabled,
        two_factor_pending=False,
    )
