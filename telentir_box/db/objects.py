"""Repository for encrypted objects and their publications. Ownership checks run in
the statements themselves, so a write never acts on another user's rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_OBJECT_COLUMNS = (
    "seq, id, user_id, key_id, related_object_id, content, auth_tag, metadata, created_at, updated_at"
)
_PUBLICATION_COLUMNS = "seq, type, related_id, object_id, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class ObjectRow:
    seq: int
    id: str
    user_id: str
    key_id: str
    related_object_id: str | None
    content: bytes
    auth_tag: bytes
    metadata: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class NewObject:
    id: str
    key_id: str
    related_object_id: str | None
    content: bytes
    auth_tag: bytes
    metadata: str


@dataclass(frozen=True, slots=True)
class PublicationRow:
    seq: int
    type: str
    related_id: str
    object_id: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class PublishedCopy:
    """What reading a publication needs: the copy's ciphertext and its wrapped key."""

    object_id: str
    content: bytes
    auth_tag: bytes
    server: str
    key: bytes
    iv: bytes


def _object(r: Row) -> ObjectRow:
    return ObjectRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), bytes(r[6]), r[7], r[8], r[9])


def _publication(r: Row) -> PublicationRow:
    return PublicationRow(r[0], r[1], r[2], r[3], r[4], r[5])


async def insert_object(tx: Transaction, user_id: str, new: NewObject) -> ObjectRow | None:
    """Insert only if the key, and the parent when given, are the user's; else None."""
    cursor = await tx.conn.execute(
        "INSERT INTO objects (id, user_id, key_id, related_object_id, content, auth_tag, metadata,"
        " created_at, updated_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM keys WHERE id = ? AND user_id = ?)"
        " AND (? IS NULL OR EXISTS (SELECT 1 FROM objects WHERE id = ? AND user_id = ?))",
        (
            *_values(user_id, new, tx.now),
            new.key_id,
            user_id,
            new.related_object_id,
            new.related_object_id,
            user_id,
        ),
    )
    if cursor.rowcount != 1:
        return None
    assert cursor.lastrowid is not None
    return _new_row(cursor.lastrowid, user_id, new, tx.now)


async def insert_objects(tx: Transaction, user_id: str, objects: Sequence[NewObject]) -> list[ObjectRow]:
    """Bulk insert for writes the box itself prepared (keys and parents already known):
    one statement for the batch, as ingestion writes thousands of rows a second."""
    await tx.conn.executemany(
        "INSERT INTO objects (id, user_id, key_id, related_object_id, content, auth_tag, metadata,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_values(user_id, o, tx.now) for o in objects],
    )
    # seq is the rowid; the single writer inserted these rows back to back, so their
    # seqs are the consecutive run that ends at the last inserted rowid.
    first = await tx.conn.last_insert_rowid() - len(objects) + 1
    return [_new_row(first + i, user_id, o, tx.now) for i, o in enumerate(objects)]


def _values(user_id: str, new: NewObject, now: str) -> tuple[Any, ...]:
    """An inserted row's columns after seq, in ObjectRow's order."""
    return (
        new.id,
        user_id,
        new.key_id,
        new.related_object_id,
        new.content,
        new.auth_tag,
        new.metadata,
        now,
        now,
    )


def _new_row(seq: int, user_id: str, new: NewObject, now: str) -> ObjectRow:
    """The row as inserted, without reading it back (RETURNING doubles an insert's cost)."""
    return ObjectRow(seq, *_values(user_id, new, now))


async def get_object(conn: Connection, user_id: str, object_id: str) -> ObjectRow | None:
    async with conn.execute(
        f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE id = ? AND user_id = ?", (object_id, user_id)
    ) as cursor:
        row = await cursor.fetchone()
    return _object(row) if row else None


