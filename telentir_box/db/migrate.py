"""Applies the numbered migrations in `db/migrations/`, each in its own transaction,
and refuses a database written by a newer telentir-box."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from telentir_box.db.connection import Connection

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("telentir_box.db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def applied_versions(conn: Connection) -> set[int]:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    rows = await conn.execute_fetchall("SELECT version FROM schema_version")
    return {int(row["version"]) for row in rows}


async def apply_migrations(conn: Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Bring the schema up to date; return the migrations that were applied. Every
    migration not yet recorded is applied, in order, also one numbered below the newest
    recorded (a branch that landed late), so none is ever skipped."""
    migrations = available_migrations() if migrations is None else migrations
    latest = migrations[-1].version if migrations else 0
    done = await applied_versions(conn)
    if done and max(done) > latest:
        raise SchemaTooNew(
            f"the database is at schema version {max(done)}, newer than this telentir-box "
            f"knows ({latest}); upgrade telentir-box or restore a matching backup"
        )
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        try:
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                f"INSERT INTO schema_version (version, name) "
                f"VALUES ({migration.version}, '{migration.name}');\nCOMMIT;"
            )
        except Exception:
            if conn.in_transaction:
                await conn.rollback()
            raise
        applied.append(migration)
    return applied
