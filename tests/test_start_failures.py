"""Every way `telentir-box serve` (and the other commands) can fail to start: one line
on stderr, a non-zero exit, and nothing created or changed on disk; the master key is
never replaced; a signal during start-up stops the process."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telentir_box.cli import main
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def run_cli(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TELENTIR_BOX_")}
    return subprocess.run(
        [sys.executable, "-m", "telentir_box", *command],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telentir-box: ") and "Traceback" not in lines[0]
    return lines[0]


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def listing(data_dir: Path) -> dict[str, bytes]:
    """What a refused start must leave as it was (box.lock only says who last held it)."""
    return {
        p.name: p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file() and p.name != "box.lock"
    }


@pytest.fixture
def initialised(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], data_dir: Path) -> Path:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    monkeypatch.delenv("TELENTIR_BOX_MASTER_KEY", raising=False)
    assert main(["init"]) == 0
    return data_dir


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize(
    ("extra_env", "args", "expected"),
    [
        ({}, ["--port", "70000"], "`server.port` must be at most 65535"),
        ({"TELENTIR_BOX_DATABASE__READ_POOL_SIZE": "0"}, [], "`database.read_pool_size` must be at least 1"),
        ({"TELENTIR_BOX_DATABASE__READ_POOL_SIZE": "-1"}, [], "`database.read_pool_size` must be at least 1"),
        ({"TELENTIR_BOX_MASTER_KEY": "not-a-key"}, [], "TELENTIR_BOX_MASTER_KEY is not 32 bytes of base64"),
    ],
)
def test_start_refuses_bad_settings_before_touching_disk(
    env: dict[str, str], data_dir: Path, extra_env: dict[str, str], args: list[str], expected: str
) -> None:
    line = one_line_failure(run_cli({**env, **extra_env}, "serve", *args))
    assert expected in line
    assert not data_dir.exists()


def test_start_on_a_taken_port_is_one_line_and_creates_nothing(
    env: dict[str, str], data_dir: Path, port_in_use: int
) -> None:
    result = run_cli({**env, "TELENTIR_BOX_LOG__FORMAT": "json"}, "serve", "--port", str(port_in_use))
    assert f"cannot listen on 127.0.0.1:{port_in_use}" in one_line_failure(result)
    assert "listening" not in result.stderr
    assert not data_dir.exists()


def test_start_on_an_unusable_data_dir_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    result = run_cli(
        {**env, "TELENTIR_BOX_DATA__DIR": str(a_file / "data")}, "serve", "--port", str(free_port())
    )
    assert f"cannot create the data directory {a_file / 'data'}" in one_line_failure(result)


def test_start_with_an_unreadable_key_file_is_one_line(initialised: Path, env: dict[str, str]) -> None:
    (initialised / "master.key").unlink()
    (initialised / "master.key").mkdir()  # unreadable as a file, even to root
    before = listing(initialised)
    line = one_line_failure(run_cli(env, "serve", "--port", str(free_port())))
    assert f"cannot read the master key {initialised / 'master.key'}" in line
    assert listing(initialised) == before


def test_start_without_the_master_key_refuses_and_writes_no_new_key(
    initialised: Path, env: dict[str, str]
) -> None:
    (initialised / "master.key").unlink()
    before = listing(initialised)
    for command in (["serve", "--port", str(free_port())], ["init"], ["admin", "list-users"]):
        line = one_line_failure(run_cli(env, *command))
        assert "holds a database but no master key" in line and "restore the master key" in line
    assert not (initialised / "master.key").exists()
    assert listing(initialised) == before


def test_start_with_the_wrong_master_key_says_so_in_one_line(initialised: Path, env: dict[str, str]) -> None:
    (initialised / "master.key").write_text(new_key() + "\n")
    before = listing(initialised)
    line = one_line_failure(run_cli(env, "serve", "--port", str(free_port())))
    assert "does not open this database's sealed secrets" in line
    line = one_line_failure(run_cli({**env, "TELENTIR_BOX_MASTER_KEY": new_key()}, "admin", "list-users"))
    assert "TELENTIR_BOX_MASTER_KEY does not open" in line
    assert listing(initialised) == before


def test_master_key_from_the_environment_is_never_written(env: dict[str, str], data_dir: Path) -> None:
    keyed = {**env, "TELENTIR_BOX_MASTER_KEY": new_key()}
    assert run_cli(keyed, "init").returncode == 0
    created = run_cli(keyed, "admin", "create-user", "ops@example.com")
    assert created.returncode == 0, created.stderr
    assert not (data_dir / "master.key").exists()
    # Without the key the data directory is refused, not given a new one.
    assert "no master key" in one_line_failure(run_cli(env, "admin", "list-users"))
    assert not (data_dir / "master.key").exists()


def test_restore_without_a_master_key_says_to_put_it_back(env: dict[str, str], tmp_path: Path) -> None:
    backup = tmp_path / "backup.sqlite3"
    backup.write_bytes(b"whatever")
    target = tmp_path / "new-home"
    line = one_line_failure(run_cli({**env, "TELENTIR_BOX_DATA__DIR": str(target)}, "restore", str(backup)))
    assert "put the master key the backup was made under back" in line and "TELENTIR_BOX_MASTER_KEY" in line
    assert "init" not in line
    assert not target.exists()


def opened(pid: int, path: str) -> bool:
    """Whether process `pid` has `path` open; its descriptors come and go as we look."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return path in links


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_stops_the_process(initialised: Path, env: dict[str, str], sig: int) -> None:
    # Another process holds the database's write lock, so the start waits inside
    # start-up (for up to a minute) when the signal comes.
    holder = sqlite3.connect(initialised / "telentir-box.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TELENTIR_BOX_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "telentir_box", "serve", "--port", str(free_port())],
        env={**base, **env, "TELENTIR_BOX_DATABASE__BUSY_TIMEOUT_MS": "60000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        database = str(initialised / "telentir-box.sqlite3")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None and not opened(process.pid, database):
            time.sleep(0.05)
        process.send_signal(sig)
        code = process.wait(timeout=15)
    finally:
        holder.rollback()
        holder.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == -sig  # ended by the signal, at once, not after the lock wait


def test_admin_commands_do_not_print_the_servers_warnings(initialised: Path, env: dict[str, str]) -> None:
    result = run_cli(env, "admin", "list-users")
    assert result.returncode == 0
    assert "Twilio" not in result.stderr and "SMTP" not in result.stderr


def test_start_line_names_the_config_data_dir_and_address(tmp_path: Path, data_dir: Path) -> None:
    config_file = tmp_path / "box.toml"
    config_file.write_text(f'[data]\ndir = "{data_dir}"\n[log]\nformat = "json"\n')
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TELENTIR_BOX_")}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telentir_box",
                "serve",
                "--config",
                str(config_file),
                "--port",
                str(port),
            ],
            env=base,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "listening" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    messages = [entry["msg"] for entry in entries]
    assert messages.index("telentir-box listening") > messages.index("Application startup complete.")
    (start,) = [entry for entry in entries if entry["msg"] == "telentir-box listening"]
    assert start["config"] == str(config_file)
    assert start["data_dir"] == str(data_dir) and Path(start["data_dir"]).is_absolute()
    assert start["url"] == f"http://127.0.0.1:{port}/api"
    assert not [entry for entry in entries if "color_message" in entry]


def test_start_on_a_database_that_is_not_one_is_one_line(initialised: Path, env: dict[str, str]) -> None:
    (initialised / "telentir-box.sqlite3").write_bytes(b"garbage, not SQLite")
    before = listing(initialised)
    line = one_line_failure(run_cli(env, "serve", "--port", str(free_port())))
    assert "cannot open the database" in line and "file is not a database" in line
    assert listing(initialised) == before