async def owns_key(conn: Connection, user_id: str, key_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM keys WHERE id = ? AND user_id = ?", (key_id, user_id)) as cursor:
        return await cursor.fetchone() is not None


async def owns_object(conn: Connection, user_id: str, object_id: str) -> bool:
    async with conn.execute(
        "SELECT 1 FROM objects WHERE id = ? AND user_id = ?", (object_id, user_id)
    ) as cursor:
        return await cursor.fetchone() is not None


async def is_ancestor_or_self(conn: Connection, candidate: str, of_object: str) -> bool:
    """Whether `candidate` is `of_object` or one of its ancestors (a reparent would loop)."""
    async with conn.execute(
        "WITH RECURSIVE up(id, parent) AS ("
        " SELECT id, related_object_id FROM objects WHERE id = ?"
        " UNION SELECT o.id, o.related_object_id FROM objects o JOIN up ON o.id = up.parent)"
        " SELECT 1 FROM up WHERE id = ?",
        (of_object, candidate),
    ) as cursor:
        return await cursor.fetchone() is not None


async def update_object(
    tx: Transaction,
    user_id: str,
    object_id: str,
    *,
    key_id: str | None,
    related_object_id: str | None,
    content: bytes | None,
    auth_tag: bytes | None,
    metadata: str | None,
) -> ObjectRow | None:
    """Absent (None) fields are kept."""
    async with tx.conn.execute(
        "UPDATE objects SET key_id = COALESCE(?, key_id),"
        " related_object_id = COALESCE(?, related_object_id), content = COALESCE(?, content),"
        " auth_tag = COALESCE(?, auth_tag), metadata = COALESCE(?, metadata),"
        f" updated_at = {_NOW} WHERE id = ? AND user_id = ? RETURNING {_OBJECT_COLUMNS}",
        (key_id, related_object_id, content, auth_tag, metadata, object_id, user_id),
    ) as cursor:
        row = await cursor.fetchone()
    return _object(row) if row else None


async def list_children(conn: Connection, user_id: str, parent_id: str) -> list[ObjectRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE related_object_id = ? AND user_id = ? ORDER BY seq",
        (parent_id, user_id),
    )
    return [_object(r) for r in rows]


async def list_objects(
    conn: Connection,
    user_id: str,
    *,
    related_object_id: str | None,
    key_id: str | None,
    after_seq: int,
    limit: int,
) -> list[ObjectRow]:
    clauses = ["user_id = ?", "seq > ?"]
    params: list[object] = [user_id, after_seq]
    if related_object_id is not None:
        clauses.append("related_object_id = ?")
        params.append(related_object_id)
    if key_id is not None:
        clauses.append("key_id = ?")
        params.append(key_id)
    rows = await conn.execute_fetchall(
        f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
        (*params, limit),
    )
    return [_object(r) for r in rows]


async def delete_subtree(
    tx: Transaction, user_id: str, object_id: str
) -> tuple[list[str], list[PublicationRow], str]:
    """Delete an object, its descendants and every publication of or by them. Returns
    the deleted ids (empty if the user has no such object), the removed publications
    and the deletion time."""
    rows = await tx.conn.execute_fetchall(
        "WITH RECURSIVE tree(id) AS (SELECT id FROM objects WHERE id = ? AND user_id = ?"
        " UNION SELECT o.id FROM objects o JOIN tree t ON o.related_object_id = t.id WHERE o.user_id = ?)"
        f" SELECT id, {_NOW} AS now FROM tree",
        (object_id, user_id, user_id),
    )
    ids = [r["id"] for r in rows]
    if not ids:
        return [], [], ""
    deleted_at = next(iter(rows))["now"]
    id_list = json.dumps(ids)
    # `+user_id`: the user check must not pick the index on user_id, which made SQLite
    # walk every object (and publication) of the user for each deletion; the ids lead.
    published = await tx.conn.execute_fetchall(
        "DELETE FROM publications WHERE +user_id = ? AND (object_id IN (SELECT value FROM json_each(?))"
        f" OR related_id IN (SELECT value FROM json_each(?))) RETURNING {_PUBLICATION_COLUMNS}",
        (user_id, id_list, id_list),
    )
    await tx.conn.execute(
        "DELETE FROM objects WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
        (user_id, id_list),
    )
    return ids, [_publication(r) for r in published], deleted_at


async def upsert_publication(
    tx: Transaction, user_id: str, type: str, related_id: str, object_id: str
) -> PublicationRow:
    async with tx.conn.execute(
        "INSERT INTO publications (user_id, type, related_id, object_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, type, related_id)"
        f" DO UPDATE SET object_id = excluded.object_id, updated_at = {_NOW}"
        f" RETURNING {_PUBLICATION_COLUMNS}",
        (user_id, type, related_id, object_id),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return _publication(row)


async def delete_publication(tx: Transaction, user_id: str, type: str, related_id: str) -> str | None:
    """The deletion time, or None when nothing was published there."""
    async with tx.conn.execute(
        f"DELETE FROM publications WHERE user_id = ? AND type = ? AND related_id = ? RETURNING {_NOW} AS now",
        (user_id, type, related_id),
    ) as cursor:
        row = await cursor.fetchone()
    return row["now"] if row else None


async def list_publications(
    conn: Connection, user_id: str, type: str, *, after_seq: int, limit: int
) -> list[PublicationRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_PUBLICATION_COLUMNS} FROM publications WHERE user_id = ? AND type = ? AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (user_id, type, after_seq, limit),
    )
    return [_publication(r) for r in rows]


async def get_published_copy(
    conn: Connection, user_id: str, type: str, related_id: str
) -> PublishedCopy | None:
    async with conn.execute(
        "SELECT o.id, o.content, o.auth_tag, k.server, k.key, k.iv FROM publications p"
        " JOIN objects o ON o.id = p.object_id AND o.user_id = p.user_id"
        " JOIN keys k ON k.id = o.key_id AND k.user_id = p.user_id"
        " WHERE p.user_id = ? AND p.type = ? AND p.related_id = ?",
        (user_id, type, related_id),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return PublishedCopy(row[0], bytes(row[1]), bytes(row[2]), row[3], bytes(row[4]), bytes(row[5]))


async def get_copy(conn: Connection, user_id: str, object_id: str) -> PublishedCopy | None:
    """An object of the user with its key, to check that the box can read it."""
    async with conn.execute(
        "SELECT o.id, o.content, o.auth_tag, k.server, k.key, k.iv FROM objects o"
        " JOIN keys k ON k.id = o.key_id AND k.user_id = o.user_id WHERE o.id = ? AND o.user_id = ?",
        (object_id, user_id),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return PublishedCopy(row[0], bytes(row[1]), bytes(row[2]), row[3], bytes(row[4]), bytes(row[5]))
