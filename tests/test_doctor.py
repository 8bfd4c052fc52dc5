"""`telentir-box doctor`: a healthy data directory made by `init` passes and is left
untouched; each kind of damage is named as a problem with its reason and a non-zero
exit; providers are contacted only with --online, against real local servers."""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from telentir_box.cli import main
from telentir_box.config import Config, DatabaseConfig, EventsConfig, ServerConfig, load_config
from telentir_box.crypto.sealing import MASTER_KEY_ENV
from telentir_box.doctor import Finding, has_problem, run_checks
from telentir_box.doctor.report import NOTE, OK, PROBLEM
from telentir_box.doctor.settings import check_file_limit, check_public_url
from telentir_box.open_files import FILES_PER_DB_CONNECTION, RESERVED_FILES, files_needed
from tests.auth_support import smtp_server
from tests.conftest import LiveServer, free_port
from tests.connect_fakes import FakeConnector, FakeStripe, Recorded, _FakeService, _Server

DATABASE = "telentir-box.sqlite3"


@dataclass
class FakeTwilio(_FakeService):
    """Twilio's account resource, answering only to the account's own credentials."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "twilio-auth-token"
    server: _Server | None = None

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}.json":
            FakeStripe._send(handler, 404, {"code": 20404, "message": "not found"})
        elif request.headers.get("authorization") != f"Basic {credentials}":
            FakeStripe._send(handler, 401, {"code": 20003, "message": "Authenticate"})
        else:
            FakeStripe._send(handler, 200, {"sid": self.account_sid, "status": "active"})


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory made by `telentir-box init`, copied by each test."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TELENTIR_BOX_")}
    environ["TELENTIR_BOX_DATA__DIR"] = str(data_dir)
    subprocess.run(
        [sys.executable, "-m", "telentir_box", "init"],
        env=environ,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return data_dir


@pytest.fixture
def box_env(
    initialised: Path, data_dir: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A fresh copy of the initialised data directory; the environment names it, for
    the functions (load_config(environ=...)) and the CLI (os.environ) alike."""
    shutil.copytree(initialised, data_dir)
    for name in list(os.environ):
        if name.startswith("TELENTIR_BOX_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def checks(env: dict[str, str], *, online: bool = False) -> dict[str, Finding]:
    return {finding.check: finding for finding in run_checks(load_config(environ=env), online=online)}


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["doctor", *args])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out.splitlines()


def line(lines: list[str], status: str, check: str) -> str:
    found = [text for text in lines if text.split()[:1] == [status] and f" {check} " in text]
    assert found, f"no {status} line for {check} in:\n" + "\n".join(lines)
    return found[0]


