"""Repository for the box's own sealed secrets and platform keypairs."""

from __future__ import annotations

from dataclasses import dataclass

from telentir_box.db.connection import Connection
from telentir_box.db.database import Transaction


@dataclass(frozen=True)
class PlatformKeyRow:
    name: str
    public_spki: bytes
    sealed_private: bytes
    is_current: bool


async def get_secret(conn: Connection, name: str) -> bytes | None:
    rows = list(await conn.execute_fetchall("SELECT sealed FROM box_secrets WHERE name = ?", (name,)))
    return bytes(rows[0]["sealed"]) if rows else None


async def get_secret_if_migrated(conn: Connection, name: str) -> bytes | None:
    """get_secret on a database that may not have its tables yet (new, or never migrated)."""
    if not await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'box_secrets'"
    ):
        return None
    return await get_secret(conn, name)


async def insert_secret(tx: Transaction, name: str, sealed: bytes) -> bool:
    """Insert unless present; True if this call stored it."""
    cursor = await tx.conn.execute(
        "INSERT INTO box_secrets (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, sealed),
    )
    return cursor.rowcount == 1


async def delete_secret(tx: Transaction, name: str) -> bool:
    cursor = await tx.conn.execute("DELETE FROM box_secrets WHERE name = ?", (name,))
    return cursor.rowcount == 1


async def list_platform_keys(conn: Connection) -> list[PlatformKeyRow]:
    rows = await conn.execute_fetchall(
        "SELECT name, public_spki, sealed_private, is_current FROM platform_keys ORDER BY created_at"
    )
    return [
        PlatformKeyRow(r["name"], bytes(r["public_spki"]), bytes(r["sealed_private"]), bool(r["is_current"]))
        for r in rows
    ]


async def insert_platform_key(
    tx: Transaction, name: str, public_spki: bytes, sealed_private: bytes, *, current: bool
) -> None:
    if current:
        await tx.conn.execute("UPDATE platform_keys SET is_current = 0 WHERE is_current = 1")
    await tx.conn.execute(
        "INSERT INTO platform_keys (name, public_spki, sealed_private, is_current) VALUES (?, ?, ?, ?)",
        (name, public_spki, sealed_private, int(current)),
    )
