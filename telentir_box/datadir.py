"""The data directory and the box's first secrets: `init` creates them once
(idempotently), and every start loads them into a Keyring."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag

from telentir_box.config import Config
from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring, PlatformKey
from telentir_box.crypto.sealing import (
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    MasterKeyError,
    Sealer,
    WrongMasterKey,
    create_master_key,
    load_master_key,
    master_key_from_env,
    master_key_source,
)
from telentir_box.db import secrets as secrets_repo
from telentir_box.db import users as users_repo
from telentir_box.db.backup import BackupError, copy_database, fsync_directory
from telentir_box.db.database import Database, Transaction
from telentir_box.db.migrate import applied_versions, apply_migrations

DATABASE_FILE = "telentir-box.sqlite3"
PLATFORM_KEY_NAME = "box"
SESSION_SECRET = "session_secret"  # noqa: S105 - a row name, not a secret
SETUP_TOKEN = "setup_token"  # noqa: S105 - a row name
CRON_SECRET = "cron_secret"  # noqa: S105 - a row name
SETUP_TOKEN_FILE = "setup-token"  # noqa: S105 - a file name
LOCK_FILE = "box.lock"
SECRETS_PURPOSE = "box-secrets"
PLATFORM_PURPOSE = "platform-keys"


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)
    setup_token: str | None = None  # only when this run created it
    setup_token_file: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.migrations)


def open_database(config: Config) -> Database:
    db = config.database
    return Database(
        config.data_dir / DATABASE_FILE,
        synchronous=db.synchronous,
        read_pool_size=db.read_pool_size,
        busy_timeout_ms=db.busy_timeout_ms,
        max_batch=db.max_batch,
    )


class DataDirError(Exception):
    """The data directory cannot be created or used: said in one line."""


class DataDirInUse(DataDirError):
    pass


@contextlib.contextmanager
def exclusive_use(data_dir: Path, holder: str) -> Iterator[None]:
    """Hold the data directory for one server, migration or restore at a time. A second
    server would keep its own event bus and caches, so streams on one would never see
    writes made through the other. The kernel releases the lock however the holder ends.
    Creates the data directory if it is missing."""
    ensure_data_dir(data_dir)
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DataDirError(f"cannot use the data directory {data_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            raise DataDirInUse(f"{data_dir} is in use by {other}; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def ensure_data_dir(path: Path) -> bool:
    """Create the data directory, private to the box's user; True if it was created."""
    created = not path.exists()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create the data directory {path}: {exc.strerror}") from None
    return created


async def initialise(config: Config) -> tuple[Database, InitReport]:
    """Create whatever is missing: directory, master key, schema, session secret,
    platform keypair and, while no super admin exists, the one-time setup token (its
    file too); return the open database. A second run changes nothing."""
    report = InitReport()
    data_dir = config.data_dir
    if ensure_data_dir(data_dir):
        report.created.append(f"data directory {data_dir}")
    db = open_database(config)
    try:
        await db.open()
    except sqlite3.DatabaseError as exc:
        # OperationalError: the file cannot be opened (permissions, space); any other
        # DatabaseError: it opened and is not a usable database.
        advice = "" if isinstance(exc, sqlite3.OperationalError) else "; restore it from a backup"
        raise DataDirError(f"cannot open the database {db.path}: {exc}{advice}") from None
    try:
        master = await obtain_master_key(db, data_dir, report)
        set_up = await _initialise_database(db, master, report)
    except BaseException:
        await db.close()
        raise
    restrict_permissions(db.path)
    if report.setup_token:
        report.setup_token_file = write_setup_token_file(data_dir, report.setup_token)
    elif set_up:
        discard_setup_token_file(data_dir)
    return db, report


