"""`telentir-box doctor`: whether this box is healthy and, if not, why. Each check is a
function returning a Finding; nothing here creates or changes anything in the data
directory, and a running server is left alone (the database is opened read-only)."""

from __future__ import annotations

import asyncio
import os
import pwd
import resource
import shutil
import smtplib
import sqlite3
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidTag

from telentir_box import __version__
from telentir_box.auth.credentials import RESET_PATH
from telentir_box.config import BillingConfig, Config, ConnectConfig, ServerConfig, SmtpConfig, TwilioConfig
from telentir_box.connect.stripe_billing import StripeBilling, StripeFailed
from telentir_box.crypto.sealing import MASTER_KEY_ENV, MasterKeyError, Sealer, load_master_key
from telentir_box.datadir import DATABASE_FILE, PLATFORM_PURPOSE, SECRETS_PURPOSE, SESSION_SECRET
from telentir_box.db import inspection
from telentir_box.db import secrets as secrets_repo
from telentir_box.db.connection import Connection
from telentir_box.db.migrate import available_migrations

Status = Literal["ok", "problem", "note"]
OK: Status = "ok"
PROBLEM: Status = "problem"
NOTE: Status = "note"

# Below this much free space SQLite may fail a commit or a checkpoint at any moment.
MIN_FREE_BYTES = 256 * 1024 * 1024
# Descriptors the box holds besides its event streams: the database connections (each
# with its -wal and -shm), the listening socket, pooled outbound connections, logs.
FILE_DESCRIPTOR_RESERVE = 256
PROVIDER_TIMEOUT_SECONDS = 10.0
TWILIO_ACCOUNT_PATH = "/2010-04-01/Accounts/{sid}.json"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    reason: str


def run_checks(config: Config, *, online: bool = False) -> list[Finding]:
    """Every check, in the order an operator would fix them."""
    return asyncio.run(_run_checks(config, online))


async def _run_checks(config: Config, online: bool) -> list[Finding]:
    data_dir = config.data_dir
    findings = [check_data_dir(data_dir, os.geteuid())]
    findings += await check_database(data_dir)
    findings.append(check_disk(data_dir))
    findings.append(check_file_limit(config.events.max_streams, resource.getrlimit(resource.RLIMIT_NOFILE)))
    findings.append(check_public_url(config.server))
    findings += await check_providers(config, online=online)
    return findings


def has_problem(findings: list[Finding]) -> bool:
    return any(finding.status == PROBLEM for finding in findings)


def format_report(findings: list[Finding]) -> str:
    width = max(len(finding.check) for finding in findings)
    lines = [f"{f.status:<8} {f.check:<{width}}  {f.reason}" for f in findings]
    problems = sum(finding.status == PROBLEM for finding in findings)
    lines.append(
        f"{problems} problem{'s' if problems != 1 else ''} found"
        if problems
        else "healthy: no problems found"
    )
    return "\n".join(lines)


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
        return [
            Finding("database", PROBLEM, f"no database at {database} (`telentir-box init` creates it)"),
            check_master_key_present(data_dir),
        ]
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


def check_master_key_present(data_dir: Path) -> Finding:
    key = _load_master_key(data_dir)
    if isinstance(key, Finding):
        return key
    return Finding("master key", OK, f"present in {_master_key_source(data_dir)} (no database to match)")


async def check_master_key(data_dir: Path, conn: Connection) -> Finding:
    """The key must open what the database holds sealed under it, as a start would."""
    key = _load_master_key(data_dir)
    if isinstance(key, Finding):
        return key
    source = _master_key_source(data_dir)
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


def check_file_limit(max_streams: int, limits: tuple[int, int]) -> Finding:
    """Each event stream holds a socket; the server raises its soft limit to the hard one
    at start, so the hard limit is what counts."""
    soft, hard = limits
    needed = max_streams + FILE_DESCRIPTOR_RESERVE
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return Finding(
            "open files",
            PROBLEM,
            f"hard limit {shown} is below the {needed} that [events] max_streams = {max_streams} needs"
            f" (+{FILE_DESCRIPTOR_RESERVE} for the database and sockets); raise LimitNOFILE in the unit"
            " (or `ulimit -n`), or lower max_streams",
        )
    return Finding("open files", OK, f"hard limit {shown} (soft {soft}) carries max_streams = {max_streams}")


def check_public_url(server: ServerConfig) -> Finding:
    """The address the box gives out, in reset links and to the providers that call back."""
    name = "public url"
    url = server.public_url
    if not url:
        return Finding(
            name,
            NOTE,
            "empty: no webhook can reach this box (Twilio and Stripe have no address to call back) and"
            f" reset links point at http://{server.host}:{server.port}; set [server] public_url",
        )
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not port_ok
    ):
        return Finding(
            name, PROBLEM, f"{url!r} is not a URL such as https://box.example.com (scheme, host, no query)"
        )
    base = url.rstrip("/")
    told = f"webhooks are addressed under {base}/api/, reset links to {base}{RESET_PATH}?token=..."
    if parts.scheme == "http":
        return Finding(
            name, NOTE, f"{told}; plain http: cookies are not Secure and HSTS is off (use https via a proxy)"
        )
    return Finding(name, OK, told)


