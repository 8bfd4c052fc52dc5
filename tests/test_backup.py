"""`telentir-box backup`: a consistent copy of a running box's database, restorable with
the master key, and clear refusals that change nothing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from telentir_box.cli import main
from telentir_box.datadir import DATABASE_FILE
from tests.conftest import LiveServer
from tests.store_client import StoreClient


def run_cli(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telentir_box", *command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_backup_of_a_running_box_restores_with_its_master_key(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    env: dict[str, str],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    server = live_server_factory()
    user = user_factory()
    destination = tmp_path / "nightly.sqlite3"
    with server.client() as http:
        client = StoreClient(http, user["api_key"])
        client.connect()
        before = {client.create("contacts", {"name": f"Ada {i}"})["id"]: f"Ada {i}" for i in range(5)}

        # Writes go on while the copy is taken: WAL readers never block the writer.
        stop, during = threading.Event(), []

        def keep_writing() -> None:
            with server.client() as other:
                writer = StoreClient(other, user["api_key"])
                writer.connect()
                while not stop.is_set():
                    during.append(writer.create("contacts", {"name": "later"})["id"])

        thread = threading.Thread(target=keep_writing)
        thread.start()
        try:
            result = run_cli(env, "backup", str(destination))
        finally:
            stop.set()
            thread.join(30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(destination), "bytes": destination.stat().st_size}
    assert "master.key" in result.stderr
    assert during, "the writer made no progress while the backup ran"
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.partial"))
    with closing(sqlite3.connect(destination)) as copy:
        assert copy.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert server.stop() == 0

    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy2(destination, restored / DATABASE_FILE)
    shutil.copy2(data_dir / "master.key", restored / "master.key")
    again = live_server_factory(TELENTIR_BOX_DATA__DIR=str(restored))
    with again.client() as http:
        client = StoreClient(http, user["api_key"])
        client.connect()
        for object_id, name in before.items():
            assert client.get("contacts", object_id) == {"name": name}
        # The copy is one snapshot: the writes it holds are a prefix of those made meanwhile.
        held = [
            object_id
            for object_id in during
            if http.get(f"/api/objects/{object_id}", headers=client.headers).status_code == 200
        ]
        assert held == during[: len(held)]


@pytest.fixture
def initialised(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("TELENTIR_BOX_DATA__DIR", str(data_dir))
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    assert main(["init"]) == 0
    return data_dir


def test_backup_into_a_directory_names_a_new_file(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["backup", str(folder)]) == 0
    (made,) = folder.iterdir()
    assert made.name.startswith("telentir-box-") and made.suffix == ".sqlite3"
    assert json.loads(capsys.readouterr().out)["path"] == str(made)
    with closing(sqlite3.connect(made)) as copy:
        assert copy.execute("SELECT count(*) FROM schema_version").fetchone()[0] > 0


@pytest.mark.parametrize("case", ["exists", "no-parent", "partial-left"])
def test_backup_refuses_without_changing_anything(
    case: str, initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = tmp_path / "copy.sqlite3"
    if case == "exists":
        destination.write_bytes(b"an earlier backup")
    elif case == "no-parent":
        destination = tmp_path / "missing" / "copy.sqlite3"
    else:
        (tmp_path / ".copy.sqlite3.partial").write_bytes(b"left by a crashed run")
    before = sorted(p.name for p in tmp_path.iterdir())

    assert main(["backup", str(destination)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("telentir-box: ") and str(destination.parent) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert destination.read_bytes() == b"an earlier backup"


def test_backup_without_a_database_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELENTIR_BOX_DATA__DIR", str(tmp_path / "never-initialised"))
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    assert main(["backup", str(tmp_path / "copy.sqlite3")]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "copy.sqlite3").exists()
    assert not (tmp_path / "never-initialised").exists()


@pytest.mark.e2e
def test_restore_brings_back_the_backup_and_keeps_the_replaced_database(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    env: dict[str, str],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    server = live_server_factory()
    user = user_factory()
    with server.client() as http:
        client = StoreClient(http, user["api_key"])
        client.connect()
        kept = client.create("contacts", {"name": "before the backup"})["id"]
        assert run_cli(env, "backup", str(tmp_path / "copy.sqlite3")).returncode == 0
        lost = client.create("contacts", {"name": "after the backup"})["id"]

    refused = run_cli(env, "restore", str(tmp_path / "copy.sqlite3"))
    assert refused.returncode == 2 and "in use by telentir-box serve" in refused.stderr
    assert server.stop() == 0

    result = run_cli(env, "restore", str(tmp_path / "copy.sqlite3"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["restored"] == str(data_dir / DATABASE_FILE)
    previous = Path(report["previous"])
    with closing(sqlite3.connect(previous)) as replaced:
        assert replaced.execute("SELECT count(*) FROM objects WHERE id = ?", (lost,)).fetchone() == (1,)

    again = live_server_factory()
    with again.client() as http:
        client = StoreClient(http, user["api_key"])
        client.connect()
        assert client.get("contacts", kept) == {"name": "before the backup"}
        assert http.get(f"/api/objects/{lost}", headers=client.headers).status_code == 404


REFUSALS = {
    "missing": "no backup at",
    "not-sqlite": "is not a usable database",
    "not-the-box": "is not a telentir-box database",
    "other-master-key": "was sealed under another master key",
    "newer-schema": "newer than this telentir-box knows",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_restore_refuses_without_changing_anything(
    case: str,
    initialised: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = tmp_path / "candidate.sqlite3"
    if case == "not-sqlite":
        candidate.write_text("not a database")
    elif case == "not-the-box":
        with closing(sqlite3.connect(candidate)) as other:
            other.execute("CREATE TABLE notes (body TEXT)")
    elif case == "other-master-key":
        with monkeypatch.context() as other_box:
            other_box.setenv("TELENTIR_BOX_DATA__DIR", str(tmp_path / "elsewhere"))
            assert main(["init"]) == 0
            assert main(["backup", str(candidate)]) == 0
    elif case == "newer-schema":
        assert main(["backup", str(candidate)]) == 0
        with closing(sqlite3.connect(candidate)) as newer:
            newer.execute("INSERT INTO schema_version (version, name) VALUES (9999, 'future')")
            newer.commit()
    capsys.readouterr()
    before = {path.name: path.read_bytes() for path in initialised.iterdir() if path.name != "box.lock"}

    assert main(["restore", str(candidate)]) == 2
    assert REFUSALS[case] in capsys.readouterr().err
    after = {path.name: path.read_bytes() for path in initialised.iterdir() if path.name != "box.lock"}
    assert after == before