async def obtain_master_key(db: Database, data_dir: Path, report: InitReport) -> bytes:
    """The master key that opens this database's sealed secrets, checked before anything
    is migrated or written. A key file is created only for a database that holds no
    sealed secret yet and when the environment gives no key: a new key beside sealed
    data would lock that data away for good."""
    async with db.reading() as conn:
        sealed = await secrets_repo.get_secret_if_migrated(conn, SESSION_SECRET)
    from_env = master_key_from_env()
    if sealed is None:
        if from_env is None and create_master_key(data_dir):
            report.created.append("master key")
        return load_master_key(data_dir)
    if from_env is None and not (data_dir / MASTER_KEY_FILE).exists():
        raise MasterKeyError(
            f"{data_dir} holds a database but no master key ({data_dir / MASTER_KEY_FILE} or"
            f" {MASTER_KEY_ENV}): restore the master key from your backup; without it the"
            " sealed secrets cannot be opened"
        )
    master = load_master_key(data_dir)
    open_session_secret(master, sealed, master_key_source(data_dir))
    return master


def open_session_secret(master: bytes, sealed: bytes, source: str) -> bytes:
    try:
        return Sealer(master, SECRETS_PURPOSE).open(sealed, b"session")
    except (InvalidTag, ValueError):
        raise WrongMasterKey(
            f"the master key in {source} does not open this database's sealed secrets:"
            " put back the master key this database was made with (from your backup)"
        ) from None


async def _initialise_database(db: Database, master: bytes, report: InitReport) -> bool:
    """Apply migrations and add the missing secrets; True if a super admin exists."""
    report.migrations = [f"{m.version:04d}_{m.name}" for m in await apply_migrations(db.writer)]
    box_sealer = Sealer(master, SECRETS_PURPOSE)
    platform_sealer = Sealer(master, PLATFORM_PURPOSE)

    async with db.reading() as conn:
        has_platform_key = bool(await secrets_repo.list_platform_keys(conn))
    # RSA generation is CPU-heavy: keep it off the event loop.
    new_key = None if has_platform_key else await asyncio.to_thread(rsa_keys.generate_private_key)
    setup_token = "tbs_" + secrets.token_urlsafe(32)
    cron_secret = "tbc_" + secrets.token_urlsafe(32)

    async def write(tx: Transaction) -> tuple[list[str], bool]:
        created = []
        secret = secrets.token_bytes(32)
        if await secrets_repo.insert_secret(tx, SESSION_SECRET, box_sealer.seal(secret, b"session")):
            created.append("session-signing secret")
        if await secrets_repo.insert_secret(tx, CRON_SECRET, box_sealer.seal(cron_secret.encode(), b"cron")):
            created.append("cron secret")
        # The setup token lives only while no super admin does; once one exists it is
        # gone for good (this also clears a token left by an older version).
        set_up = await users_repo.super_admin_exists(tx.conn)
        if set_up:
            await secrets_repo.delete_secret(tx, SETUP_TOKEN)
        elif await secrets_repo.insert_secret(
            tx, SETUP_TOKEN, box_sealer.seal(setup_token.encode(), b"setup")
        ):
            created.append("setup token")
        if new_key is not None:
            await secrets_repo.insert_platform_key(
                tx,
                PLATFORM_KEY_NAME,
                rsa_keys.public_key_der(new_key.public_key()),
                platform_sealer.seal(rsa_keys.private_key_der(new_key), PLATFORM_KEY_NAME.encode()),
                current=True,
            )
            created.append(f"platform keypair '{PLATFORM_KEY_NAME}'")
        return created, set_up

    # The report is filled from what the committed run returned (a write may run twice).
    created, set_up = await db.write(write)
    report.created += created
    if "setup token" in created:
        report.setup_token = setup_token
    return set_up


