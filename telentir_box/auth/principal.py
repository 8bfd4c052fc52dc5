"""Who is calling: resolves a session JWT or an API key to a Principal from
server-side state (session row, key row, user row), with a small in-memory cache
of resolved credentials that every committed change to auth state clears."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import jwt

from telentir_box.db import users as users_repo
from telentir_box.db.database import Database
from telentir_box.db.timestamps import iso
from telentir_box.db.users import CredentialRow

API_KEY_PREFIX = "tbx_"
# Changes made by another process (the admin CLI) are picked up within this many seconds;
# changes made through this process clear the cache at once.
CACHE_SECONDS = 2.0
# Entries are a 32-byte digest and a Principal (a few hundred bytes in all): a few MB at most.
CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Literal["owner", "admin", "member"]
    super_admin: bool
    phone_verified: bool
    two_factor_configured: bool
    two_factor_pending: bool
    session_id: str | None = None
    api_key_id: str | None = None


class Authenticator:
    def __init__(self, db: Database, session_secret: bytes, api_key_pepper: bytes) -> None:
        self._db = db
        self._secret = session_secret
        self._pepper = api_key_pepper
        # Only credentials that resolved, keyed by a digest: a refused token of any
        # length leaves nothing behind, and no raw secret lingers here.
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        # Last use of each API key (epoch seconds: cheap on every request), flushed to
        # the database in the background.
        self.api_key_use: dict[str, float] = {}

    def clear_cache(self, touched: set[str] | None = None) -> None:
        if touched is None or users_repo.AUTH_STATE in touched:
            self._cache.clear()

    def hash_api_key(self, key: str) -> bytes:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()

    async def resolve(self, token: str) -> Principal | None:
        """The principal for a bearer token or cookie value, or None if it is not valid now."""
        now = time.monotonic()
        key = hashlib.blake2b(token.encode(), digest_size=32).digest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            found = await self._lookup(token)
            if found is None:
                self._cache.pop(key, None)  # a credential revoked since it was cached
                return None
            principal = found
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + CACHE_SECONDS, principal)
        if principal.api_key_id is not None:
            self.api_key_use[principal.api_key_id] = time.time()
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        if token.startswith(API_KEY_PREFIX):
            async with self._db.reading() as conn:
                found = await users_repo.api_key_credential(conn, self.hash_api_key(token))
            if found is None:
                return None
            key_id, credential = found
            return principal_of(credential, api_key_id=key_id)
        session_id = self.session_id(token)
        if session_id is None:
            return None
        async with self._db.reading() as conn:
            credential = unexpired(await users_repo.session_credential(conn, session_id), datetime.now(UTC))
        return principal_of(credential, session_id=session_id) if credential else None

    def session_id(self, token: str) -> str | None:
        """The session id (jti) of a well-signed, unexpired session JWT."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "iat", "jti", "sub"]},
                audience="telentir-box",
            )
        except jwt.PyJWTError:
            return None
        jti = claims.get("jti")
        return jti if isinstance(jti, str) else None

    def issue_token(self, user_id: str, session_id: str, expires_at: datetime) -> str:
        now = datetime.now(UTC)
        return jwt.encode(
            {"sub": user_id, "jti": session_id, "iat": now, "exp": expires_at, "aud": "telentir-box"},
            self._secret,
            algorithm="HS256",
        )


def unexpired(credential: CredentialRow | None, now: datetime) -> CredentialRow | None:
    """A session's credential while the session lasts, else None."""
    if credential is None or credential.expires_at is None or credential.expires_at <= iso(now):
        return None
    return credential


def principal_of(
    credential: CredentialRow, *, session_id: str | None = None, api_key_id: str | None = None
) -> Principal:
    return Principal(
        user_id=credential.user_id,
        role=credential.role,  # type: ignore[arg-type]
        super_admin=credential.super_admin,
        phone_verified=credential.phone_verified,
        two_factor_configured=credential.totp_enabled,
        two_factor_pending=credential.pending_2fa,
        session_id=session_id,
        api_key_id=api_key_id,
    )
