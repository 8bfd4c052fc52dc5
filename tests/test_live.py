"""The real `telentir-box serve` over loopback: start, answer, restart, stop."""

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer

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