async def load_keyring(config: Config, db: Database) -> Keyring:
    master = load_master_key(config.data_dir)
    platform_sealer = Sealer(master, PLATFORM_PURPOSE)
    async with db.reading() as conn:
        sealed_secret = await secrets_repo.get_secret(conn, SESSION_SECRET)
        rows = await secrets_repo.list_platform_keys(conn)
    if sealed_secret is None or not rows:
        raise DataDirError(f"{db.path} holds no box secrets: it was never initialised by telentir-box")
    session_secret = open_session_secret(master, sealed_secret, master_key_source(config.data_dir))
    keys = {}
    current = rows[-1].name
    for row in rows:
        private = rsa_keys.load_private_key(platform_sealer.open(row.sealed_private, row.name.encode()))
        keys[row.name] = PlatformKey(row.name, private.public_key(), private)
        if row.is_current:
            current = row.name
    return Keyring(
        master_key=master,
        session_secret=session_secret,
        platform_keys=keys,
        current_platform=current,
    )


async def load_cron_secret(db: Database, master_key: bytes) -> str:
    """The generated secret of /api/cron/<job> (made at init), opened."""
    async with db.reading() as conn:
        sealed = await secrets_repo.get_secret(conn, CRON_SECRET)
    if sealed is None:
        raise DataDirError(f"{db.path} holds no cron secret: run `telentir-box init`")
    return Sealer(master_key, SECRETS_PURPOSE).open(sealed, b"cron").decode()


def restrict_permissions(path: Path) -> None:
    """Database files hold sealed secrets and user data: owner-only."""
    for candidate in _with_side_files(path):
        if candidate.exists():
            os.chmod(candidate, 0o600)


def write_setup_token_file(data_dir: Path, token: str) -> Path:
    """Hand the setup token to the operator without putting it in the logs."""
    path = data_dir / SETUP_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return path


def discard_setup_token_file(data_dir: Path) -> None:
    (data_dir / SETUP_TOKEN_FILE).unlink(missing_ok=True)


def check_restore_key(data_dir: Path) -> None:
    """A restore needs the master key the backup was sealed under; say where it goes
    before anything (even the data directory) is created. A new key would not do."""
    try:
        load_master_key(data_dir)
    except MasterKeyError as exc:
        raise BackupError(
            f"{exc}; put the master key the backup was made under back in"
            f" {data_dir / MASTER_KEY_FILE} (0600) or {MASTER_KEY_ENV}, then restore again"
        ) from None


@dataclass(frozen=True)
class RestoreReport:
    restored: Path
    previous: Path | None  # the database it replaced, kept under a new name


def restore_database(config: Config, backup: Path) -> RestoreReport:
    """Put a backup in place of the database, for a box that is not running (hold
    `exclusive_use`). The backup is copied, brought to this version's schema and opened
    with this data directory's master key before anything is replaced; the replaced
    database is renamed with its -wal and -shm, never deleted."""
    if not backup.is_file():
        raise BackupError(f"no backup at {backup}")
    database = config.data_dir / DATABASE_FILE
    partial = config.data_dir / f".{DATABASE_FILE}.restore"
    for leftover in _with_side_files(partial):
        leftover.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        copy_database(backup, partial, config.database.busy_timeout_ms)
        asyncio.run(_prepare_restored(config, partial, backup))
        previous = None
        if database.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            previous = database.with_name(f"{DATABASE_FILE}.before-restore-{stamp}")
            for current, aside in zip(_with_side_files(database), _with_side_files(previous), strict=True):
                if current.exists():
                    os.replace(current, aside)
        os.replace(partial, database)
    finally:
        for leftover in _with_side_files(partial):
            leftover.unlink(missing_ok=True)
    fsync_directory(config.data_dir)
    return RestoreReport(database, previous)


async def _prepare_restored(config: Config, path: Path, backup: Path) -> None:
    """Migrate the copy to this version's schema (SchemaTooNew if it is newer) and open
    its sealed secrets with this data directory's master key."""
    db = Database(path, synchronous=config.database.synchronous)
    await db.open()
    try:
        if not await applied_versions(db.writer):
            raise BackupError(f"{backup} is not a telentir-box database")
        await apply_migrations(db.writer)
        try:
            await load_keyring(config, db)
        except (WrongMasterKey, InvalidTag, ValueError):
            raise BackupError(
                f"{backup} was sealed under another master key than {config.data_dir}'s"
            ) from None
    finally:
        await db.close()


def _with_side_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
