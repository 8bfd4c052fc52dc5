"""Repository for knowledge bases: the bases, their documents, the documents' text
chunks and the FTS5 index over them. Every query names the owner."""

from __future__ import annotations

from dataclasses import dataclass

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction
from telentir_box.errors import Conflict


@dataclass(frozen=True, slots=True)
class BaseRow:
    id: str
    number: int
    user_id: str
    name: str
    description: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: int
    name: str
    type: str
    source: str
    url: str | None
    size: int
    text_bytes: int
    chunks: int
    created_at: str


@dataclass(frozen=True, slots=True)
class NewDocument:
    name: str
    type: str
    source: str
    url: str | None
    size: int
    text_bytes: int
    chunks: list[str]


@dataclass(frozen=True, slots=True)
class Hit:
    document_id: int
    score: float
    body: str


_BASE_COLUMNS = "id, number, user_id, name, description, created_at, updated_at"
CHUNK_ID_BITS = 32
_DOCUMENT_COLUMNS = "id, name, type, source, url, size, text_bytes, chunks, created_at"


def _base(r: Row) -> BaseRow:
    return BaseRow(
        r["id"], r["number"], r["user_id"], r["name"], r["description"], r["created_at"], r["updated_at"]
    )


def _document(r: Row) -> DocumentRow:
    return DocumentRow(
        r["id"],
        r["name"],
        r["type"],
        r["source"],
        r["url"],
        r["size"],
        r["text_bytes"],
        r["chunks"],
        r["created_at"],
    )


async def insert_base(
    tx: Transaction, *, base_id: str, user_id: str, name: str, description: str | None
) -> BaseRow:
    async with tx.conn.execute(
        "INSERT INTO knowledge_bases (id, number, user_id, name, description, created_at, updated_at)"
        " VALUES (?, (SELECT coalesce(max(number), 0) + 1 FROM knowledge_bases), ?, ?, ?, ?, ?)"
        f" RETURNING {_BASE_COLUMNS}",
        (base_id, user_id, name, description, tx.now, tx.now),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return _base(row)


async def list_bases(conn: Connection, user_id: str) -> list[BaseRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_BASE_COLUMNS} FROM knowledge_bases WHERE user_id = ? ORDER BY created_at, id", (user_id,)
    )
    return [_base(r) for r in rows]


async def get_base(conn: Connection, user_id: str, base_id: str) -> BaseRow | None:
    async with conn.execute(
        f"SELECT {_BASE_COLUMNS} FROM knowledge_bases WHERE id = ? AND user_id = ?", (base_id, user_id)
    ) as cursor:
        row = await cursor.fetchone()
    return _base(row) if row else None


async def update_base(
    tx: Transaction, user_id: str, base_id: str, changes: dict[str, str | None]
) -> BaseRow | None:
    """`changes` maps column names (name, description) to their new values."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    async with tx.conn.execute(
        f"UPDATE knowledge_bases SET {assignments}, updated_at = ? WHERE id = ? AND user_id = ?"
        f" RETURNING {_BASE_COLUMNS}",
        (*changes.values(), tx.now, base_id, user_id),
    ) as cursor:
        row = await cursor.fetchone()
    return _base(row) if row else None


async def delete_base(tx: Transaction, user_id: str, base_id: str) -> bool:
    """Its chunks go first, in a thread (unindexing thousands of them takes a while:
    the cascade would run it on the event loop); its documents then go by cascade."""
    base = await get_base(tx.conn, user_id, base_id)
    if base is None:
        return False
    await tx.conn.executemany(
        "DELETE FROM knowledge_chunks WHERE id BETWEEN ? AND ?", [chunk_range(base.number)]
    )
    await tx.conn.execute("DELETE FROM knowledge_bases WHERE id = ?", (base_id,))
    # Inbound configurations that named it answer without a knowledge base from now on.
    await tx.conn.execute(
        "UPDATE inbound_configurations SET knowledge_base_id = NULL"
        " WHERE user_id = ? AND knowledge_base_id = ?",
        (user_id, base_id),
    )
    return True


async def list_documents(conn: Connection, base_id: str) -> list[DocumentRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_DOCUMENT_COLUMNS} FROM knowledge_documents WHERE knowledge_base_id = ? ORDER BY id",
        (base_id,),
    )
    return [_document(r) for r in rows]


async def count_documents(conn: Connection, base_id: str) -> int:
    async with conn.execute(
        "SELECT count(*) FROM knowledge_documents WHERE knowledge_base_id = ?", (base_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def text_bytes_of_user(conn: Connection, user_id: str) -> int:
    async with conn.execute(
        "SELECT coalesce(sum(text_bytes), 0) FROM knowledge_documents WHERE user_id = ?", (user_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


def chunk_range(base_number: int) -> tuple[int, int]:
    """The first and last chunk id of a base's block."""
    first = base_number << CHUNK_ID_BITS
    return first, first + (1 << CHUNK_ID_BITS) - 1


