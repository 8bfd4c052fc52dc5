"""README.md's "First API key" runs as written against the real server: the one
command, and the requests from setup to an object read back (the phone code read from
the server's log, as the README says)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parent.parent / "README.md"
CODE_IN_LOG = "grep -o 'verification code is [0-9]*' {log} | tail -1 | grep -o '[0-9]*$'"


def first_api_key_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## First API key") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_readme_one_command_path(env: dict[str, str]) -> None:
    command = first_api_key_blocks()[0].strip().replace(".venv/bin/telentir-box", "")
    result = subprocess.run(
        [sys.executable, "-m", "telentir_box", *command.split()],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    )
    assert set(json.loads(result.stdout)) == {"id", "password", "api_key"}


def test_readme_requests_reach_an_object_read_back(
    live_server_factory: Callable[..., LiveServer], data_dir: Path, tmp_path: Path
) -> None:
    server = live_server_factory(TELENTIR_BOX_LOG__FORMAT="json")
    script = first_api_key_blocks()[1].replace("http://127.0.0.1:3000", server.base_url)
    # The one step a person does by hand: copy the code from the log.
    code = CODE_IN_LOG.format(log=server.log_path)
    script = script.replace(""" -d '{"code": "123456"}'""", f''' -d "{{\\"code\\": \\"$({code})\\"}}"''')
    assert f"$({code})" in script
    workdir = tmp_path / "readme"
    workdir.mkdir()
    (workdir / "telentir-data").symlink_to(data_dir)  # the README runs beside ./telentir-data
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"content":"8f3a5c"' in result.stdout, result.stdout
    assert '"auth_tag":"00112233445566778899aabbccddeeff"' in result.stdout
    assert '"status":"sent"' in result.stdout and '"status":"ok"' in result.stdout
