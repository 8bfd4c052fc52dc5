"""Servers: the box's platform keys as `GET /api/server` publishes them, and each
user's own RSA servers (generated, with the private key sealed, or public-only)."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.encoding import encode_base64url
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import keys as keys_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import Conflict, NotFound, ValidationFailed
from telentir_box.ids import new_id
from telentir_box.store.keygen import KeyGenerator
from telentir_box.store.models import CreatedServer, PlatformKeyView, ServerCreate, ServerInfo, UserServer

SEAL_PURPOSE = "user-server-keys"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def platform_server_info(keyring: Keyring) -> ServerInfo:
    keys = {
        name.lower(): PlatformKeyView(spki=rsa_keys.spki_text(key.public), jwk=rsa_keys.jwk(key.public))
        for name, key in keyring.platform_keys.items()
    }
    return ServerInfo(current=keyring.current_platform.lower(), keys=keys)


def normalise_server_name(name: str, keyring: Keyring) -> str:
    """Lower-case, URL-safe, and never a platform key's name (the client would then
    encrypt the box's copies for the user instead)."""
    lowered = name.strip().lower()
    if not _NAME.fullmatch(lowered):
        raise ValidationFailed("`name` must be 1-64 characters: letters, digits, '.', '_' or '-'")
    if lowered in {n.lower() for n in keyring.platform_keys}:
        raise ValidationFailed(f"`name` '{lowered}' is reserved for the box's own server")
    return lowered


def parse_upload(text: str) -> rsa.RSAPublicKey:
    """An uploaded public key the box can wrap AES keys for. OpenSSL parses keys it then
    refuses to encrypt with (moduli over 16384 bits, long exponents on large moduli):
    one trial wrap refuses them here rather than at the first key minted for them."""
    try:
        public = rsa_keys.parse_spki(text)
    except ValueError as exc:
        raise ValidationFailed(f"`publicKey` is not a usable RSA SPKI: {exc}") from None
    try:
        rsa_keys.wrap(public, secrets.token_bytes(32))
    except ValueError:
        raise ValidationFailed(
            "`publicKey` is not a usable RSA SPKI: it cannot wrap keys (modulus or exponent too large)"
        ) from None
    return public


def seal_private_key(keyring: Keyring, server_id: str, private: rsa.RSAPrivateKey) -> bytes:
    return keyring.sealer(SEAL_PURPOSE).seal(rsa_keys.private_key_der(private), server_id.encode())


def open_private_key(keyring: Keyring, row: keys_repo.ServerRow) -> str | None:
    """The owner's private key as the client loads it (PKCS#8 DER, base64url)."""
    if row.sealed_private is None:
        return None
    der = keyring.sealer(SEAL_PURPOSE).open(row.sealed_private, row.id.encode())
    return encode_base64url(der)


async def list_servers(db: Database, user_id: str) -> list[UserServer]:
    async with db.reading() as conn:
        rows = await keys_repo.list_servers(conn, user_id)
    return [UserServer(r.name, r.public_key, r.deprecated, r.created_at) for r in rows]


@dataclass(frozen=True)
class NewServer:
    """A valid request to register a server: `public_key` None asks for a generated pair."""

    name: str
    public_key: str | None


async def check_new_server(keyring: Keyring, body: ServerCreate) -> NewServer:
    """Everything about the request that can be refused without the database, first:
    a bad request must never cost a key generation."""
    name = normalise_server_name(body.name, keyring)
    if body.mode == "generate":
        if body.publicKey is not None:
            raise ValidationFailed("`publicKey` is only for mode 'upload_public'")
        return NewServer(name, None)
    if not body.publicKey:
        raise ValidationFailed("`publicKey` is required for mode 'upload_public'")
    # A trial wrap with a large key or exponent costs milliseconds: off the event loop.
    await asyncio.to_thread(parse_upload, body.publicKey)
    return NewServer(name, body.publicKey)


async def create_server(
    db: Database, keyring: Keyring, keygen: KeyGenerator, user_id: str, new: NewServer
) -> CreatedServer:
    """Register `new` for `user_id`; a generated pair only once the name is known to be
    free and the user within their generation limit (the insert still settles a race)."""
    server_id = new_id("srv")
    if new.public_key is not None:
        public_key, sealed, private_text = new.public_key, None, None
    else:
        async with db.reading() as conn:
            if await keys_repo.get_server(conn, user_id, new.name) is not None:
                raise Conflict(f"a server named '{new.name}' already exists")
        keygen.admit(user_id)
        private = await keygen.generate()
        public_key = rsa_keys.spki_text(private.public_key())
        sealed = seal_private_key(keyring, server_id, private)
        private_text = encode_base64url(rsa_keys.private_key_der(private))

    async def write(tx: Transaction) -> keys_repo.ServerRow | None:
        return await keys_repo.insert_server(
            tx,
            server_id=server_id,
            user_id=user_id,
            name=new.name,
            public_key=public_key,
            sealed_private=sealed,
        )

    if await db.write(write) is None:
        raise Conflict(f"a server named '{new.name}' already exists")
    return CreatedServer(name=new.name, publicKey=public_key, privateKey=private_text)


async def set_deprecated(db: Database, user_id: str, name: str, deprecated: bool) -> UserServer:
    async def write(tx: Transaction) -> keys_repo.ServerRow | None:
        return await keys_repo.set_server_deprecated(tx, user_id, name.lower(), deprecated)

    row = await db.write(write)
    if row is None:
        raise NotFound("no such server")
    return UserServer(row.name, row.public_key, row.deprecated, row.created_at)


async def public_key_for(
    db: Database, keyring: Keyring, user_id: str, name: str
) -> tuple[str, rsa.RSAPublicKey]:
    """The key a new AES key is wrapped for: the caller's (not deprecated) server or a
    platform server, by lower-case name."""
    lowered = name.lower()
    for platform_name, platform in keyring.platform_keys.items():
        if platform_name.lower() == lowered:
            return lowered, platform.public
    async with db.reading() as conn:
        row = await keys_repo.get_server(conn, user_id, lowered)
    if row is None:
        raise NotFound(f"no server named '{lowered}'")
    if row.deprecated:
        raise ValidationFailed(f"server '{lowered}' is deprecated and takes no new keys")
    return lowered, rsa_keys.parse_spki(row.public_key)


async def user_server_key(db: Database, user_id: str, name: str) -> rsa.RSAPublicKey:
    """The public key of the caller's own server `name` (any case), which checks the
    JWTs it signs and receives what the box encrypts for it; never a platform key or
    another user's server (both are unknown names here)."""
    lowered = name.lower()
    async with db.reading() as conn:
        row = await keys_repo.get_server(conn, user_id, lowered)
    if row is None:
        raise NotFound(f"no server named '{lowered}'")
    if row.deprecated:
        raise ValidationFailed(f"server '{lowered}' is deprecated and takes no new keys")
    return rsa_keys.parse_spki(row.public_key)
