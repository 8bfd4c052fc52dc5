"""Repository for users, sessions and API keys. Writes that change who may do what
mark the transaction, so the in-memory auth cache is dropped once they commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction

AUTH_STATE = "auth"


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    password_hash: str
    role: str
    super_admin: bool
    phone_verified: bool
    totp_enabled: bool
    totp_secret_sealed: bytes | None
    totp_last_step: int
    created_at: str


_USER_COLUMNS = (
    "id, email, first_name, last_name, phone, password_hash, role, super_admin,"
    " phone_verified_at IS NOT NULL AS phone_verified, totp_enabled, totp_secret_sealed,"
    " totp_last_step, created_at"
)


def _user(row: Row) -> UserRow:
    return UserRow(
        id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        phone=row["phone"],
        password_hash=row["password_hash"],
        role=row["role"],
        super_admin=bool(row["super_admin"]),
        phone_verified=bool(row["phone_verified"]),
        totp_enabled=bool(row["totp_enabled"]),
        totp_secret_sealed=row["totp_secret_sealed"],
        totp_last_step=row["totp_last_step"],
        created_at=row["created_at"],
    )


async def _one(conn: Connection, sql: str, params: tuple[object, ...]) -> Row | None:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def get_user(conn: Connection, user_id: str) -> UserRow | None:
    row = await _one(conn, f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
    return _user(row) if row else None


async def get_user_by_email(conn: Connection, email: str) -> UserRow | None:
    row = await _one(conn, f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", (email,))
    return _user(row) if row else None


async def list_users(conn: Connection) -> list[UserRow]:
    rows = await conn.execute_fetchall(f"SELECT {_USER_COLUMNS} FROM users ORDER BY created_at")
    return [_user(r) for r in rows]


async def insert_user(
    tx: Transaction,
    *,
    user_id: str,
    email: str,
    password_hash: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    super_admin: bool = False,
    phone_verified: bool = False,
) -> bool:
    """False if the email is taken."""
    cursor = await tx.conn.execute(
        "INSERT INTO users (id, email, first_name, last_name, phone, password_hash, role, super_admin,"
        " phone_verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
        " CASE WHEN ? THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END)"
        " ON CONFLICT (email) DO NOTHING",
        (
            user_id,
            email,
            first_name,
            last_name,
            phone,
            password_hash,
            role,
            int(super_admin),
            int(phone_verified),
        ),
    )
    return cursor.rowcount == 1


async def set_phone_verified(tx: Transaction, user_id: str, phone: str | None = None) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        "UPDATE users SET phone_verified_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
        " phone = COALESCE(?, phone), updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
        (phone, user_id),
    )
    return cursor.rowcount == 1


async def set_role(tx: Transaction, user_id: str, role: str) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        "UPDATE users SET role = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
        (role, user_id),
    )
    return cursor.rowcount == 1


async def insert_session(
    tx: Transaction, session_id: str, user_id: str, expires_at: str, *, pending_2fa: bool
) -> None:
    await tx.conn.execute(
        "INSERT INTO sessions (id, user_id, pending_2fa, expires_at) VALUES (?, ?, ?, ?)",
        (session_id, user_id, int(pending_2fa), expires_at),
    )


async def revoke_session(tx: Transaction, session_id: str) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        "UPDATE sessions SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        " WHERE id = ? AND revoked_at IS NULL",
        (session_id,),
    )
    return cursor.rowcount == 1


async def revoke_user_sessions(tx: Transaction, user_id: str, *, keep: str | None = None) -> int:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        "UPDATE sessions SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        " WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        (user_id, keep),
    )
    return cursor.rowcount


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """The owner of a live session or API key, as the guards need it."""

    user_id: str
    role: str
    super_admin: bool
    phone_verified: bool
    totp_enabled: bool
    pending_2fa: bool
    expires_at: str | None


_CREDENTIAL_USER = "u.id, u.role, u.super_admin, u.phone_verified_at IS NOT NULL, u.totp_enabled"


async def session_credential(conn: Connection, session_id: str) -> CredentialRow | None:
    row = await _one(
        conn,
        f"SELECT {_CREDENTIAL_USER}, s.pending_2fa, s.expires_at FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.revoked_at IS NULL",
        (session_id,),
    )
    return (
        CredentialRow(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]), bool(row[5]), row[6])
        if row
        else None
    )


async def api_key_credential(conn: Connection, key_hash: bytes) -> tuple[str, CredentialRow] | None:
    """The key id and owner of the API key with this hash (how a request authenticates)."""
    return await _api_key_owner(conn, "key_hash", key_hash)


async def api_key_credential_by_id(conn: Connection, key_id: str) -> CredentialRow | None:
    """The owner of a still-existing API key (how an open event stream rechecks its key)."""
    found = await _api_key_owner(conn, "id", key_id)
    return found[1] if found else None


async def _api_key_owner(
    conn: Connection, column: Literal["key_hash", "id"], value: bytes | str
) -> tuple[str, CredentialRow] | None:
    row = await _one(
        conn,
        f"SELECT k.id, {_CREDENTIAL_USER} FROM api_keys k JOIN users u ON u.id = k.user_id"
        f" WHERE k.{column} = ?",
        (value,),
    )
    if row is None:
        return None
    return row[0], CredentialRow(row[1], row[2], bool(row[3]), bool(row[4]), bool(row[5]), False, None)


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    name: str
    hint: str
    created_at: str
    last_used_at: str | None


async def insert_api_key(
    tx: Transaction, key_id: str, user_id: str, name: str, key_hash: bytes, hint: str
) -> ApiKeyRow:
    async with tx.conn.execute(
        "INSERT INTO api_keys (id, user_id, name, key_hash, hint) VALUES (?, ?, ?, ?, ?)"
        " RETURNING created_at",
        (key_id, user_id, name, key_hash, hint),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return ApiKeyRow(key_id, name, hint, row[0], None)


async def list_api_keys(conn: Connection, user_id: str) -> list[ApiKeyRow]:
    rows = await conn.execute_fetchall(
        "SELECT id, name, hint, created_at, last_used_at FROM api_keys WHERE user_id = ?"
        " ORDER BY created_at DESC, rowid DESC",
        (user_id,),
    )
    return [ApiKeyRow(*r) for r in rows]


async def delete_api_key(tx: Transaction, user_id: str, key_id: str) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute("DELETE FROM api_keys WHERE id = ? AND user_id = ?", (key_id, user_id))
    return cursor.rowcount == 1


async def delete_user_api_keys(tx: Transaction, user_id: str) -> int:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute("DELETE FROM api_keys WHERE user_id = ?", (user_id,))
    return cursor.rowcount


async def record_api_key_use(tx: Transaction, last_used: dict[str, str]) -> None:
    await tx.conn.executemany(
        "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        [(at, key_id, at) for key_id, at in last_used.items()],
    )


_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


async def set_password(tx: Transaction, user_id: str, password_hash: str) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        f"UPDATE users SET password_hash = ?, updated_at = {_NOW} WHERE id = ?", (password_hash, user_id)
    )
    return cursor.rowcount == 1


async def set_totp_secret(tx: Transaction, user_id: str, sealed: bytes | None, *, enabled: bool) -> bool:
    """Store a pending secret (enabled False), switch it on, or clear it (sealed None)."""
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute(
        f"UPDATE users SET totp_secret_sealed = ?, totp_enabled = ?, updated_at = {_NOW} WHERE id = ?",
        (sealed, int(enabled), user_id),
    )
    return cursor.rowcount == 1


async def claim_totp_step(tx: Transaction, user_id: str, step: int) -> bool:
    """Record `step` as used; False if it (or a later one) was used already: no replay."""
    cursor = await tx.conn.execute(
        "UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?", (step, user_id, step)
    )
    return cursor.rowcount == 1


async def delete_user(tx: Transaction, user_id: str) -> bool:
    tx.touched.add(AUTH_STATE)
    cursor = await tx.conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return cursor.rowcount == 1


async def count_owners(tx: Transaction) -> int:
    async with tx.conn.execute("SELECT count(*) FROM users WHERE role = 'owner'") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def count_super_admins(tx: Transaction) -> int:
    async with tx.conn.execute("SELECT count(*) FROM users WHERE super_admin") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def session_expiry(conn: Connection, session_id: str) -> str | None:
    row = await _one(
        conn, "SELECT expires_at FROM sessions WHERE id = ? AND revoked_at IS NULL", (session_id,)
    )
    return row[0] if row else None


async def super_admin_exists(conn: Connection) -> bool:
    return bool(await conn.execute_fetchall("SELECT 1 FROM users WHERE super_admin = 1 LIMIT 1"))
