"""Publications: the server-readable copy of an item (encrypted under a key wrapped
for one of the box's platform keys) published under a store type, and the one
function the box's own features use to read such a copy in plaintext."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import objects as objects_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_event
from telentir_box.errors import NotFound, ValidationFailed
from telentir_box.ids import is_valid_id
from telentir_box.store.codec import decode_cursor, encode_cursor
from telentir_box.store.models import STORES, Publication, PublicationPage


class Unreadable(ValueError):
    """The copy is not encrypted for any key the box holds, or does not decrypt."""


def check_type(type: str) -> None:
    if type not in STORES:
        raise ValidationFailed(f"unknown store type '{type}'; one of: {', '.join(STORES)}")


def _decrypt(keyring: Keyring, copy: objects_repo.PublishedCopy) -> bytes:
    """CPU-heavy (RSA private-key operation): run it in a worker thread."""
    platform = next((k for name, k in keyring.platform_keys.items() if name.lower() == copy.server), None)
    if platform is None:
        raise Unreadable("the copy's key is not wrapped for the box's server")
    try:
        aes = rsa_keys.unwrap(platform.private, copy.key)
        return AESGCM(aes).decrypt(copy.iv, copy.content + copy.auth_tag, None)
    except (ValueError, InvalidTag) as exc:
        raise Unreadable("the copy does not decrypt with the box's key") from exc


async def publish(
    db: Database, keyring: Keyring, user_id: str, type: str, related_id: str, object_id: str
) -> Publication:
    check_type(type)
    if not is_valid_id(related_id):
        raise NotFound("no such related object")
    if not is_valid_id(object_id):
        raise NotFound("no such object")
    async with db.reading() as conn:
        if not await objects_repo.owns_object(conn, user_id, related_id):
            raise NotFound("no such related object")
        copy = await objects_repo.get_copy(conn, user_id, object_id)
    if copy is None:
        raise NotFound("no such object")
    # Refuse now what the box could not read later, when a job needs it.
    try:
        await asyncio.to_thread(_decrypt, keyring, copy)
    except Unreadable as exc:
        raise ValidationFailed(f"`objectId`: {exc}") from None

    async def write(tx: Transaction) -> Publication:
        if not await objects_repo.owns_object(
            tx.conn, user_id, related_id
        ) or not await objects_repo.owns_object(tx.conn, user_id, object_id):
            raise NotFound("no such object")
        row = await objects_repo.upsert_publication(tx, user_id, type, related_id, object_id)
        payload = {"user_id": user_id, "type": type, "related_id": related_id, "object_id": object_id}
        await record_event(tx, user_id, "publish", {**payload, "timestamp": row.updated_at})
        return Publication(row.type, row.related_id, row.object_id, row.created_at, row.updated_at)

    return await db.write(write)


async def unpublish(db: Database, user_id: str, type: str, related_id: str) -> None:
    check_type(type)
    if not is_valid_id(related_id):
        raise NotFound("nothing is published there")

    async def write(tx: Transaction) -> bool:
        deleted_at = await objects_repo.delete_publication(tx, user_id, type, related_id)
        if deleted_at is None:
            return False
        payload = {"user_id": user_id, "type": type, "related_id": related_id, "timestamp": deleted_at}
        await record_event(tx, user_id, "unpublish", payload)
        return True

    if not await db.write(write):
        raise NotFound("nothing is published there")


async def list_publications(
    db: Database, user_id: str, type: str, *, cursor: str | None, limit: int
) -> PublicationPage:
    check_type(type)
    after = decode_cursor(cursor)
    async with db.reading() as conn:
        rows = await objects_repo.list_publications(conn, user_id, type, after_seq=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return PublicationPage(
        items=[Publication(r.type, r.related_id, r.object_id, r.created_at, r.updated_at) for r in rows],
        next_cursor=encode_cursor(rows[-1].seq) if more else None,
    )


async def read_publication(db: Database, keyring: Keyring, user_id: str, type: str, related_id: str) -> Any:
    """The plaintext (decoded JSON) of what the user published for `related_id` under
    `type`. NotFound when nothing is published there; Unreadable if the box cannot
    decrypt it."""
    check_type(type)
    async with db.reading() as conn:
        copy = await objects_repo.get_published_copy(conn, user_id, type, related_id)
    if copy is None:
        raise NotFound("nothing is published there")
    plaintext = await asyncio.to_thread(_decrypt, keyring, copy)
    try:
        return msgspec.json.decode(plaintext)
    except msgspec.DecodeError as exc:
        raise Unreadable("the copy is not JSON") from exc
