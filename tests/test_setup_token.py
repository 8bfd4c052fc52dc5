"""The one-time setup token lives only while no super admin exists: once one does (by
POST /api/setup-super-admin or `admin create-user --super-admin`), the token row and
file are gone for good and no command writes them again. Commands run as root on a
data directory another user owns run as that user."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.cli import main
from telentir_box.config import Config
from tests.auth_support import PASSWORD, call, setup_owner
from tests.conftest import LiveServer

NOBODY = 65534


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("TELENTIR_BOX_DATA__DIR", str(data_dir))
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    monkeypatch.delenv("TELENTIR_BOX_MASTER_KEY", raising=False)
    return data_dir


def setup_token_rows(data_dir: Path) -> int:
    with closing(sqlite3.connect(data_dir / "telentir-box.sqlite3")) as db:
        return db.execute("SELECT count(*) FROM box_secrets WHERE name = 'setup_token'").fetchone()[0]


def users(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["admin", "list-users"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_setup_is_over(
    data_dir: Path, config: Config, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Setup stays over through a server start, init and an admin command."""
    with TestClient(create_app(config)) as client:
        body = {"setupToken": token, "email": "late@example.com", "password": PASSWORD}
        refused = call(client, "POST", "/api/setup-super-admin", json=body)
        assert refused.status_code == 403
        assert refused.json()["code"] == "SETUP_COMPLETE"
    assert main(["init"]) == 0
    assert "tbs_" not in capsys.readouterr().out
    assert "late@example.com" not in json.dumps(users(capsys))
    assert not (data_dir / "setup-token").exists()
    assert setup_token_rows(data_dir) == 0


def test_setup_token_ends_when_create_user_makes_a_super_admin(
    cli_env: Path, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    token = (cli_env / "setup-token").read_text().strip()
    assert token in capsys.readouterr().out

    assert main(["admin", "create-user", "root@example.com", "--super-admin"]) == 0
    (made,) = users(capsys)
    assert (made["role"], made["superAdmin"]) == ("owner", True)
    assert not (cli_env / "setup-token").exists()
    assert_setup_is_over(cli_env, config, token, capsys)


def test_setup_token_ends_when_used_and_is_never_made_again(
    cli_env: Path, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(config)) as client:
        token = (cli_env / "setup-token").read_text().strip()
        setup_owner(client, cli_env)
    assert_setup_is_over(cli_env, config, token, capsys)


def test_super_admin_keeps_a_role_given(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "create-user", "ops@example.com", "--super-admin", "--role", "admin"]) == 0
    assert main(["admin", "create-user", "member@example.com"]) == 0
    roles = {user["email"]: (user["role"], user["superAdmin"]) for user in users(capsys)}
    assert roles == {"ops@example.com": ("admin", True), "member@example.com": ("member", False)}


@pytest.fixture
def nobodys_data_dir() -> Iterator[Path]:
    # Outside pytest's tmp_path: its parents are private to root, and the command,
    # once it is nobody, must still reach the data directory.
    parent = Path(tempfile.mkdtemp(prefix="telentir-owner-"))
    try:
        parent.chmod(0o755)
        data_dir = parent / "data"
        data_dir.mkdir(mode=0o700)
        os.chown(data_dir, NOBODY, NOBODY)
        yield data_dir
    finally:
        shutil.rmtree(parent)


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_commands_run_as_root_act_as_the_data_dirs_owner(nobodys_data_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELENTIR_BOX_")}
    env["TELENTIR_BOX_DATA__DIR"] = str(nobodys_data_dir)
    for command in (
        ["init"],
        ["admin", "create-user", "ops@example.com", "--api-key", "ops"],
        ["migrate"],
        ["backup", str(nobodys_data_dir / "copy.sqlite3")],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "telentir_box", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"running as nobody (uid {NOBODY}), the owner of {nobodys_data_dir}" in result.stderr
    server = LiveServer(
        env={"TELENTIR_BOX_DATA__DIR": str(nobodys_data_dir)}, log_path=tmp_path / "serve.log"
    )
    with server.start().client() as http:
        assert http.get("/api/schema/openapi.json").status_code == 200
    assert server.stop() == 0
    assert "running as nobody" in server.log()
    owners = {path.name: (path.stat().st_uid, path.stat().st_gid) for path in nobodys_data_dir.iterdir()}
    assert "master.key" in owners and "telentir-box.sqlite3" in owners and "box.lock" in owners
    assert set(owners.values()) == {(NOBODY, NOBODY)}, owners
