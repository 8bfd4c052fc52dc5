"""API keys: long-lived bearer secrets that act as their owner. The secret is shown
once; only a keyed hash (HMAC-SHA256 under a master-key-derived pepper) is stored."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from telentir_box.auth.principal import API_KEY_PREFIX, Authenticator
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.db.users import ApiKeyRow
from telentir_box.errors import NotFound, ValidationFailed
from telentir_box.ids import is_valid_id, new_id

MAX_NAME = 100


@dataclass(frozen=True)
class NewApiKey:
    row: ApiKeyRow
    key: str


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits


async def create_api_key(db: Database, auth: Authenticator, user_id: str, name: str) -> NewApiKey:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ValidationFailed(f"Field `name` must be 1 to {MAX_NAME} characters")
    key = generate_api_key()
    hint = f"{API_KEY_PREFIX}...{key[-4:]}"

    async def write(tx: Transaction) -> ApiKeyRow:
        row = await users_repo.insert_api_key(tx, new_id("ak"), user_id, name, auth.hash_api_key(key), hint)
        await identity_repo.insert_audit(tx, "api_key_created", user_id=user_id, detail={"key_id": row.id})
        return row

    return NewApiKey(await db.write(write), key)


async def list_api_keys(db: Database, user_id: str) -> list[ApiKeyRow]:
    async with db.reading() as conn:
        return await users_repo.list_api_keys(conn, user_id)


async def revoke_api_key(db: Database, user_id: str, key_id: str) -> None:
    """Another user's key is indistinguishable from a missing one (404)."""
    if not is_valid_id(key_id, "ak"):
        raise NotFound("API key not found")

    async def write(tx: Transaction) -> bool:
        deleted = await users_repo.delete_api_key(tx, user_id, key_id)
        if deleted:
            await identity_repo.insert_audit(
                tx, "api_key_revoked", user_id=user_id, detail={"key_id": key_id}
            )
        return deleted

    if not await db.write(write):
        raise NotFound("API key not found")


async def flush_api_key_use(db: Database, auth: Authenticator) -> None:
    """Persist last-use times gathered in memory: one write per interval, not per request."""
    if not auth.api_key_use:
        return
    pending, auth.api_key_use = auth.api_key_use, {}
    last_used = {key_id: iso(datetime.fromtimestamp(at, UTC)) for key_id, at in pending.items()}

    async def write(tx: Transaction) -> None:
        await users_repo.record_api_key_use(tx, last_used)

    await db.write(write)
