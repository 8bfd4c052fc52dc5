"""The data directory as the box keeps it: ownership and modes, the database's
integrity and schema, the master key against what is sealed in the database, free disk.
Nothing here creates or changes a file: the database is opened read-only."""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag

from telentir_box.crypto.sealing import MASTER_KEY_ENV, MasterKeyError, Sealer, load_master_key
from telentir_box.datadir import DATABASE_FILE, PLATFORM_PURPOSE, SECRETS_PURPOSE, SESSION_SECRET
from telentir_box.db import inspection
from telentir_box.db import secrets as secrets_repo
from telentir_box.db.connection import Connection
from telentir_box.db.migrate import available_migrations
from telentir_box.doctor.report import NOTE, OK, PROBLEM, Finding

# Below this much free space SQLite may fail a commit or a checkpoint at any moment.
MIN_FREE_BYTES = 256 * 1024 * 1024


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a systemd DynamicUser has no passwd entry while the service is stopped
        return f"uid {uid}"


def check_data_dir(data_dir: Path, uid: int) -> Finding:
    """The directory 0700 and every file in it 0600, all owned by the user running us
    (the box's user: run doctor as that user)."""
    name = "data directory"
    try:
        info = data_dir.stat()
        entries = sorted(data_dir.iterdir())
    except FileNotFoundError:
        return Finding(name, PROBLEM, f"{data_dir} does not exist (`telentir-box init` creates it)")
    except PermissionError:
        return Finding(
            name, PROBLEM, f"{data_dir} cannot be read by {_user(uid)}; run doctor as the box's user"
        )
    except NotADirectoryError:
        return Finding(name, PROBLEM, f"{data_dir} is not a directory")
    faults = []
    if info.st_uid != uid:
        faults.append(f"{data_dir} is owned by {_user(info.st_uid)}, not by {_user(uid)} running doctor")
    if stat.S_IMODE(info.st_mode) != 0o700:
        faults.append(f"{data_dir} has mode {stat.S_IMODE(info.st_mode):04o}, not 0700")
    for entry in entries:
        entry_info = entry.lstat()
        if entry_info.st_uid != info.st_uid:
            faults.append(f"{entry.name} is owned by {_user(entry_info.st_uid)}")
        if stat.S_IMODE(entry_info.st_mode) & 0o077:
            faults.append(f"{entry.name} has mode {stat.S_IMODE(entry_info.st_mode):04o}, not 0600")
    if faults:
        return Finding(name, PROBLEM, "; ".join(faults) + " (chmod/chown them back)")
    return Finding(name, OK, f"{data_dir}: 0700, {len(entries)} files private, owned by {_user(info.st_uid)}")


async def check_database(data_dir: Path) -> list[Finding]:
    """Integrity, migrations and the master key against the secrets sealed in it."""
    database = data_dir / DATABASE_FILE
    if not database.is_file():
        missing = Finding("database", PROBLEM, f"no database at {database} (`telentir-box init` creates it)")
        return [missing, await check_master_key(data_dir, None)]
    try:
        conn = inspection.open_read_only(database)
    except sqlite3.Error as exc:
        return [Finding("database", PROBLEM, f"{database} cannot be opened: {exc}")]
    try:
        return [
            await check_integrity(conn, database),
            await check_migrations(conn),
            await check_master_key(data_dir, conn),
        ]
    finally:
        await conn.close()


async def check_integrity(conn: Connection, database: Path) -> Finding:
    try:
        result = await inspection.quick_check(conn)
    except sqlite3.DatabaseError as exc:
        return Finding("database", PROBLEM, f"{database} is not a usable database: {exc}; restore a backup")
    if result != ["ok"]:
        more = f" (and {len(result) - 1} more)" if len(result) > 1 else ""
        return Finding(
            "database", PROBLEM, f"{database} fails its integrity check: {result[0]}{more}; restore a backup"
        )
    return Finding("database", OK, f"{database} passes its integrity check (quick_check)")


async def check_migrations(conn: Connection) -> Finding:
    name = "migrations"
    try:
        done = await inspection.recorded_versions(conn)
    except sqlite3.DatabaseError as exc:
        return Finding(name, PROBLEM, f"the schema version cannot be read: {exc}")
    known = available_migrations()
    latest = known[-1].version
    if done and max(done) > latest:
        return Finding(
            name,
            PROBLEM,
            f"the database is at schema version {max(done)}, newer than this telentir-box knows"
            f" ({latest}); upgrade telentir-box or restore a matching backup",
        )
    pending = [f"{m.version:04d}_{m.name}" for m in known if m.version not in done]
    if pending:
        return Finding(
            name,
            PROBLEM,
            f"pending: {', '.join(pending)}; restart the service, or run `telentir-box migrate`"
            " with the box stopped",
        )
    return Finding(name, OK, f"schema current (version {latest})")


def _master_key_source(data_dir: Path) -> str:
    return f"${MASTER_KEY_ENV}" if os.environ.get(MASTER_KEY_ENV) else str(data_dir / "master.key")


def _load_master_key(data_dir: Path) -> bytes | Finding:
    try:
        return load_master_key(data_dir)
    except MasterKeyError as exc:
        return Finding("master key", PROBLEM, str(exc))
    except OSError as exc:
        return Finding(
            "master key", PROBLEM, f"{_master_key_source(data_dir)} cannot be read: {exc.strerror}"
        )


async def check_master_key(data_dir: Path, conn: Connection | None) -> Finding:
    """The key must open what the database holds sealed under it, as a start would."""
    key = _load_master_key(data_dir)
    if isinstance(key, Finding):
        return key
    source = _master_key_source(data_dir)
    if conn is None:
        return Finding("master key", OK, f"present in {source} (no database to match it against)")
    try:
        sealed_secret = await secrets_repo.get_secret(conn, SESSION_SECRET)
        platform_keys = await secrets_repo.list_platform_keys(conn)
    except sqlite3.DatabaseError as exc:
        return Finding(
            "master key", NOTE, f"not matched: the database's sealed secrets cannot be read ({exc})"
        )
    if sealed_secret is None or not platform_keys:
        return Finding(
            "master key", PROBLEM, "the database holds no session secret yet (run `telentir-box init`)"
        )
    try:
        Sealer(key, SECRETS_PURPOSE).open(sealed_secret, b"session")
        platform_sealer = Sealer(key, PLATFORM_PURPOSE)
        for row in platform_keys:
            platform_sealer.open(row.sealed_private, row.name.encode())
    except (InvalidTag, ValueError):
        return Finding(
            "master key",
            PROBLEM,
            f"the key in {source} does not match the database: it cannot open the secrets sealed"
            " in it; put back the master key this database was made with",
        )
    return Finding("master key", OK, f"{source} opens the database's sealed secrets")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def check_disk(data_dir: Path) -> Finding:
    """Room to keep writing, and for a backup or restore of the database beside it."""
    where = data_dir
    while not where.exists():
        where = where.parent
    usage = shutil.disk_usage(where)
    database = data_dir / DATABASE_FILE
    db_bytes = database.stat().st_size if database.is_file() else 0
    needed = max(MIN_FREE_BYTES, db_bytes)
    text = f"{_size(usage.free)} free of {_size(usage.total)} (database {_size(db_bytes)})"
    if usage.free < needed:
        return Finding("free disk", PROBLEM, f"{text}; below the {_size(needed)} the box needs")
    return Finding("free disk", OK, text)
