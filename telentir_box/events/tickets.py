"""Stream tickets: short-lived, single-use, single-purpose credentials for EventSource
clients, which cannot send headers, so a long-lived secret never goes into a URL.

A ticket is an HMAC over (purpose, user id, expiry, nonce, issuing credential) under a
key derived for this purpose. It names the session or API key that asked for it, so
the stream it opens lives exactly as long as that credential does; it is redeemable
once, so a ticket copied from a proxy log is worthless (a client that reconnects asks
for a fresh one)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from telentir_box.auth.principal import Principal
from telentir_box.db.database import Database
from telentir_box.events.credentials import credential_id, stream_principal

TICKET_SECONDS = 60
_PURPOSE = b"event-stream-v2"
_MAX_TICKET_CHARS = 512


@dataclass(frozen=True, slots=True)
class TicketClaims:
    user_id: str
    credential_id: str  # the session (ses_...) or API key (ak_...) that asked for it
    expires: int  # epoch seconds
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_ticket(key: bytes, principal: Principal, now: datetime) -> tuple[str, datetime]:
    """A ticket for the caller, and the moment it expires."""
    credential = credential_id(principal)
    assert credential is not None, "tickets are issued to a session or an API key"
    expires = now.astimezone(UTC) + timedelta(seconds=TICKET_SECONDS)
    body = b"|".join(
        [
            _PURPOSE,
            principal.user_id.encode(),
            b"%d" % int(expires.timestamp()),
            secrets.token_bytes(12).hex().encode(),
            credential.encode(),
        ]
    )
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}", expires


def verify_ticket(key: bytes, ticket: str, now: datetime) -> TicketClaims | None:
    """What a well-signed, unexpired ticket says, else None."""
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
    if len(parts) != 5 or parts[0] != _PURPOSE or not parts[2].isdigit():
        return None
    expires = int(parts[2])
    if expires <= now.timestamp():
        return None
    return TicketClaims(parts[1].decode(), parts[4].decode(), expires, parts[3].decode())


class StreamTickets:
    """Issues tickets and redeems each at most once. Redeemed nonces are remembered
    (in memory: tickets outlive neither their minute nor the process) until they expire."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._redeemed: dict[str, int] = {}  # nonce -> expiry, epoch seconds

    def issue(self, principal: Principal, now: datetime) -> tuple[str, datetime]:
        return issue_ticket(self._key, principal, now)

    async def redeem(self, db: Database, ticket: str, now: datetime) -> Principal | None:
        """The caller a ticket stands for, from current server-side state: a used ticket,
        or one whose session or key has since gone, or whose user may no longer
        stream, gets nothing, whatever the ticket says."""
        claims = verify_ticket(self._key, ticket, now)
        if claims is None or claims.nonce in self._redeemed:
            return None
        self._forget_expired(now)
        self._redeemed[claims.nonce] = claims.expires
        principal = await stream_principal(db, claims.credential_id, now)
        if principal is None or principal.user_id != claims.user_id:
            return None
        return principal

    def _forget_expired(self, now: datetime) -> None:
        moment = now.timestamp()
        for nonce in [nonce for nonce, expires in self._redeemed.items() if expires <= moment]:
            del self._redeemed[nonce]
