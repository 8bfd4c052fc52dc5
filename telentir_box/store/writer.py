"""What the box itself writes into a user's store (ingested leads, call records):
each document under a fresh AES-256-GCM key and IV wrapped for the user's server
public key, so the user's client can read it and no nonce is ever reused."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import keys as keys_repo
from telentir_box.db import objects as objects_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_events
from telentir_box.errors import NotFound, ValidationFailed
from telentir_box.ids import new_id
from telentir_box.store.codec import IV_BYTES, TAG_BYTES, object_record
from telentir_box.store.models import DEFAULT_SERVER, STORES, ObjectRecord
from telentir_box.store.root import ensure_provisioned


@dataclass(frozen=True, slots=True)
class _Sealed:
    key_id: str
    wrapped: bytes
    iv: bytes
    new: objects_repo.NewObject


def _seal_all(public: rsa.RSAPublicKey, parent: str, documents: Sequence[Any]) -> list[_Sealed]:
    sealed = []
    for document in documents:
        aes, iv = AESGCM.generate_key(256), secrets.token_bytes(IV_BYTES)
        key_id = new_id("key")
        out = AESGCM(aes).encrypt(iv, msgspec.json.encode(document), None)
        new = objects_repo.NewObject(new_id("obj"), key_id, parent, out[:-TAG_BYTES], out[-TAG_BYTES:], "{}")
        sealed.append(_Sealed(key_id, rsa_keys.wrap(public, aes), iv, new))
    return sealed


async def write_for_user(
    db: Database,
    keyring: Keyring,
    user_id: str,
    store: str,
    documents: Sequence[Any],
    *,
    server: str = DEFAULT_SERVER,
    in_transaction: Callable[[Transaction], Awaitable[None]] | None = None,
) -> list[ObjectRecord]:
    """Store each JSON document as a new item of `store`, readable by the holder of
    the user server `server`'s private key; all in one write, one event per row.
    `in_transaction` runs inside that write (e.g. to count what was stored atomically)."""
    if store not in STORES:
        raise ValidationFailed(f"unknown store '{store}'")
    if not documents:
        return []
    stores = await ensure_provisioned(db, keyring, user_id)
    parent = next(s.object_id for s in stores if s.name == store)
    async with db.reading() as conn:
        row = await keys_repo.get_server(conn, user_id, server.lower())
    if row is None or row.deprecated:
        raise NotFound(f"no usable server named '{server.lower()}'")
    public = rsa_keys.parse_spki(row.public_key)
    sealed = await asyncio.to_thread(_seal_all, public, parent, documents)

    async def write(tx: Transaction) -> list[ObjectRecord]:
        # A handful of statements per batch, whatever its size: ingestion is bulk work.
        await keys_repo.insert_keys(tx, user_id, row.name, [(i.key_id, i.wrapped, i.iv) for i in sealed])
        rows = await objects_repo.insert_objects(tx, user_id, [item.new for item in sealed])
        records = [object_record(r) for r in rows]
        events: list[tuple[str, Any]] = [
            ("key_created", {"key_id": i.key_id, "user_id": user_id, "created_at": tx.now}) for i in sealed
        ]
        events += [("object_created", record) for record in records]
        await record_events(tx, user_id, events)
        if in_transaction is not None:
            await in_transaction(tx)
        return records

    return await db.write(write)
