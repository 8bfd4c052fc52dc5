"""Repository for the store's key side: users' RSA servers, wrapped AES keys and the
per-user store index (store name -> store object and default key)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


@dataclass(frozen=True, slots=True)
class ServerRow:
    id: str
    user_id: str
    name: str
    public_key: str
    sealed_private: bytes | None
    deprecated: bool
    created_at: str


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    user_id: str
    server: str
    key: bytes
    iv: bytes
    metadata: str
    deprecated: bool
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class StoreRow:
    name: str
    object_id: str
    default_key_id: str


_SERVER_COLUMNS = "id, user_id, name, public_key, sealed_private, deprecated, created_at"
_KEY_COLUMNS = "id, user_id, server, key, iv, metadata, deprecated, created_at, updated_at"


def _server(r: Row) -> ServerRow:
    sealed = r["sealed_private"]
    return ServerRow(
        r["id"],
        r["user_id"],
        r["name"],
        r["public_key"],
        bytes(sealed) if sealed is not None else None,
        bool(r["deprecated"]),
        r["created_at"],
    )


def _key(r: Row) -> KeyRow:
    return KeyRow(
        r["id"],
        r["user_id"],
        r["server"],
        bytes(r["key"]),
        bytes(r["iv"]),
        r["metadata"],
        bool(r["deprecated"]),
        r["created_at"],
        r["updated_at"],
    )


async def list_servers(conn: Connection, user_id: str) -> list[ServerRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_SERVER_COLUMNS} FROM user_servers WHERE user_id = ? ORDER BY created_at, name",
        (user_id,),
    )
    return [_server(r) for r in rows]


async def get_server(conn: Connection, user_id: str, name: str) -> ServerRow | None:
    async with conn.execute(
        f"SELECT {_SERVER_COLUMNS} FROM user_servers WHERE user_id = ? AND name = ?", (user_id, name)
    ) as cursor:
        row = await cursor.fetchone()
    return _server(row) if row else None


async def insert_server(
    tx: Transaction,
    *,
    server_id: str,
    user_id: str,
    name: str,
    public_key: str,
    sealed_private: bytes | None,
) -> ServerRow | None:
    """None when the user already has a server of that name."""
    async with tx.conn.execute(
        "INSERT INTO user_servers (id, user_id, name, public_key, sealed_private) VALUES (?, ?, ?, ?, ?)"
        f" ON CONFLICT (user_id, name) DO NOTHING RETURNING {_SERVER_COLUMNS}",
        (server_id, user_id, name, public_key, sealed_private),
    ) as cursor:
        row = await cursor.fetchone()
    return _server(row) if row else None


async def set_server_deprecated(
    tx: Transaction, user_id: str, name: str, deprecated: bool
) -> ServerRow | None:
    async with tx.conn.execute(
        f"UPDATE user_servers SET deprecated = ? WHERE user_id = ? AND name = ? RETURNING {_SERVER_COLUMNS}",
        (int(deprecated), user_id, name),
    ) as cursor:
        row = await cursor.fetchone()
    return _server(row) if row else None


async def insert_key(
    tx: Transaction,
    *,
    key_id: str,
    user_id: str,
    server: str,
    key: bytes,
    iv: bytes,
    metadata: str = "{}",
) -> KeyRow:
    async with tx.conn.execute(
        "INSERT INTO keys (id, user_id, server, key, iv, metadata) VALUES (?, ?, ?, ?, ?, ?)"
        f" RETURNING {_KEY_COLUMNS}",
        (key_id, user_id, server, key, iv, metadata),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return _key(row)


async def insert_keys(
    tx: Transaction, user_id: str, server: str, keys: Sequence[tuple[str, bytes, bytes]]
) -> None:
    """Bulk insert of (id, wrapped key, iv) minted by the box for one server."""
    await tx.conn.executemany(
        "INSERT INTO keys (id, user_id, server, key, iv, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(key_id, user_id, server, key, iv, tx.now, tx.now) for key_id, key, iv in keys],
    )


async def get_key(conn: Connection, user_id: str, key_id: str) -> KeyRow | None:
    async with conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = ? AND user_id = ?", (key_id, user_id)
    ) as cursor:
        row = await cursor.fetchone()
    return _key(row) if row else None


async def update_key(
    tx: Transaction,
    user_id: str,
    key_id: str,
    *,
    metadata: str | None,
    key: bytes | None,
    iv: bytes | None,
    server: str | None,
    deprecated: bool | None,
) -> KeyRow | None:
    """Absent (None) fields are kept."""
    async with tx.conn.execute(
        "UPDATE keys SET metadata = COALESCE(?, metadata), key = COALESCE(?, key), iv = COALESCE(?, iv),"
        " server = COALESCE(?, server), deprecated = COALESCE(?, deprecated),"
        f" updated_at = {_NOW} WHERE id = ? AND user_id = ? RETURNING {_KEY_COLUMNS}",
        (metadata, key, iv, server, None if deprecated is None else int(deprecated), key_id, user_id),
    ) as cursor:
        row = await cursor.fetchone()
    return _key(row) if row else None


async def delete_key(tx: Transaction, user_id: str, key_id: str) -> str | None:
    """The deletion time, or None when the caller has no such key."""
    async with tx.conn.execute(
        f"DELETE FROM keys WHERE id = ? AND user_id = ? RETURNING {_NOW} AS deleted_at", (key_id, user_id)
    ) as cursor:
        row = await cursor.fetchone()
    return row["deleted_at"] if row else None


async def claim_store_root(tx: Transaction, user_id: str) -> bool:
    """True for the one write that provisions this user; False for any other."""
    cursor = await tx.conn.execute(
        "INSERT INTO store_roots (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING", (user_id,)
    )
    return cursor.rowcount == 1


async def insert_stores(tx: Transaction, user_id: str, stores: Sequence[StoreRow]) -> None:
    await tx.conn.executemany(
        "INSERT INTO stores (user_id, name, object_id, default_key_id) VALUES (?, ?, ?, ?)",
        [(user_id, s.name, s.object_id, s.default_key_id) for s in stores],
    )


async def list_stores(conn: Connection, user_id: str) -> list[StoreRow]:
    rows = await conn.execute_fetchall(
        "SELECT name, object_id, default_key_id FROM stores WHERE user_id = ?", (user_id,)
    )
    return [StoreRow(r["name"], r["object_id"], r["default_key_id"]) for r in rows]


async def store_using(conn: Connection, user_id: str, *, object_id: str = "", key_id: str = "") -> str | None:
    """The store whose object is `object_id` or whose default key is `key_id`, if any."""
    async with conn.execute(
        "SELECT name FROM stores WHERE user_id = ? AND (object_id = ? OR default_key_id = ?)",
        (user_id, object_id, key_id),
    ) as cursor:
        row = await cursor.fetchone()
    return row["name"] if row else None