async def insert_document(tx: Transaction, user_id: str, base: BaseRow, document: NewDocument) -> int:
    cursor = await tx.conn.execute(
        "INSERT INTO knowledge_documents (knowledge_base_id, user_id, name, type, source, url, size,"
        " text_bytes, chunks, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            base.id,
            user_id,
            document.name,
            document.type,
            document.source,
            document.url,
            document.size,
            document.text_bytes,
            len(document.chunks),
            tx.now,
        ),
    )
    assert cursor.lastrowid is not None
    document_id = cursor.lastrowid
    first, last = chunk_range(base.number)
    async with tx.conn.execute(
        "SELECT coalesce(max(id) + 1, ?) FROM knowledge_chunks WHERE id BETWEEN ? AND ?", (first, first, last)
    ) as found:
        row = await found.fetchone()
    start = int(row[0]) if row else first
    if start + len(document.chunks) - 1 > last:
        raise Conflict("this knowledge base has used up its chunk ids; create a new one")
    await tx.conn.executemany(
        "INSERT INTO knowledge_chunks (id, document_id, body) VALUES (?, ?, ?)",
        [(start + n, document_id, body) for n, body in enumerate(document.chunks)],
    )
    return document_id


async def delete_document(tx: Transaction, user_id: str, base_id: str, document_id: int) -> bool:
    """Its chunks go first, in a thread, as for a base."""
    async with tx.conn.execute(
        "SELECT 1 FROM knowledge_documents WHERE id = ? AND knowledge_base_id = ? AND user_id = ?",
        (document_id, base_id, user_id),
    ) as cursor:
        if await cursor.fetchone() is None:
            return False
    await tx.conn.executemany("DELETE FROM knowledge_chunks WHERE document_id = ?", [(document_id,)])
    await tx.conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
    return True


async def indexed_chunk_count(conn: Connection) -> int:
    """Chunks in the index, all bases together (what bm25 counts documents over)."""
    async with conn.execute("SELECT coalesce(sum(chunks), 0) FROM knowledge_documents") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def chunks_holding(conn: Connection, terms: list[str]) -> dict[str, int]:
    """For each of `terms` found in the index, how many chunks hold it."""
    marks = ", ".join("?" * len(terms))
    rows = await conn.execute_fetchall(
        f"SELECT term, doc FROM knowledge_chunks_terms WHERE term IN ({marks})", terms
    )
    return {r["term"]: r["doc"] for r in rows}


async def search_chunks(
    conn: Connection, base_number: int, match: str, limit: int, candidates: int | None = None
) -> list[Hit]:
    """The best `limit` chunks of the base for an FTS5 query, best (lowest bm25) first;
    with `candidates`, the best among the first that many chunks matching. `match` must
    already be a safe FTS5 expression (see telephony/knowledge.py). The rowid range
    keeps FTS5 inside the base; bodies are read for the winners only."""
    first, last = chunk_range(base_number)
    rows = await conn.execute_fetchall(
        "SELECT c.document_id, best.score, c.body FROM ("
        "  SELECT id, score FROM ("
        "    SELECT rowid AS id, bm25(knowledge_chunks_fts) AS score FROM knowledge_chunks_fts"
        "    WHERE knowledge_chunks_fts MATCH ? AND rowid BETWEEN ? AND ? LIMIT ?"
        "  ) ORDER BY score, id LIMIT ?"
        ") AS best JOIN knowledge_chunks AS c ON c.id = best.id ORDER BY best.score, best.id",
        (match, first, last, -1 if candidates is None else candidates, limit),
    )
    return [Hit(r["document_id"], r["score"], r["body"]) for r in rows]
