"""The packaging in packaging/: the systemd unit's hardening and its agreement with
INSTALL.md, the zipapp built with the exact command INSTALL.md shows and served end to
end, and INSTALL.md's way of running commands with the service's settings."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from telentir_box.config import Config
from telentir_box.crypto.sealing import MASTER_KEY_ENV
from telentir_box.open_files import files_needed
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
INSTALL = PACKAGING / "INSTALL.md"
BUILD_TIMEOUT = 600.0  # the build runs pip, which may fetch every dependency
STARTUP_TIMEOUT = 60.0  # the first run of a zipapp unpacks its dependencies
STOP_TIMEOUT = 10.0
# What a checkout holds that is not source: left out of the copy the build runs in.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "dist", "build", "telentir-data", "__pycache__", ".*_cache", "*.pyz"
)


def read_unit(path: Path) -> configparser.ConfigParser:
    # systemd units are INI-like: keys may repeat (strict=False), values may hold "%"
    # specifiers (no interpolation), and key case matters.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(path, encoding="utf-8")
    return unit


def unit_environment(path: Path) -> dict[str, str]:
    # Environment= repeats, and configparser keeps only the last one.
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.removeprefix("Environment=") for line in lines if line.startswith("Environment=")]
    return dict(pair.split("=", 1) for pair in pairs)


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)


def documented_block(containing: str) -> str:
    """The one ```sh block of INSTALL.md holding `containing`."""
    blocks = [block for block in shell_blocks(INSTALL.read_text()) if containing in block]
    assert len(blocks) == 1, f"INSTALL.md should show exactly one block with {containing!r}"
    return blocks[0]


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


def test_systemd_unit_file_limit_carries_the_default_max_streams() -> None:
    service = read_unit(PACKAGING / "telentir-box.service")["Service"]
    limit = int(service["LimitNOFILE"])  # one number: soft and hard limit alike
    assert limit >= files_needed(Config())
    assert f"LimitNOFILE={limit}" in INSTALL.read_text()


def test_systemd_unit_agrees_with_install_guide() -> None:
    service = read_unit(PACKAGING / "telentir-box.service")["Service"]
    install = INSTALL.read_text()
    environment = unit_environment(PACKAGING / "telentir-box.service")
    executable = Path(service["ExecStart"].split()[0])
    # The guide installs the command where the unit runs it, by either route.
    assert "--global --python /usr/bin/python3 ." in documented_block("pipx install --global")
    assert f"PIPX_BIN_DIR={executable.parent}" in install
    assert f"/usr/local/bin/{executable.name}" in documented_block("install -m 0755 dist/telentir-box.pyz")
    # The sandbox it tells operators to try is the unit's own.
    check = documented_block("systemd-run")
    assert f"-p ProtectHome={service['ProtectHome']}" in check
    assert f"-p DynamicUser={service['DynamicUser']}" in check
    assert str(executable) in check
    # Commands run against the service's data use its data directory and env file.
    data_dir = environment["TELENTIR_BOX_DATA__DIR"]
    env_file = service["EnvironmentFile"].removeprefix("-")
    assert f"sudo TELENTIR_BOX_DATA__DIR={data_dir} telentir-box admin list-users" in install
    function = documented_block("telentir_box() {")
    assert f"TELENTIR_BOX_DATA__DIR={data_dir}" in function
    assert f". {env_file}" in function
    assert environment["SHIV_ROOT"] in install


def test_install_guide_runs_commands_with_the_service_settings(tmp_path: Path) -> None:
    """The shell function INSTALL.md gives, with the unit's paths pointed at temporary
    ones (and without sudo: the tests already run as the data directory's owner), reads
    the env file and reaches the data directory the unit uses."""
    service = read_unit(PACKAGING / "telentir-box.service")["Service"]
    data_dir = tmp_path / "state"
    env_file = tmp_path / "env"
    block = documented_block("telentir_box() {")
    script = block.split("}\n")[0] + "}\n"
    script = script.replace("sudo sh", "sh")
    script = script.replace("/var/lib/telentir-box", str(data_dir))
    script = script.replace(service["EnvironmentFile"].removeprefix("-"), str(env_file))
    # A master key given in the env file only, as an operator may keep it.
    master_key = "A" * 43 + "="
    env_file.write_text(f"TELENTIR_BOX_MASTER_KEY={master_key}\nTELENTIR_BOX_LOG__FORMAT=text\n")
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TELENTIR_BOX_") and key != "PYTHON"
    }
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script + 'telentir_box "$@"', "bash", *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = run("admin", "create-user", "ops@example.com", "--role", "owner")
    assert created.returncode == 0, created.stderr
    listed = run("admin", "list-users")
    assert listed.returncode == 0, listed.stderr
    assert "ops@example.com" in listed.stdout
    doctor = run("doctor")
    assert f"ok       master key      ${MASTER_KEY_ENV} opens" in doctor.stdout, doctor.stdout


@pytest.mark.e2e
def test_zipapp_builds_with_the_documented_command_and_serves(tmp_path: Path) -> None:
    """On a fresh checkout, with only python3: INSTALL.md's command, verbatim."""
    command = documented_block("packaging/build-zipapp.sh").splitlines()[0]
    assert command.split("#")[0].strip() == "packaging/build-zipapp.sh"
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=NOT_SOURCE)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHON", "VIRTUAL_ENV", "PYTHONPATH") and not key.startswith("TELENTIR_BOX_")
    }
    build = subprocess.run(
        ["bash", "-c", command],
        cwd=checkout,
        env=env,
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert build.returncode == 0, build.stderr.decode(errors="replace")[-4000:]
    pyz = checkout / "dist" / "telentir-box.pyz"
    assert pyz.is_file()

    env |= {
        # shiv unpacks into ~/.shiv unless told otherwise; keep the test's footprint in tmp.
        "SHIV_ROOT": str(tmp_path / "shiv"),
        "TELENTIR_BOX_DATA__DIR": str(tmp_path / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
    }
    # INSTALL.md's other way to run it: `python3 telentir-box.pyz ...`, on the python3
    # the build used.
    version = subprocess.run(
        ["python3", str(pyz), "version"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("telentir-box ")

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["python3", str(pyz), "serve", "--port", str(port)],
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
