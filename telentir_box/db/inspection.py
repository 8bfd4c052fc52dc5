"""Read-only looks at a database file for `telentir-box doctor`: opened so that nothing in
the data directory is created or changed, also while a server is using it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from telentir_box.db.connection import Connection


def open_read_only(path: Path) -> Connection:
    """A query-only connection. A read-only connection to a WAL database creates its
    -wal and -shm files when they are missing, and cannot remove them again; they are
    missing only when no connection has the database open, so then the file cannot
    change under us and is read as immutable, which creates nothing."""
    in_use = Path(f"{path}-wal").exists() or Path(f"{path}-shm").exists()
    uri = f"{path.as_uri()}?mode=ro" + ("" if in_use else "&immutable=1")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only = ON")
    return Connection(conn)


async def quick_check(conn: Connection) -> list[str]:
    """SQLite's page-level consistency check: ["ok"] for a sound file, else its findings.
    (quick_check rather than integrity_check: it is linear in the file's size, so it
    stays usable on a large store, and it still reads every page.)"""
    return [str(row[0]) for row in await conn.execute_fetchall("PRAGMA quick_check")]


async def recorded_versions(conn: Connection) -> set[int]:
    """The migrations recorded as applied; empty for a database never migrated."""
    exists = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'"
    )
    if not exists:
        return set()
    return {int(row["version"]) for row in await conn.execute_fetchall("SELECT version FROM schema_version")}
