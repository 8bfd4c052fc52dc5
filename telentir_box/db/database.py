"""The SQLite database: one writer that group-commits whole write functions, a small
pool of read-only connections and a checkpointer. Every connection is opened the same way.

Checkpoints (copying the WAL's pages into the database file, with an fsync) run on the
checkpointer's own connection in a thread, at most every CHECKPOINT_INTERVAL while
writes come in, not inside the writer's COMMIT as SQLite's automatic checkpoint does:
there every thousandth page stalled the group commit, and with it every request waiting
for that commit (under load a quarter of PUT throughput and twice the p99)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from telentir_box.db.connection import Connection, connect
from telentir_box.db.events import Event
from telentir_box.db.timestamps import utc_now
from telentir_box.errors import AppError

T = TypeVar("T")
log = logging.getLogger("telentir_box.db")
CHECKPOINT_INTERVAL = 0.1  # seconds

WriteFn = Callable[["Transaction"], Awaitable[T]]


@dataclass
class Transaction:
    """What a write function sees: the writer connection and the events it records,
    which are fanned out only once the transaction that holds them has committed."""

    conn: Connection
    # The transaction's timestamp, for rows it stamps itself (a statement with RETURNING
    # costs SQLite twice a plain one, so hot inserts pass their times in).
    now: str
    events: list[Event] = field(default_factory=list)
    # Names of in-memory state derived from the rows this write changed (e.g. "auth"),
    # so caches are dropped after commit.
    touched: set[str] = field(default_factory=set)


@dataclass
class _Job:
    fn: WriteFn[Any]
    future: asyncio.Future[Any]


class Database:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        read_pool_size: int = 4,
        busy_timeout_ms: int = 5000,
        max_batch: int = 256,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.read_pool_size = read_pool_size
        self.busy_timeout_ms = busy_timeout_ms
        self.max_batch = max_batch
        self.on_commit: Callable[[list[Event]], None] = lambda events: None
        self.on_touched: Callable[[set[str]], None] = lambda touched: None
        self._writer: Connection | None = None
        self._readers: asyncio.Queue[Connection] = asyncio.Queue()
        self._all_readers: list[Connection] = []
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpointer: Connection | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._committed = asyncio.Event()
        self._closing = False

    async def open(self) -> None:
        self._writer = await self._connect(read_only=False)
        await self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        for _ in range(self.read_pool_size):
            reader = await self._connect(read_only=True)
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)
        self._checkpointer = await self._connect(read_only=False)
        self._writer_task = asyncio.create_task(self._write_loop(), name="db-writer")
        self._committed.set()  # what migrations left in the WAL
        self._checkpoint_task = asyncio.create_task(
            self._checkpoint_loop(self._checkpointer), name="db-checkpoint"
        )

    async def _connect(self, *, read_only: bool) -> Connection:
        conn = await connect(self.path)
        # Order matters: the busy timeout must be in force before the journal-mode
        # change, which itself needs a lock another process might hold.
        await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if not read_only:
            await conn.run_blocking("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        if read_only:
            await conn.execute("PRAGMA query_only = ON")
        return conn

    @property
    def writer(self) -> Connection:
        """The writer connection, for migrations before the write loop serves requests."""
        assert self._writer is not None, "database is not open"
        return self._writer

    async def close(self) -> None:
        if self._writer_task is not None:
            self._jobs.put_nowait(None)
            await self._writer_task
            self._writer_task = None
        if self._checkpoint_task is not None:
            # Not cancelled: a checkpoint in its thread must finish before the connection closes.
            self._closing = True
            self._committed.set()
            await self._checkpoint_task
            self._checkpoint_task = None
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = None
        for reader in self._all_readers:
            await reader.close()
        self._all_readers.clear()
        if self._writer is not None:
            # Fold the WAL back into the main file so a stopped box is one clean file.
            await self._writer.run_blocking("PRAGMA wal_checkpoint(TRUNCATE)")
            await self._writer.close()
            self._writer = None

    async def write(self, fn: WriteFn[T]) -> T:
        """Run `fn` inside a write transaction; return its result once it has committed.
        `fn` may run more than once (see `_commit_batch`), so it acts only through `tx`."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait(_Job(fn, future))
        return await future

    def reading(self) -> _ReadLease:
        """`async with db.reading() as conn`: a read-only connection for the block. Each
        block has its own, so a cursor left open cannot pin another block's snapshot."""
        return _ReadLease(self._readers)

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self.reading() as conn:
            return await fn(conn, *args)

    async def _write_loop(self) -> None:
        while True:
            first = await self._jobs.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch and not self._jobs.empty():
                job = self._jobs.get_nowait()
                if job is None:
                    stop = True
                    break
                batch.append(job)
            await self._commit_batch(batch)
            if stop:
                return

    async def _checkpoint_loop(self, conn: Connection) -> None:
        while True:
            await self._committed.wait()
            if self._closing:
                return
            self._committed.clear()
            try:
                # PASSIVE: copies what it can without waiting on the writer or on readers.
                await conn.run_blocking("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:  # e.g. a full disk: the WAL keeps every page meanwhile
                log.error("checkpoint failed", exc_info=exc)
            await asyncio.sleep(CHECKPOINT_INTERVAL)

    async def _commit_batch(self, batch: list[_Job]) -> None:
        """Group commit: one transaction, one fsync, for every job in the batch. The jobs
        run back to back; if one fails, the transaction is rolled back and the batch runs
        again with each job inside its own savepoint, so the failing job is undone alone.
        (Savepoints for every job would cost each write a twentieth more, for a case that
        is rare.) So a write function may run twice: it must act only through its
        Transaction, and its caller sees what the committed run returned."""
        done = await self._run_batch(batch, savepoints=False)
        if done is None:
            done = await self._run_batch(batch, savepoints=True)
        assert done is not None
        events = [event for _, _, tx in done for event in tx.events]
        touched = set().union(*(tx.touched for _, _, tx in done))
        if touched:
            # Before the callers resume, so no request can read a stale cache entry.
            self.on_touched(touched)
        for job, result, _ in done:
            if not job.future.done():
                job.future.set_result(result)
        if events:
            self.on_commit(events)

    async def _run_batch(
        self, batch: list[_Job], *, savepoints: bool
    ) -> list[tuple[_Job, Any, Transaction]] | None:
        """The committed jobs with their results and transactions (the failed ones are
        failed), or None, with nothing changed, when a job of a batch without
        savepoints failed."""
        conn = self.writer
        done: list[tuple[_Job, Any, Transaction]] = []
        try:
            await conn.begin_immediate(self.busy_timeout_ms)
            now = utc_now()
            for job in batch:
                tx = Transaction(conn, now)
                if savepoints:
                    await conn.execute("SAVEPOINT job")
                try:
                    result = await job.fn(tx)
                except Exception as exc:
                    if not savepoints:
                        if len(batch) == 1:
                            raise
                        await conn.execute("ROLLBACK")
                        return None
                    await conn.execute("ROLLBACK TO job")
                    await conn.execute("RELEASE job")
                    _fail(job, exc)
                    continue
                if savepoints:
                    await conn.execute("RELEASE job")
                done.append((job, result, tx))
            await conn.run_blocking("COMMIT")
            self._committed.set()
        except Exception as exc:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            for job in batch:
                _fail(job, exc)
            if not isinstance(exc, AppError):
                log.error("write transaction failed", exc_info=exc)
            return []
        return done


class _ReadLease:
    # A plain class rather than @asynccontextmanager: it is on every request's path.
    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: asyncio.Queue[Connection]) -> None:
        self._pool = pool

    async def __aenter__(self) -> Connection:
        self._conn = await self._pool.get()
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        self._pool.put_nowait(self._conn)


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
