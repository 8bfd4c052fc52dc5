"""A consistent copy of the database, taken with SQLite's online backup API while the
box runs (writers are not blocked: WAL readers never block them), so an operator needs
neither the sqlite3 tool nor a stopped service. The copy is one self-contained file,
private to its owner, written under a temporary name and renamed only once checked."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int


def backup_database(source: Path, destination: Path, *, busy_timeout_ms: int = 5000) -> BackupReport:
    """Copy the database at `source` to `destination` (a new file, or a directory to put
    a time-stamped file in); never overwrites anything."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        destination = destination / f"telentir-box-{stamp}.sqlite3"
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose a new name")
    if not destination.parent.is_dir():
        raise BackupError(f"no directory {destination.parent}")
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        # Created 0600 before SQLite opens it: the copy holds sealed secrets and ciphertext.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise BackupError(f"{partial} exists: another backup is running, or remove it") from None
    try:
        copy_database(source, partial, busy_timeout_ms)
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_directory(destination.parent)
    return BackupReport(destination, destination.stat().st_size)


def copy_database(source: Path, target: Path, busy_timeout_ms: int = 5000) -> None:
    """Copy a database (WAL or not) into the empty file `target` as one checked file."""
    try:
        _copy(source, target, busy_timeout_ms)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not a usable database: {exc}") from None


def _copy(source: Path, target: Path, busy_timeout_ms: int) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        src.execute("PRAGMA query_only = ON")
        # One step (pages=-1): a single read transaction, so the copy is one snapshot and
        # writes committed meanwhile cannot restart it.
        src.backup(dst)
        # The copy inherits WAL mode; rollback mode keeps it one file. A restored box
        # switches it back to WAL when it opens it.
        dst.execute("PRAGMA journal_mode = DELETE")
        (result,) = dst.execute("PRAGMA quick_check").fetchone()
        if result != "ok":
            raise BackupError(f"the copy failed its integrity check: {result}")
    with open(target, "rb") as copy:
        os.fsync(copy.fileno())


def fsync_directory(path: Path) -> None:
    """Make the rename durable too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
