"""The root object: a user's stores and servers. The first call provisions them,
exactly once even when first calls race: a `default` server (generated, private key
sealed), and per store an object plus a default key wrapped for that server."""

from __future__ import annotations

import asyncio
import secrets
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
from telentir_box.ids import new_id
from telentir_box.store.codec import IV_BYTES, TAG_BYTES, object_record
from telentir_box.store.models import DEFAULT_SERVER, STORES, Root, RootServer, StoreEntry
from telentir_box.store.servers import open_private_key, seal_private_key


async def ensure_provisioned(db: Database, keyring: Keyring, user_id: str) -> list[keys_repo.StoreRow]:
    async with db.reading() as conn:
        stores = await keys_repo.list_stores(conn, user_id)
    if stores:
        return stores
    # Key generation is the slow part; it runs before the write, and a loser of the
    # race simply discards its key.
    private = await asyncio.to_thread(rsa_keys.generate_private_key)
    await db.write(_Plan(keyring, user_id, private))
    async with db.reading() as conn:
        return await keys_repo.list_stores(conn, user_id)


class _Plan:
    """Everything one provisioning writes, prepared outside the transaction."""

    def __init__(self, keyring: Keyring, user_id: str, private: rsa.RSAPrivateKey) -> None:
        self.user_id = user_id
        self.server_id = new_id("srv")
        self.public_key = rsa_keys.spki_text(private.public_key())
        self.sealed = seal_private_key(keyring, self.server_id, private)
        self.entries: list[tuple[str, str, bytes, bytes, objects_repo.NewObject]] = []
        for store in STORES:
            aes, iv = AESGCM.generate_key(256), secrets.token_bytes(IV_BYTES)
            key_id, object_id = new_id("key"), new_id("obj")
            # The store object stays decryptable with the store's own key, as clients expect.
            sealed = AESGCM(aes).encrypt(iv, msgspec.json.encode({"title": store}), None)
            new = objects_repo.NewObject(
                object_id, key_id, None, sealed[:-TAG_BYTES], sealed[-TAG_BYTES:], "{}"
            )
            self.entries.append((store, key_id, rsa_keys.wrap(private.public_key(), aes), iv, new))

    async def __call__(self, tx: Transaction) -> bool:
        if not await keys_repo.claim_store_root(tx, self.user_id):
            return False
        await keys_repo.insert_server(
            tx,
            server_id=self.server_id,
            user_id=self.user_id,
            name=DEFAULT_SERVER,
            public_key=self.public_key,
            sealed_private=self.sealed,
        )
        keys = [(key_id, wrapped, iv) for _, key_id, wrapped, iv, _ in self.entries]
        await keys_repo.insert_keys(tx, self.user_id, DEFAULT_SERVER, keys)
        rows = await objects_repo.insert_objects(tx, self.user_id, [entry[4] for entry in self.entries])
        events: list[tuple[str, Any]] = [
            ("key_created", {"key_id": key_id, "user_id": self.user_id, "created_at": tx.now})
            for key_id, _, _ in keys
        ]
        events += [("object_created", object_record(row)) for row in rows]
        await record_events(tx, self.user_id, events)
        await keys_repo.insert_stores(
            tx,
            self.user_id,
            [keys_repo.StoreRow(store, new.id, key_id) for store, key_id, _, _, new in self.entries],
        )
        return True


async def get_root(db: Database, keyring: Keyring, user_id: str) -> Root:
    stores = await ensure_provisioned(db, keyring, user_id)
    async with db.reading() as conn:
        servers = await keys_repo.list_servers(conn, user_id)
    return Root(
        stores={s.name: StoreEntry(id=s.object_id, defaultKey=s.default_key_id) for s in stores},
        servers={
            s.name: RootServer(
                publicKey=s.public_key, deprecated=s.deprecated, privateKey=open_private_key(keyring, s)
            )
            for s in servers
        },
    )


async def store_object_id(db: Database, keyring: Keyring, user_id: str, store: str) -> str:
    stores = await ensure_provisioned(db, keyring, user_id)
    return next(s.object_id for s in stores if s.name == store)
