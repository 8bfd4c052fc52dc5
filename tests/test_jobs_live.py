"""The jobs on the real `telentir-box serve`: /api/cron with the secret `admin
cron-secret` shows (or the operator's), once per period across a restart, and a
SIGTERM while a job runs still exits 0 within 5 s, the run finished by the next one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, create_user

pytestmark = pytest.mark.e2e
CONFIGURED = "operator-chosen-cron-secret-" + "z" * 20


def cron_secret(env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "telentir_box", "admin", "cron-secret"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def runs(server: LiveServer, api_key: str) -> list[dict[str, Any]]:
    with server.client() as http:
        response = http.get("/api/jobs/runs", headers={"authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def cron(server: LiveServer, job: str, secret: str, method: str = "GET") -> httpx.Response:
    with server.client() as http:
        return http.request(method, f"/api/cron/{job}", headers={"authorization": f"Bearer {secret}"})


def test_jobs_live_cron_runs_once_per_period_across_a_restart(
    env: dict[str, str], live_server_factory: Callable[..., LiveServer]
) -> None:
    owner = create_user(env, "owner@example.com", "--super-admin", "--api-key", "ops")
    shown = cron_secret(env)
    assert shown["source"] == "generated at init" and shown["cron_secret"].startswith("tbc_")
    secret = shown["cron_secret"]
    server = live_server_factory()
    for forged in ("wrong", secret + "x", owner["api_key"]):
        assert cron(server, "daily-summary", forged).status_code == 401
    assert runs(server, owner["api_key"]) == []

    first = cron(server, "daily-summary", secret)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["run"]["outcome"]) == ("ran", "done")
    assert server.stop() == 0
    server = live_server_factory()
    again = cron(server, "daily-summary", secret, "POST")
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["run"]["id"]) == ("already_done", first.json()["run"]["id"])
    assert [run["job"] for run in runs(server, owner["api_key"])] == ["daily-summary"]
    assert server.stop() == 0

    # The operator's own secret, for an external scheduler, replaces the generated one.
    server = live_server_factory(TELENTIR_BOX_JOBS__CRON_SECRET=CONFIGURED)
    assert cron(server, "weekly-report", secret).status_code == 401
    assert cron(server, "weekly-report", CONFIGURED).json()["status"] == "ran"
    shown = cron_secret({**env, "TELENTIR_BOX_JOBS__CRON_SECRET": CONFIGURED})
    assert shown == {"cron_secret": CONFIGURED, "source": "config [jobs] cron_secret"}


def old_recordings(data_dir: Path, count: int) -> None:
    """Recordings past retention (their objects long gone), written beside a stopped box."""
    user_id = sqlite3.connect(data_dir / "telentir-box.sqlite3").execute("SELECT id FROM users").fetchone()[0]
    with sqlite3.connect(data_dir / "telentir-box.sqlite3") as db:
        db.executemany(
            "INSERT INTO call_recordings (call_id, user_id, object_id, created_at)"
            " VALUES (?, ?, ?, '2020-01-01T00:00:00.000Z')",
            ((f"call_{n}", user_id, f"obj_gone{n}") for n in range(count)),
        )


def test_jobs_live_sigterm_while_a_job_runs_exits_cleanly_and_the_run_resumes(
    env: dict[str, str], data_dir: Path, live_server_factory: Callable[..., LiveServer]
) -> None:
    owner = create_user(env, "owner@example.com", "--super-admin", "--api-key", "ops")
    secret = cron_secret(env)["cron_secret"]
    count = 200_000
    old_recordings(data_dir, count)
    server = live_server_factory()
    answers: list[int] = []

    def trigger() -> None:
        try:
            answers.append(cron(server, "cleanup-recordings", secret, "POST").status_code)
        except httpx.TransportError:
            answers.append(0)

    caller = threading.Thread(target=trigger)
    caller.start()
    deadline = time.monotonic() + 20
    while True:
        found = runs(server, owner["api_key"])
        if found and found[0]["counts"].get("expired_recordings", 0) > 0:
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.02)
    assert found[0]["outcome"] == "running"
    stopping = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - stopping < 5.0
    caller.join(10)
    assert answers == [503]

    server = live_server_factory()
    interrupted = runs(server, owner["api_key"])[0]
    assert interrupted["outcome"] == "interrupted"
    done_before = interrupted["counts"]["expired_recordings"]
    assert 0 < done_before < count
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        resumed = http.post("/api/cron/cleanup-recordings", headers={"authorization": f"Bearer {secret}"})
    run = resumed.json()["run"]
    assert (run["outcome"], run["resumed_from"]) == ("done", interrupted["id"])
    assert run["counts"]["expired_recordings"] == count
    assert server.stop() == 0
    expired = sqlite3.connect(data_dir / "telentir-box.sqlite3").execute(
        "SELECT COUNT(*) FROM call_recordings WHERE expired_at IS NOT NULL"
    )
    assert expired.fetchone()[0] == count
