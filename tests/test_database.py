import asyncio
import secrets
import sqlite3
from pathlib import Path

import pytest

from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import Event, events_after, record_event
from telentir_box.db.migrate import Migration, SchemaTooNew, apply_migrations, available_migrations
from telentir_box.errors import Conflict


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "t.sqlite3", read_pool_size=2)
    await database.open()
    await apply_migrations(database.writer)
    yield database
    await database.close()


async def test_database_pragmas_in_force(db: Database) -> None:
    rows = await db.writer.execute_fetchall("PRAGMA journal_mode")
    assert next(iter(rows))[0] == "wal"
    assert next(iter(await db.writer.execute_fetchall("PRAGMA synchronous")))[0] == 2  # FULL
    assert next(iter(await db.writer.execute_fetchall("PRAGMA foreign_keys")))[0] == 1
    # the checkpointer's job, never the committing writer's
    assert next(iter(await db.writer.execute_fetchall("PRAGMA wal_autocheckpoint")))[0] == 0
    async with db.reading() as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await conn.execute("INSERT INTO events (user_id, type, data) VALUES ('u', 't', x'00')")


async def test_database_checkpoints_in_the_background(db: Database) -> None:
    """The writer never checkpoints, so only the checkpointer moves committed pages from
    the WAL into the database file."""
    payload = {"blob": "x" * 3000}
    for _ in range(20):
        await asyncio.gather(*(db.write(lambda tx: record_event(tx, "u", "x", payload)) for _ in range(10)))
    written = 200 * 3000
    deadline = asyncio.get_running_loop().time() + 10
    while db.path.stat().st_size < written and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert db.path.stat().st_size >= written
    async with db.reading() as conn:
        assert len(await events_after(conn, "u", 0, 500)) == 200


async def test_database_group_commit_isolates_a_failing_write(db: Database) -> None:
    published: list[Event] = []
    db.on_commit = published.extend

    def writer(user: str, fail: bool):
        async def fn(tx: Transaction) -> int:
            event = await record_event(tx, user, "object_created", {"id": user})
            if fail:
                raise Conflict("no")
            return event.id

        return fn

    results = await asyncio.gather(
        *(db.write(writer(f"u{i}", fail=i % 3 == 0)) for i in range(30)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, Conflict)]
    ok = [r for r in results if isinstance(r, int)]
    assert len(failed) == 10
    assert len(ok) == 20
    async with db.reading() as conn:
        stored = [e.user_id for i in range(30) for e in await events_after(conn, f"u{i}", 0, 10)]
    assert sorted(stored) == sorted(f"u{i}" for i in range(30) if i % 3)
    # Only committed events are fanned out, in log order.
    assert [e.id for e in published] == sorted(ok)


async def test_database_retried_group_delivers_what_the_committed_run_wrote(db: Database) -> None:
    """A failing write makes its group run again; each caller then gets what the run
    that committed returned, not the first run's result."""
    runs: list[int] = []

    def writer(i: int, fail: bool):
        async def fn(tx: Transaction) -> str:
            runs.append(i)
            token = secrets.token_hex(8)  # differs between runs
            await record_event(tx, f"r{i}", "x", {"token": token})
            if fail:
                raise Conflict("no")
            return token

        return fn

    results = await asyncio.gather(*(db.write(writer(i, i == 5)) for i in range(10)), return_exceptions=True)
    assert len(runs) > 10  # the ten writes formed one group, which ran again
    async with db.reading() as conn:
        for i, result in enumerate(results):
            stored = [e.payload["token"] for e in await events_after(conn, f"r{i}", 0, 10)]
            assert stored == ([] if i == 5 else [result])
    assert isinstance(results[5], Conflict)


async def test_database_single_failing_write_leaves_nothing(db: Database) -> None:
    async def fn(tx: Transaction) -> None:
        await record_event(tx, "u", "x", {})
        raise Conflict("stop")

    with pytest.raises(Conflict):
        await db.write(fn)
    async with db.reading() as conn:
        assert await events_after(conn, "u", 0, 10) == []


async def test_database_write_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    first = Database(path)
    await first.open()
    await apply_migrations(first.writer)
    event = await first.write(lambda tx: record_event(tx, "u", "x", {"n": 1}))
    await first.close()
    second = Database(path)
    await second.open()
    async with second.reading() as conn:
        assert [e.payload for e in await events_after(conn, "u", 0, 10)] == [{"n": 1}]
        assert (await events_after(conn, "u", 0, 10))[0].id == event.id
    await second.close()


async def test_migrations_apply_once_and_refuse_newer_schema(db: Database) -> None:
    assert await apply_migrations(db.writer) == []
    latest = available_migrations()[-1].version
    await db.writer.execute("INSERT INTO schema_version (version, name) VALUES (?, 'future')", (latest + 1,))
    with pytest.raises(SchemaTooNew, match="newer"):
        await apply_migrations(db.writer)


async def test_a_migration_numbered_below_the_newest_applied_still_runs(tmp_path: Path) -> None:
    """A migration that lands after a higher-numbered one was applied (two branches)
    is applied on the next start, not skipped for being below the newest."""
    database = Database(tmp_path / "t.sqlite3", read_pool_size=1)
    await database.open()
    first = Migration(1, "first", "CREATE TABLE a (x INTEGER);")
    second = Migration(2, "late", "CREATE TABLE b (x INTEGER);")
    third = Migration(3, "third", "CREATE TABLE c (x INTEGER);")
    try:
        assert await apply_migrations(database.writer, [first, third]) == [first, third]
        assert await apply_migrations(database.writer, [first, second, third]) == [second]
        assert await apply_migrations(database.writer, [first, second, third]) == []
        tables = await database.writer.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert {"a", "b", "c"} <= {row["name"] for row in tables}
    finally:
        await database.close()


async def test_database_write_waiting_on_another_process_lock_keeps_serving(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE waits for the write lock off the event loop: while another
    process (here another connection, as the admin CLI would) holds it, reads still
    answer and the loop keeps running; the write lands once the lock is released."""
    database = Database(tmp_path / "t.sqlite3", read_pool_size=1, busy_timeout_ms=5000)
    await database.open()
    await apply_migrations(database.writer)
    other = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:

        async def fn(tx: Transaction) -> int:
            return (await record_event(tx, "u1", "object_created", {"id": "o1"})).id

        pending = asyncio.ensure_future(database.write(fn))
        for _ in range(20):
            await asyncio.sleep(0.01)
            async with database.reading() as conn:
                assert await events_after(conn, "u1", 0, 10) == []
        # Had BEGIN IMMEDIATE run on the loop, the loop would have stalled until the
        # busy timeout and the write would have failed with "database is locked".
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    event_id = await asyncio.wait_for(pending, 5)
    async with database.reading() as conn:
        assert [e.id for e in await events_after(conn, "u1", 0, 10)] == [event_id]
    assert next(iter(await database.writer.execute_fetchall("PRAGMA busy_timeout")))[0] == 5000
    await database.close()


async def test_database_write_keeps_the_busy_timeout_in_force(db: Database) -> None:
    """With the write lock free, BEGIN IMMEDIATE runs on the loop under no busy timeout
    (it must not wait there); the connection's timeout is back for what follows."""
    written = await db.write(lambda tx: record_event(tx, "u1", "object_created", {"id": "o1"}))
    assert written.id > 0
    assert next(iter(await db.writer.execute_fetchall("PRAGMA busy_timeout")))[0] == db.busy_timeout_ms