async def check_providers(config: Config, *, online: bool) -> list[Finding]:
    """Each provider: not configured (a note), partly configured (a problem), configured,
    and with `online` whether it answers with the configured credentials."""
    async with httpx.AsyncClient(
        timeout=PROVIDER_TIMEOUT_SECONDS, headers={"user-agent": f"telentir-box/{__version__} doctor"}
    ) as http:
        return list(
            await asyncio.gather(
                check_twilio(config.twilio, http, online=online),
                check_smtp(config.smtp, online=online),
                check_stripe(config.billing, http, online=online),
                check_connector(config.connect, http, online=online),
            )
        )


def _configuration(name: str, fields: dict[str, str], unset: str) -> Finding | None:
    """A finding unless every field is set: a note for none, a problem for some."""
    missing = [key for key, value in fields.items() if not value]
    if len(missing) == len(fields):
        return Finding(name, NOTE, f"not configured: {unset}")
    if missing:
        return Finding(name, PROBLEM, f"partly configured: {', '.join(missing)} empty, so {unset}")
    return None


def _offline(name: str, where: str) -> Finding:
    return Finding(name, OK, f"configured ({where}); not contacted, add --online to check it")


def _unreachable(name: str, where: str, exc: Exception) -> Finding:
    return Finding(name, PROBLEM, f"cannot reach {where}: {exc or type(exc).__name__}")


async def check_twilio(twilio: TwilioConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "twilio"
    fields = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_number": twilio.from_number,
    }
    unconfigured = _configuration(name, fields, "verification texts are written to the log")
    if unconfigured or not online:
        return unconfigured or _offline(name, twilio.api_base)
    url = twilio.api_base.rstrip("/") + TWILIO_ACCOUNT_PATH.format(sid=twilio.account_sid)
    try:
        response = await http.get(url, auth=(twilio.account_sid, twilio.auth_token))
    except httpx.HTTPError as exc:
        return _unreachable(name, twilio.api_base, exc)
    if response.status_code in (401, 403):
        return Finding(name, PROBLEM, f"{twilio.api_base} rejected the account SID and auth token")
    if response.status_code != 200:
        return Finding(name, PROBLEM, f"{twilio.api_base} answered HTTP {response.status_code}")
    return Finding(name, OK, f"{twilio.api_base} accepted the credentials")


def _smtp_login(smtp: SmtpConfig) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=PROVIDER_TIMEOUT_SECONDS) as client:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.noop()


async def check_smtp(smtp: SmtpConfig, *, online: bool) -> Finding:
    name = "smtp"
    where = f"{smtp.host}:{smtp.port}"
    if not smtp.host:
        return Finding(name, NOTE, "not configured: mail (reset links) is written to the log")
    if not online:
        return _offline(name, where)
    try:
        await asyncio.to_thread(_smtp_login, smtp)
    except smtplib.SMTPAuthenticationError:
        return Finding(name, PROBLEM, f"{where} rejected the username and password")
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        return _unreachable(name, where, exc)
    login = " and accepted the login" if smtp.username else ""
    tls = " over STARTTLS" if smtp.starttls else ""
    return Finding(name, OK, f"{where} answered{tls}{login}")


async def check_stripe(billing: BillingConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "stripe"
    fields = {
        "stripe_secret_key": billing.stripe_secret_key,
        "stripe_customer_id": billing.stripe_customer_id,
    }
    unconfigured = _configuration(name, fields, "prepaid credits are kept in the local ledger")
    if unconfigured or not online:
        return unconfigured or _offline(name, billing.stripe_api_base)
    try:
        cents = await StripeBilling(billing, http).balance_cents()
    except StripeFailed as exc:
        return Finding(name, PROBLEM, f"{billing.stripe_api_base} failed: {exc}")
    return Finding(
        name,
        OK,
        f"{billing.stripe_api_base} answered for customer {billing.stripe_customer_id}"
        f" (credit {cents} cents)",
    )


async def check_connector(connect: ConnectConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "connector"
    if not connect.base_url:
        return Finding(name, NOTE, "not configured: /api/connect answers 503")
    if not online:
        return _offline(name, connect.base_url)
    try:
        response = await http.get(connect.base_url)
    except httpx.HTTPError as exc:
        return _unreachable(name, connect.base_url, exc)
    if response.status_code >= 500:
        return Finding(name, PROBLEM, f"{connect.base_url} answered HTTP {response.status_code}")
    return Finding(name, OK, f"{connect.base_url} is reachable (HTTP {response.status_code})")
