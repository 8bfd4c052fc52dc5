"""What GET /api/debug/db reports on the live database: whether it answers and how
fast, its schema version, journal mode and file sizes, and SQLite's page-level check,
run in a thread on a connection of its own so neither the event loop nor the read
pool waits for it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from telentir_box.db.database import Database
from telentir_box.db.migrate import available_migrations


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    reachable: bool
    latency_ms: float | None
    schema_version: int | None
    latest_schema_version: int
    journal_mode: str | None
    file_bytes: int
    wal_bytes: int
    page_size: int | None
    page_count: int | None
    freelist_count: int | None
    integrity: list[str]  # ["ok"], or what SQLite found


async def diagnose(db: Database) -> DatabaseReport:
    latest = available_migrations()[-1].version
    files = _size(db.path), _size(Path(f"{db.path}-wal"))
    try:
        started = time.perf_counter()
        async with db.reading() as conn:
            await conn.execute_fetchall("SELECT 1")
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            version = (await conn.execute_fetchall("SELECT MAX(version) FROM schema_version"))[0][0]
            pragmas = [
                (await conn.execute_fetchall(f"PRAGMA {name}"))[0][0]
                for name in ("journal_mode", "page_size", "page_count", "freelist_count")
            ]
        integrity = await asyncio.to_thread(quick_check, db.path, db.busy_timeout_ms)
    except sqlite3.Error as exc:
        return DatabaseReport(False, None, None, latest, None, *files, None, None, None, [str(exc)])
    return DatabaseReport(True, latency_ms, version, latest, pragmas[0], *files, *pragmas[1:], integrity)


def quick_check(path: Path, busy_timeout_ms: int) -> list[str]:
    """PRAGMA quick_check on a read-only connection of its own: linear in the file's
    size (integrity_check also cross-checks every index, which a large store cannot
    afford on request) and still reads every page."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA query_only = ON")
        return [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    finally:
        conn.close()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