def snapshot(directory: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry's mode, owner, modification time and content."""
    state = {".": (directory.stat().st_mode, directory.stat().st_uid, directory.stat().st_mtime_ns, "")}
    for entry in directory.iterdir():
        info = entry.stat()
        digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        state[entry.name] = (info.st_mode, info.st_uid, info.st_mtime_ns, digest)
    return state


def test_doctor_healthy_data_dir_passes_and_changes_nothing(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(data_dir)
    status, lines = doctor(capsys)
    assert status == 0, "\n".join(lines)
    assert snapshot(data_dir) == before
    for check in ("data directory", "database", "migrations", "master key", "free disk", "open files"):
        line(lines, OK, check)
    assert "opens the database's sealed secrets" in line(lines, OK, "master key")
    # Unconfigured providers and an empty public_url are notes, not problems.
    for check in ("twilio", "smtp", "stripe", "connector"):
        assert "not configured" in line(lines, NOTE, check)
    assert "no webhook can reach this box" in line(lines, NOTE, "public url")
    assert "the server is not running" in line(lines, NOTE, "server")
    assert "this process: hard limit" in line(lines, OK, "open files")
    assert lines[-1] == "healthy: no problems found"


def test_doctor_missing_master_key_is_a_problem(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "master.key").unlink()
    status, lines = doctor(capsys)
    assert status == 1
    assert "master.key is missing" in line(lines, PROBLEM, "master key")
    assert lines[-1] == "1 problem found"


def test_doctor_wrong_master_key_is_named_not_a_traceback(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "master.key").write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    status, lines = doctor(capsys)
    assert status == 1
    assert "does not match the database" in line(lines, PROBLEM, "master key")


def test_doctor_wrong_master_key_in_the_environment(
    box_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, base64.b64encode(secrets.token_bytes(32)).decode())
    found = checks(box_env)["master key"]
    assert found.status == PROBLEM
    assert f"${MASTER_KEY_ENV} does not match" in found.reason


def test_doctor_file_readable_by_others_is_a_problem(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / DATABASE).chmod(0o644)
    status, lines = doctor(capsys)
    assert status == 1
    assert f"{DATABASE} has mode 0644, not 0600" in line(lines, PROBLEM, "data directory")


def test_doctor_data_dir_open_to_others_is_a_problem(box_env: dict[str, str], data_dir: Path) -> None:
    data_dir.chmod(0o755)
    found = checks(box_env)["data directory"]
    assert found.status == PROBLEM
    assert "mode 0755, not 0700" in found.reason


def test_doctor_corrupted_database_is_a_problem(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = data_dir / DATABASE
    content = bytearray(database.read_bytes())
    content[8192:24576] = b"\xa5" * 16384  # pages 3 to 6: tables and indexes
    database.write_bytes(bytes(content))
    status, lines = doctor(capsys)
    assert status == 1
    assert "restore a backup" in line(lines, PROBLEM, "database")


def test_doctor_missing_data_dir_is_a_problem_and_is_not_created(
    box_env: dict[str, str], data_dir: Path
) -> None:
    shutil.rmtree(data_dir)
    found = checks(box_env)
    assert found["data directory"].status == PROBLEM
    assert "does not exist" in found["data directory"].reason
    assert found["database"].status == PROBLEM
    assert not data_dir.exists()


def test_doctor_pending_migration_is_a_problem(
    box_env: dict[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(data_dir / DATABASE) as conn:
        (last,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        (name,) = conn.execute("SELECT name FROM schema_version WHERE version = ?", (last,)).fetchone()
        conn.execute("DELETE FROM schema_version WHERE version = ?", (last,))
    conn.close()
    status, lines = doctor(capsys)
    assert status == 1
    assert f"pending: {last:04d}_{name}" in line(lines, PROBLEM, "migrations")


def test_doctor_newer_schema_is_a_problem(box_env: dict[str, str], data_dir: Path) -> None:
    with sqlite3.connect(data_dir / DATABASE) as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (9999, 'from_the_future')")
    conn.close()
    found = checks(box_env)["migrations"]
    assert found.status == PROBLEM
    assert "newer than this telentir-box knows" in found.reason


def test_doctor_file_limit_against_max_streams() -> None:
    config = Config(events=EventsConfig(max_streams=5000), database=DatabaseConfig(read_pool_size=4))
    needed = 5000 + RESERVED_FILES + 5 * FILES_PER_DB_CONNECTION
    assert files_needed(config) == needed
    assert check_file_limit(config, (1024, needed)).status == OK
    short = check_file_limit(config, (1024, needed - 1), "pid 42")
    assert short.status == PROBLEM
    assert short.reason.startswith(f"pid 42: hard limit {needed - 1} is below the {needed}")
    assert "LimitNOFILE" in short.reason
    assert check_file_limit(config, (1024, resource.RLIM_INFINITY)).status == OK


def test_doctor_max_streams_above_the_process_file_limit(box_env: dict[str, str]) -> None:
    """The real limit of the process, lowered below the default max_streams (2000)."""

    # Lowered by the child itself before it becomes doctor (no preexec_fn: not fork-safe).
    lowered = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024));"
        " os.execv(sys.executable, [sys.executable, '-m', 'telentir_box', 'doctor'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", lowered],
        env={**os.environ, **box_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "this process: hard limit 1024 is below" in line(lines, PROBLEM, "open files")
    assert "max_streams = 2000" in line(lines, PROBLEM, "open files")


@pytest.mark.parametrize(
    ("public_url", "status", "words"),
    [
        ("", NOTE, "no webhook can reach this box"),
        ("https://box.example.com", OK, "webhooks are addressed under https://box.example.com/api/"),
        ("https://box.example.com/", OK, "reset links to https://box.example.com/reset-password?token="),
        ("http://box.example.com:8080", NOTE, "plain http"),
        ("box.example.com", PROBLEM, "is not a URL"),
        ("ftp://box.example.com", PROBLEM, "is not a URL"),
        ("https://box.example.com/?next=1", PROBLEM, "is not a URL"),
        ("https://user@box.example.com", PROBLEM, "is not a URL"),
        ("https://box.example.com:99999", PROBLEM, "is not a URL"),
    ],
)
def test_doctor_public_url(public_url: str, status: str, words: str) -> None:
    found = check_public_url(ServerConfig(public_url=public_url))
    assert found.status == status
    assert words in found.reason


@pytest.fixture
def providers() -> Iterator[tuple[FakeTwilio, int, FakeStripe, FakeConnector]]:
    """Twilio, an SMTP server, Stripe and a connector, each a real local server."""
    smtp_port = free_port()
    with (
        FakeTwilio() as twilio,
        smtp_server(smtp_port),
        FakeStripe(balance=-1234) as stripe,
        FakeConnector(status=404) as connector,
    ):
        yield twilio, smtp_port, stripe, connector


def provider_env(
    base: dict[str, str], providers: tuple[FakeTwilio, int, FakeStripe, FakeConnector]
) -> dict[str, str]:
    twilio, smtp_port, stripe, connector = providers
    return base | {
        "TELENTIR_BOX_TWILIO__ACCOUNT_SID": twilio.account_sid,
        "TELENTIR_BOX_TWILIO__AUTH_TOKEN": twilio.auth_token,
        "TELENTIR_BOX_TWILIO__FROM_NUMBER": "+15550001111",
        "TELENTIR_BOX_TWILIO__API_BASE": twilio.url,
        "TELENTIR_BOX_SMTP__HOST": "127.0.0.1",
        "TELENTIR_BOX_SMTP__PORT": str(smtp_port),
        "TELENTIR_BOX_SMTP__STARTTLS": "false",
        "TELENTIR_BOX_BILLING__STRIPE_SECRET_KEY": "sk_test_doctor",
        "TELENTIR_BOX_BILLING__STRIPE_CUSTOMER_ID": stripe.customer_id,
        "TELENTIR_BOX_BILLING__STRIPE_API_BASE": stripe.url,
        "TELENTIR_BOX_CONNECT__BASE_URL": connector.url,
        "TELENTIR_BOX_SERVER__PUBLIC_URL": "https://box.example.com",
    }


def test_doctor_online_reaches_every_configured_provider(
    box_env: dict[str, str], providers: tuple[FakeTwilio, int, FakeStripe, FakeConnector]
) -> None:
    twilio, _, stripe, connector = providers
    env = provider_env(box_env, providers)

    offline = checks(env)
    for check in ("twilio", "smtp", "stripe", "connector"):
        assert offline[check].status == OK
        assert "not contacted, add --online" in offline[check].reason
    assert not twilio.requests and not stripe.requests and not connector.requests

    online = checks(env, online=True)
    assert not has_problem(list(online.values())), online
    assert "accepted the credentials" in online["twilio"].reason
    assert "answered" in online["smtp"].reason
    assert "credit 1234 cents" in online["stripe"].reason
    assert "reachable (HTTP 404)" in online["connector"].reason
    assert [r.path for r in stripe.requests] == [f"/v1/customers/{stripe.customer_id}"]
    assert stripe.requests[0].headers["authorization"] == "Bearer sk_test_doctor"


def test_doctor_online_names_the_unreachable_and_the_rejected(
    box_env: dict[str, str],
    providers: tuple[FakeTwilio, int, FakeStripe, FakeConnector],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = provider_env(box_env, providers) | {
        "TELENTIR_BOX_CONNECT__BASE_URL": closed,
        "TELENTIR_BOX_TWILIO__AUTH_TOKEN": "not-the-token",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status, lines = doctor(capsys, "--online")
    assert status == 1
    assert f"cannot reach {closed}" in line(lines, PROBLEM, "connector")
    assert "rejected the account SID and auth token" in line(lines, PROBLEM, "twilio")
    line(lines, OK, "smtp")
    line(lines, OK, "stripe")
    assert lines[-1] == "2 problems found"


def test_doctor_partly_configured_provider_is_a_problem(box_env: dict[str, str]) -> None:
    found = checks(box_env | {"TELENTIR_BOX_TWILIO__ACCOUNT_SID": "AC123"})["twilio"]
    assert found.status == PROBLEM
    assert "auth_token, from_number empty" in found.reason


@pytest.mark.e2e
def test_doctor_runs_beside_a_running_server(env: dict[str, str], live_server: LiveServer) -> None:
    """No need to stop the box: the database is read while the server holds it in WAL mode."""
    assert live_server.process is not None
    pid = live_server.process.pid
    found = checks(env)
    assert not has_problem(list(found.values())), found
    assert f"telentir-box serve (pid {pid}) is using the data directory" in found["server"].reason
    # The limit that counts is the server's own, read from /proc, not the caller's.
    assert found["open files"].reason.startswith(f"pid {pid}: hard limit ")
    assert live_server.process.poll() is None


def test_doctor_cli_help_names_online(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--online" in out and "--config" in out
