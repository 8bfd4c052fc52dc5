"""The real `telentir-box serve` over loopback: start, answer, restart, stop."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, free_port

pytestmark = pytest.mark.e2e


def test_live_health_errors_and_schema(live_server: LiveServer) -> None:
    with live_server.client() as http:
        health = http.get("/api/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.headers["x-request-id"]
        missing = http.get("/api/nope")
        assert missing.status_code == 404
        assert missing.json()["code"] == "NOT_FOUND"
        assert http.get("/api/schema/openapi.json").json()["openapi"].startswith("3.")


def test_live_sigterm_exits_zero(live_server: LiveServer) -> None:
    # stop() raises if the process is still running after its grace period.
    assert live_server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in live_server.log()


def test_live_sigint_exits_zero(live_server: LiveServer) -> None:
    assert live_server.stop(signal.SIGINT) == 0


def test_live_restart_reuses_data_dir(live_server_factory: Callable[..., LiveServer], data_dir: Path) -> None:
    first = live_server_factory()
    token = (data_dir / "setup-token").read_text()
    key = (data_dir / "master.key").read_bytes()
    assert first.stop() == 0
    second = live_server_factory()
    assert httpx.get(f"{second.base_url}/api/health").json()["database"] == "ok"
    assert (data_dir / "master.key").read_bytes() == key
    assert (data_dir / "setup-token").read_text() == token
    assert "setup token" not in second.log().split("data directory initialised")[-1]


def test_live_one_server_per_data_dir(
    live_server_factory: Callable[..., LiveServer], env: dict[str, str], data_dir: Path
) -> None:
    first = live_server_factory()
    full_env = {**os.environ, **env}

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "telentir_box", *command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=full_env)

    second = run("serve", "--port", str(free_port()))
    migrate = run("migrate")
    assert first.process is not None
    holder = f"telentir-box serve (pid {first.process.pid})"
    for refused in (second, migrate):
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"telentir-box: {data_dir} is in use by {holder}; stop it first"
        ]
    assert httpx.get(f"{first.base_url}/api/health").status_code == 200

    # However the holder ends, even killed, the directory is free again.
    first.kill()
    assert run("migrate").returncode == 0
    assert httpx.get(f"{live_server_factory().base_url}/api/health").status_code == 200


def test_live_config_typo_fails_with_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 3000\n")
    result = subprocess.run(
        [sys.executable, "-m", "telentir_box", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown field `prot`" in lines[0]
