"""Keys: AES-256 keys wrapped (RSA-OAEP) for one of the caller's servers or for the
box's own; the box stores only the wrapped form and the IV."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telentir_box.config import StoreConfig
from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import keys as keys_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_event
from telentir_box.errors import Conflict, NotFound, ValidationFailed
from telentir_box.ids import is_valid_id, new_id
from telentir_box.store.codec import IV_BYTES, decode_field, encode_metadata, key_record
from telentir_box.store.models import DEFAULT_SERVER, KeyCreate, KeyMint, KeyPatch, KeyRecord
from telentir_box.store.root import ensure_provisioned
from telentir_box.store.servers import public_key_for

AES_KEY_BYTES = 32


async def _server_key(
    db: Database, keyring: Keyring, user_id: str, name: str
) -> tuple[str, rsa.RSAPublicKey]:
    try:
        return await public_key_for(db, keyring, user_id, name)
    except NotFound:
        if name.lower() != DEFAULT_SERVER:
            raise
    # `default` exists from the user's first root call on; a caller may come here first.
    await ensure_provisioned(db, keyring, user_id)
    return await public_key_for(db, keyring, user_id, name)


def _wrapped(name: str, data: bytes, public: rsa.RSAPublicKey) -> bytes:
    if len(data) != public.key_size // 8:
        raise ValidationFailed(f"`{name}` must be the {public.key_size // 8}-byte RSA-OAEP wrap of the key")
    return data


async def insert_key(
    db: Database, user_id: str, server: str, wrapped: bytes, iv: bytes, metadata: str | None
) -> KeyRecord:
    key_id = new_id("key")

    async def write(tx: Transaction) -> keys_repo.KeyRow:
        row = await keys_repo.insert_key(
            tx, key_id=key_id, user_id=user_id, server=server, key=wrapped, iv=iv, metadata=metadata or "{}"
        )
        payload = {"key_id": row.id, "user_id": user_id, "created_at": row.created_at}
        await record_event(tx, user_id, "key_created", payload)
        return row

    return key_record(await db.write(write))


async def create_key(
    db: Database, keyring: Keyring, user_id: str, body: KeyCreate, limits: StoreConfig
) -> KeyRecord:
    """POST /api/keys: the client wrapped the key itself; hex on the wire."""
    metadata = encode_metadata(body.metadata, limits.max_metadata_bytes)
    server, public = await _server_key(db, keyring, user_id, body.server)
    wrapped = _wrapped("key", decode_field("key", body.key, "hex"), public)
    iv = decode_field("iv", body.iv, "hex", IV_BYTES)
    return await insert_key(db, user_id, server, wrapped, iv, metadata)


async def mint_key(db: Database, keyring: Keyring, user_id: str, body: KeyMint, limits: StoreConfig) -> str:
    """PUT /api/keys, the documented form (base64): with no key the box mints one; a
    32-byte key is wrapped for the server and forgotten; a wrapped key is kept as is."""
    metadata = encode_metadata(body.metadata, limits.max_metadata_bytes)
    server, public = await _server_key(db, keyring, user_id, body.server)
    iv = (
        decode_field("iv", body.iv, "base64", IV_BYTES)
        if body.iv is not None
        else secrets.token_bytes(IV_BYTES)
    )
    if body.key is None:
        wrapped = rsa_keys.wrap(public, AESGCM.generate_key(256))
    else:
        given = decode_field("key", body.key, "base64")
        wrapped = (
            rsa_keys.wrap(public, given) if len(given) == AES_KEY_BYTES else _wrapped("key", given, public)
        )
    record = await insert_key(db, user_id, server, wrapped, iv, metadata)
    return record.id


async def get_key(db: Database, user_id: str, key_id: str) -> KeyRecord:
    if not is_valid_id(key_id):
        raise NotFound("no such key")
    async with db.reading() as conn:
        row = await keys_repo.get_key(conn, user_id, key_id)
    if row is None:
        raise NotFound("no such key")
    return key_record(row)


async def patch_key(
    db: Database, keyring: Keyring, user_id: str, key_id: str, body: KeyPatch, limits: StoreConfig
) -> KeyRecord:
    current = await get_key(db, user_id, key_id)
    metadata = encode_metadata(body.metadata, limits.max_metadata_bytes)
    if body.server is not None and body.key is None:
        raise ValidationFailed("changing `server` needs the key wrapped for it in `key`")
    server: str | None = None
    wrapped: bytes | None = None
    if body.key is not None:
        # Only a new wrap needs a usable server: a key whose server has been deprecated
        # since keeps its metadata and its own deprecation editable.
        server, public = await _server_key(db, keyring, user_id, body.server or current.server)
        wrapped = _wrapped("key", decode_field("key", body.key, "hex"), public)
    iv = decode_field("iv", body.iv, "hex", IV_BYTES) if body.iv is not None else None

    async def write(tx: Transaction) -> keys_repo.KeyRow | None:
        return await keys_repo.update_key(
            tx,
            user_id,
            key_id,
            metadata=metadata,
            key=wrapped,
            iv=iv,
            server=server if body.server is not None else None,
            deprecated=body.deprecated,
        )

    row = await db.write(write)
    if row is None:
        raise NotFound("no such key")
    return key_record(row)


async def delete_key(db: Database, user_id: str, key_id: str) -> None:
    """Objects under the key stay; a store's default key cannot go (the root needs it)."""
    if not is_valid_id(key_id):
        raise NotFound("no such key")

    async def write(tx: Transaction) -> str | None:
        store = await keys_repo.store_using(tx.conn, user_id, key_id=key_id)
        if store is not None:
            raise Conflict(f"the key is the default key of store '{store}'")
        deleted_at = await keys_repo.delete_key(tx, user_id, key_id)
        if deleted_at is None:
            return None
        await record_event(
            tx, user_id, "key_deleted", {"key_id": key_id, "user_id": user_id, "deleted_at": deleted_at}
        )
        return deleted_at

    if await db.write(write) is None:
        raise NotFound("no such key")
