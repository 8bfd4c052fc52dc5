"""An async face over a plain sqlite3 connection that runs statements on the event loop.

Why not a thread per statement (aiosqlite): the box's statements are point reads and
small inserts served from SQLite's page cache in microseconds, while a hop to a
connection thread and back costs a loop wake-up, a future and two GIL hand-offs,
several times the statement itself. So statements run inline, and only the steps that
can wait on the disk or on another process go to a thread: BEGIN IMMEDIATE when the
write lock is held (by the admin CLI), COMMIT (fsync) and checkpoints (`run_blocking`),
and bulk `executemany` batches, which are long rather than blocking.

The coroutine methods never suspend; they are coroutines so the repositories read the
same whichever way a statement runs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

Row = sqlite3.Row
Params = Sequence[Any] | dict[str, Any]


BLOB_PIECE_BYTES = 1 << 20


class Cursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    async def close(self) -> None:
        self._cursor.close()


class _Executed:
    """The result of `execute`: awaitable (-> Cursor) and an async context manager that
    closes the cursor, the two ways the repositories use a statement."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = Cursor(cursor)

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._cursor
        yield  # makes this a generator: awaiting it completes without suspending

    async def __aenter__(self) -> Cursor:
        return self._cursor

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._cursor.close()


class Connection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: Params = ()) -> _Executed:
        return _Executed(self._conn.execute(sql, params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> Cursor:
        """Bulk statements (ingestion batches of hundreds of rows) would hold the loop for
        milliseconds, so they run in a thread like the other blocking steps."""
        return Cursor(await asyncio.to_thread(self._conn.executemany, sql, rows))

    async def fetchall_in_thread(self, sql: str, params: Params = ()) -> list[Row]:
        """A read that visits many rows (a report's sums over weeks of calls) would hold
        the loop for tens of milliseconds, so it runs in a thread. Only on a connection
        the caller holds alone (a read lease)."""
        return await asyncio.to_thread(lambda: self._conn.execute(sql, params).fetchall())

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    async def executescript(self, script: str) -> None:
        """Migrations: whole scripts with their own BEGIN IMMEDIATE and COMMIT."""
        await asyncio.to_thread(self._conn.executescript, script)

    async def last_insert_rowid(self) -> int:
        """After `executemany`, whose cursor does not report it."""
        return int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    async def write_blob(self, table: str, column: str, rowid: int, data: bytes | IO[bytes]) -> None:
        """Fill a zeroblob already in place with `data` (bytes, or a file read from its
        start), a piece at a time, in a thread: binding a value of tens of MB would have
        SQLite copy it whole, twice."""

        def write() -> None:
            with self._conn.blobopen(table, column, rowid) as blob:
                if isinstance(data, bytes):
                    view = memoryview(data)
                    for start in range(0, len(view), BLOB_PIECE_BYTES):
                        blob.write(view[start : start + BLOB_PIECE_BYTES])
                    return
                data.seek(0)
                while piece := data.read(BLOB_PIECE_BYTES):
                    blob.write(piece)

        await asyncio.to_thread(write)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def begin_immediate(self, busy_timeout_ms: int) -> None:
        """BEGIN IMMEDIATE on the loop while no other process holds the write lock, as is
        the rule (this process is the only writer but for the admin CLI): the hop to a
        thread and back cost a lone write about a fifth of its CPU. A held lock is waited
        for in a thread, up to `busy_timeout_ms`."""
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # any kind of BUSY
                raise
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await self.run_blocking("BEGIN IMMEDIATE")

    async def run_blocking(self, sql: str) -> None:
        """A statement that may wait (on a lock or an fsync), run off the event loop.
        The caller owns the connection until it returns, so nothing else touches it."""
        await asyncio.to_thread(self._conn.execute, sql)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


async def connect(path: Path) -> Connection:
    def open_connection() -> sqlite3.Connection:
        # Autocommit mode (isolation_level=None): transactions are explicit. The
        # connection is used from the loop and, for blocking steps, one thread at a time.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        return conn

    return Connection(await asyncio.to_thread(open_connection))
