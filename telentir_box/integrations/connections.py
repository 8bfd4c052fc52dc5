"""Connecting and disconnecting: the connect flow (a random, single-use state bound to
the user and short-lived, PKCE S256), the callback that exchanges the code and stores
the tokens sealed, the status of every provider, and disconnecting (revoke where the
provider can, drop the tokens and the undelivered deliveries)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from telentir_box.config import IntegrationsConfig
from telentir_box.crypto.sealing import Sealer
from telentir_box.db import integrations as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.errors import AppError, NotFound
from telentir_box.ids import new_id
from telentir_box.integrations import oauth
from telentir_box.integrations.providers import DeliveryFailed, Provider, ProviderApi
from telentir_box.integrations.tokens import TokenKeeper, expiry_of, open_tokens, seal_tokens

# The callback answers a browser with a redirect, so its failures are codes in the URL.
MAX_CODE_CHARS = 2048


class IntegrationNotConfigured(AppError):
    code, status, default_message = "INTEGRATION_NOT_CONFIGURED", 503, "This integration is not configured"


class ConnectFailed(Exception):
    """Why a callback stored nothing: a code the dashboard shows (invalid_state, ...)."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


@dataclass
class Connections:
    """The parts the connect flow uses."""

    db: Database
    http: httpx.AsyncClient
    config: IntegrationsConfig
    providers: dict[str, Provider]
    oauth_clients: Mapping[str, oauth.OAuthClient]
    tokens: TokenKeeper
    token_sealer: Sealer
    state_sealer: Sealer

    def provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(f"No integration named {name!r}")
        return provider


def state_hash(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()


async def start_connect(parts: Connections, user_id: str, name: str, redirect_uri: str) -> str:
    """The provider's authorization URL to send the user's browser to."""
    provider = parts.provider(name)
    missing = provider.missing_setting()
    if missing is not None:
        raise IntegrationNotConfigured(f"Set [integrations.{name}] {missing} to offer this integration")
    state, verifier = secrets.token_urlsafe(32), oauth.new_verifier()
    hashed = state_hash(state)
    row = repo.StateRow(
        user_id=user_id,
        provider=name,
        redirect_uri=redirect_uri,
        verifier=parts.state_sealer.seal(verifier.encode(), hashed),
        expires_at=iso(datetime.now(UTC) + timedelta(seconds=parts.config.state_ttl_seconds)),
    )

    async def insert(tx: Transaction) -> None:
        await repo.insert_state(tx, hashed, row)

    await parts.db.write(insert)
    client = parts.oauth_clients[name]
    return client.authorization_url(redirect_uri, state, verifier, provider.authorize_extra)


async def finish_connect(parts: Connections, user_id: str, name: str, query: dict[str, str]) -> None:
    """Check the state, exchange the code, record the account and store the tokens;
    ConnectFailed, with nothing stored, otherwise."""
    provider = parts.provider(name)
    state = query.get("state", "")
    if not state or len(state) > 256:
        raise ConnectFailed("invalid_state")
    hashed = state_hash(state)

    async def take(tx: Transaction) -> repo.StateRow | None:
        return await repo.take_state(tx, hashed, user_id, name)

    found = await parts.db.write(take)
    if found is None:
        raise ConnectFailed("invalid_state")
    if "error" in query:
        raise ConnectFailed("access_denied" if query["error"] == "access_denied" else "provider_error")
    code = query.get("code", "")
    if not code or len(code) > MAX_CODE_CHARS:
        raise ConnectFailed("missing_code")
    verifier = parts.state_sealer.open(found.verifier, hashed).decode()
    try:
        answer = await parts.oauth_clients[name].exchange_code(code, found.redirect_uri, verifier)
    except oauth.OAuthError:
        raise ConnectFailed("exchange_failed") from None
    await _store_connection(parts, provider, user_id, answer)


async def _store_connection(
    parts: Connections, provider: Provider, user_id: str, answer: dict[str, Any]
) -> None:
    access_token = str(answer["access_token"])

    async def token(stale: str | None) -> str:
        return access_token

    try:
        account = await provider.account(ProviderApi(parts.http, token), answer)
    except DeliveryFailed:
        raise ConnectFailed("account_unavailable") from None
    now = datetime.now(UTC)
    async with parts.db.reading() as conn:
        existing = await repo.get_integration(conn, user_id, provider.name)
    integration_id = existing.id if existing else new_id("int")
    row = repo.IntegrationRow(
        id=integration_id,
        user_id=user_id,
        provider=provider.name,
        status="connected",
        account=msgspec.json.encode(account).decode(),
        scopes=str(answer.get("scope") or provider.config().scopes),
        tokens=seal_tokens(parts.token_sealer, integration_id, answer),
        expires_at=expiry_of(answer, now),
        last_error="",
        connected_at=iso(now),
    )

    async def upsert(tx: Transaction) -> None:
        await repo.upsert_integration(tx, row)

    await parts.db.write(upsert)


class ProviderStatus(msgspec.Struct):
    provider: str
    connected: bool
    status: str  # disconnected | connected | broken
    configured: bool
    account: dict[str, str] | None
    connected_at: str | None
    scopes: list[str]
    last_error: str | None
    pending_deliveries: int
    failed_deliveries: int


async def integration_status(parts: Connections, user_id: str) -> list[ProviderStatus]:
    async with parts.db.reading() as conn:
        rows = {row.provider: row for row in await repo.user_integrations(conn, user_id)}
        counts = await repo.delivery_counts(conn, user_id)
    answer = []
    for name, provider in parts.providers.items():
        row = rows.get(name)
        answer.append(
            ProviderStatus(
                provider=name,
                connected=row is not None and row.status == "connected",
                status=row.status if row else "disconnected",
                configured=provider.missing_setting() is None,
                account=msgspec.json.decode(row.account) if row else None,
                connected_at=row.connected_at if row else None,
                scopes=row.scopes.split() if row else [],
                last_error=(row.last_error or None) if row else None,
                pending_deliveries=counts.get((name, "pending"), 0),
                failed_deliveries=counts.get((name, "dead"), 0),
            )
        )
    return answer


class Disconnected(msgspec.Struct):
    provider: str
    revoked: bool
    note: str
    dropped_deliveries: int


async def disconnect(parts: Connections, user_id: str, name: str) -> Disconnected:
    provider = parts.provider(name)
    async with parts.db.reading() as conn:
        row = await repo.get_integration(conn, user_id, name)
    if row is None:
        raise NotFound(f"{name} is not connected")
    tokens = open_tokens(parts.token_sealer, row.id, row.tokens)
    # Revoking the refresh token ends its access tokens too; where there is none, the access token.
    token = str(tokens.get("refresh_token") or tokens.get("access_token") or "")
    revoked = await parts.oauth_clients[name].revoke(token) if token else False
    if revoked:
        note = "revoked at the provider"
    elif not provider.config().revoke_url:
        note = f"{name} offers no revocation: remove the app's access in the provider's account settings"
    else:
        note = "the provider did not confirm the revocation: remove the app's access in its account settings"

    async def delete(tx: Transaction) -> int:
        return await repo.delete_integration(tx, user_id, name)

    dropped = await parts.db.write(delete)
    parts.tokens.forget(row.id)
    return Disconnected(provider=name, revoked=revoked, note=note, dropped_deliveries=dropped)
