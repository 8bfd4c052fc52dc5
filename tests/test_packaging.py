"""The packaging in packaging/: the systemd unit's hardening, and the zipapp that
build-zipapp.sh makes, built and served end to end."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

PACKAGING = Path(__file__).resolve().parent.parent / "packaging"
BUILD_TIMEOUT = 600.0  # shiv runs pip, which may fetch every dependency
STARTUP_TIMEOUT = 60.0  # the first run of a zipapp unpacks its dependencies
STOP_TIMEOUT = 10.0


def read_unit(path: Path) -> configparser.ConfigParser:
    # systemd units are INI-like: keys may repeat (strict=False), values may hold "%"
    # specifiers (no interpolation), and key case matters.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(path, encoding="utf-8")
    return unit


def wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the zipapp exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        try:
            response = httpx.get(url, timeout=2.0, trust_env=False)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"{url} did not answer 200 in {STARTUP_TIMEOUT:.0f} s:\n{log_path.read_text(errors='replace')}"
    )


def test_systemd_unit_is_hardened() -> None:
    unit = read_unit(PACKAGING / "telentir-box.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["serve"]
    assert service["StateDirectory"] == "telentir-box"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["EnvironmentFile"].startswith("-"), "the env file must stay optional"
    assert "MemoryDenyWriteExecute" not in service, "cffi callbacks need W+X memory"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.e2e
def test_zipapp_builds_and_serves(tmp_path: Path) -> None:
    pyz = tmp_path / "out" / "telentir-box.pyz"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        # shiv unpacks into ~/.shiv unless told otherwise; keep the test's footprint in tmp.
        "SHIV_ROOT": str(tmp_path / "shiv"),
        "TELENTIR_BOX_DATA__DIR": str(tmp_path / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
    }
    build = subprocess.run(
        ["bash", str(PACKAGING / "build-zipapp.sh"), str(pyz)],
        cwd=tmp_path,  # the script must not depend on the caller's directory
        env=env,
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert build.returncode == 0, build.stderr.decode(errors="replace")[-4000:]
    assert pyz.is_file()

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(pyz), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            response = wait_healthy(process, f"http://127.0.0.1:{port}/api/health", log_path)
            assert response.json()["status"] == "ok"
            process.send_signal(signal.SIGTERM)
            assert process.wait(STOP_TIMEOUT) == 0, log_path.read_text(errors="replace")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert (tmp_path / "data" / "setup-token").is_file()
