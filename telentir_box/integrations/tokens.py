"""Keeps each connection's tokens alive: sealed at rest under the master key (the
integration id bound), refreshed shortly before they expire or when the provider
refuses the access token, with whatever refresh token the answer carries stored every
time (Microsoft rotates it), one refresh at a time per integration. A refresh token the
provider refuses (invalid_grant) marks the integration broken, with an event."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from telentir_box.crypto.sealing import Sealer
from telentir_box.db import integrations as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_event
from telentir_box.db.timestamps import iso
from telentir_box.integrations import oauth
from telentir_box.integrations.providers import DeliveryFailed, TokenSource

# Refresh this long before the provider's stated expiry, so a token never dies mid-send.
REFRESH_MARGIN = timedelta(minutes=2)
# Token endpoint errors meaning the refresh token is dead for good: the user must reconnect.
DEAD_GRANT = frozenset({"invalid_grant", "unauthorized_client"})
BROKEN_EVENT = "integration_broken"


def seal_tokens(sealer: Sealer, integration_id: str, tokens: dict[str, Any]) -> bytes:
    return sealer.seal(msgspec.json.encode(tokens), integration_id.encode())


def open_tokens(sealer: Sealer, integration_id: str, sealed: bytes) -> dict[str, Any]:
    return msgspec.json.decode(sealer.open(sealed, integration_id.encode()))


def expiry_of(answer: Mapping[str, Any], now: datetime) -> str | None:
    """When the access token expires (None: not said, as Salesforce does)."""
    seconds = answer.get("expires_in")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return None
    return iso(now + timedelta(seconds=seconds))


class TokenKeeper:
    def __init__(self, db: Database, sealer: Sealer, oauth_clients: Mapping[str, oauth.OAuthClient]) -> None:
        self._db = db
        self._sealer = sealer
        self._oauth_clients = oauth_clients
        self._locks: dict[str, asyncio.Lock] = {}

    def source(self, integration_id: str) -> TokenSource:
        async def token(stale: str | None) -> str:
            return await self.access_token(integration_id, stale)

        return token

    def forget(self, integration_id: str) -> None:
        self._locks.pop(integration_id, None)

    async def access_token(self, integration_id: str, stale: str | None = None) -> str:
        """A live access token; refreshed first when near expiry or equal to `stale`.
        Only refreshing takes the integration's lock: a token still good is read without it."""
        token = await self._current(integration_id, stale)
        if token is not None:
            return token
        async with self._locks.setdefault(integration_id, asyncio.Lock()):
            # Another task may have refreshed while this one waited for the lock.
            token = await self._current(integration_id, stale)
            if token is not None:
                return token
            row, tokens = await self._load(integration_id)
            return await self._refresh(row, tokens, datetime.now(UTC))

    async def _current(self, integration_id: str, stale: str | None) -> str | None:
        row, tokens = await self._load(integration_id)
        fresh = row.expires_at is None or row.expires_at > iso(datetime.now(UTC) + REFRESH_MARGIN)
        return str(tokens["access_token"]) if fresh and tokens["access_token"] != stale else None

    async def _load(self, integration_id: str) -> tuple[repo.IntegrationRow, dict[str, Any]]:
        row = await self._db.read(repo.get_integration_by_id, integration_id)
        if row is None or row.status != "connected":
            raise DeliveryFailed("the integration is not connected: connect it again", permanent=True)
        return row, open_tokens(self._sealer, row.id, row.tokens)

    async def _refresh(self, row: repo.IntegrationRow, tokens: dict[str, Any], now: datetime) -> str:
        refresh_token = tokens.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            await self._break(row, "no_refresh_token")
            raise DeliveryFailed("the provider gave no refresh token: connect it again", permanent=True)
        try:
            answer = await self._oauth_clients[row.provider].refresh(refresh_token, row.scopes)
        except oauth.OAuthError as exc:
            if exc.code in DEAD_GRANT:
                await self._break(row, exc.code)
                raise DeliveryFailed(
                    f"refresh refused ({exc.code}): connect it again", permanent=True
                ) from None
            raise DeliveryFailed(f"refresh failed: {exc.code}", exc.status) from None
        # Keep what the answer leaves out (Google sends no new refresh token, Salesforce
        # no instance_url); take every rotated value it carries.
        merged = {**tokens, **answer}
        sealed = seal_tokens(self._sealer, row.id, merged)
        expires_at = expiry_of(answer, now)

        async def store(tx: Transaction) -> None:
            await repo.store_tokens(tx, row.id, sealed, expires_at)

        await self._db.write(store)
        return str(merged["access_token"])

    async def _break(self, row: repo.IntegrationRow, error: str) -> None:
        async def mark(tx: Transaction) -> None:
            if await repo.mark_broken(tx, row.id, error):
                await record_event(tx, row.user_id, BROKEN_EVENT, {"provider": row.provider, "error": error})

        await self._db.write(mark)
