"""Call records in the user's encrypted `calls` store: the Call item and its child
objects (transcription, audio), each version sealed under a fresh AES-256-GCM key
wrapped for the user's server, written inside the caller's transaction with the
same events as any write. Recordings may be larger than a client may write."""

from __future__ import annotations

import io
import secrets
import tempfile
from dataclasses import dataclass
from typing import IO, Any

import msgspec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as calls_repo
from telentir_box.db import keys as keys_repo
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_events
from telentir_box.errors import NotFound
from telentir_box.ids import new_id
from telentir_box.store.codec import IV_BYTES, TAG_BYTES
from telentir_box.store.models import DEFAULT_SERVER, STORES, ObjectRecord
from telentir_box.store.root import ensure_provisioned

CALLS_STORE = "calls"
assert CALLS_STORE in STORES
_CHUNK = 1 << 20
# An object_created event carries the object's ciphertext, in hex, to every stream and
# into the event log; a recording's would be tens of MB. Past this size the event names
# the object with empty `content` and `auth_tag`, and the client GETs it.
EVENT_CONTENT_MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Spooled:
    """Ciphertext of a recording, kept in an unnamed temporary file rather than in
    memory: SQLite builds the whole row in memory while storing it, and the webhook's
    copy, the ciphertext and that row side by side would triple the recording."""

    file: IO[bytes]
    size: int

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class Sealed:
    """A document encrypted under a fresh AES key, the key wrapped for one server."""

    key_id: str
    server: str
    wrapped: bytes
    iv: bytes
    content: bytes | Spooled
    auth_tag: bytes

    def stored(self) -> tuple[bytes | IO[bytes], int]:
        """The content as the repository writes it, and its size."""
        if isinstance(self.content, Spooled):
            return self.content.file, self.content.size
        return self.content, len(self.content)


def seal_parts(public_spki: str, server: str, parts: list[bytes | memoryview]) -> Sealed:
    """The concatenation of `parts` sealed without ever joining them, piece by piece;
    past EVENT_CONTENT_MAX_BYTES into a temporary file (CPU-heavy for large ones: run
    in a thread)."""
    aes, iv = secrets.token_bytes(32), secrets.token_bytes(IV_BYTES)
    encryptor = Cipher(algorithms.AES(aes), modes.GCM(iv)).encryptor()
    size = sum(len(p) for p in parts)
    spool = size > EVENT_CONTENT_MAX_BYTES
    # Closed (and so removed) when the Sealed is dropped: a write may run more than once.
    sink: IO[bytes] = tempfile.TemporaryFile() if spool else io.BytesIO()  # noqa: SIM115
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), _CHUNK):
            sink.write(encryptor.update(view[start : start + _CHUNK]))
    sink.write(encryptor.finalize())
    wrapped = rsa_keys.wrap(rsa_keys.parse_spki(public_spki), aes)
    tag = encryptor.tag
    assert len(tag) == TAG_BYTES
    content: bytes | Spooled = Spooled(sink, size) if spool else sink.getvalue()  # type: ignore[attr-defined]
    return Sealed(new_id("key"), server, wrapped, iv, content, tag)


def seal_document(public_spki: str, server: str, document: Any) -> Sealed:
    return seal_parts(public_spki, server, [msgspec.json.encode(document)])


async def server_public_key(tx: Transaction, user_id: str, server: str) -> str:
    row = await keys_repo.get_server(tx.conn, user_id, server)
    if row is None:
        raise NotFound(f"no server named '{server}'")
    return row.public_key


async def calls_store_id(db: Database, keyring: Keyring, user_id: str) -> str:
    """The user's `calls` store (provisioned on first use, as any write would)."""
    stores = await ensure_provisioned(db, keyring, user_id)
    return next(s.object_id for s in stores if s.name == CALLS_STORE)


async def create_object(tx: Transaction, user_id: str, parent: str, sealed: Sealed) -> str:
    await keys_repo.insert_keys(tx, user_id, sealed.server, [(sealed.key_id, sealed.wrapped, sealed.iv)])
    object_id = new_id("obj")
    await calls_repo.insert_call_object(
        tx, user_id, object_id, sealed.key_id, parent, *sealed.stored(), sealed.auth_tag
    )
    inline = not isinstance(sealed.content, Spooled)
    record = ObjectRecord(
        id=object_id,
        metadata={},
        created_at=tx.now,
        updated_at=tx.now,
        user_id=user_id,
        key_id=sealed.key_id,
        auth_tag=sealed.auth_tag.hex() if inline else "",
        content=sealed.content.hex() if isinstance(sealed.content, bytes) else "",
        related_object_id=parent,
    )
    await record_events(
        tx,
        user_id,
        [
            ("key_created", {"key_id": sealed.key_id, "user_id": user_id, "created_at": tx.now}),
            ("object_created", record),
        ],
    )
    return object_id


async def replace_object(tx: Transaction, user_id: str, object_id: str, sealed: Sealed) -> None:
    """A new version of `object_id` under a fresh key; the old key goes with it."""
    old_key = await calls_repo.object_key_id(tx.conn, user_id, object_id)
    if old_key is None:
        raise NotFound("the call's object is gone")
    await keys_repo.insert_keys(tx, user_id, sealed.server, [(sealed.key_id, sealed.wrapped, sealed.iv)])
    await calls_repo.replace_call_object(
        tx, user_id, object_id, sealed.key_id, *sealed.stored(), sealed.auth_tag
    )
    await tx.conn.execute("DELETE FROM keys WHERE id = ? AND user_id = ?", (old_key, user_id))
    payload = {"object_id": object_id, "key_id": sealed.key_id, "user_id": user_id, "updated_at": tx.now}
    await record_events(
        tx,
        user_id,
        [
            ("key_created", {"key_id": sealed.key_id, "user_id": user_id, "created_at": tx.now}),
            ("object_updated", payload),
            ("key_deleted", {"key_id": old_key, "user_id": user_id, "deleted_at": tx.now}),
        ],
    )


async def default_server(conn: Connection, user_id: str) -> str:
    """The user server the box writes records of calls it did not place for: `default`,
    else the first one still in use (as the client chooses its signer)."""
    servers = [s for s in await keys_repo.list_servers(conn, user_id) if not s.deprecated]
    named = next((s.name for s in servers if s.name == DEFAULT_SERVER), None)
    if named is None and not servers:
        raise NotFound("the user has no server to write the call for")
    return named or servers[0].name
