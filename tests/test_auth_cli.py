"""The `telentir-box admin` account commands, run in-process against a data directory
that the app also serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.cli import main
from telentir_box.config import Config
from tests.auth_support import FAST_ENV, call, login, totp_code


@pytest.fixture
def env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    full = {**env, **FAST_ENV}
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    for name, value in full.items():
        monkeypatch.setenv(name, value)
    return full


def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    capsys.readouterr()
    code = main(["admin", *argv])
    out = capsys.readouterr().out.strip()
    return code, json.loads(out) if code == 0 else None


def test_admin_commands_manage_accounts(
    config: Config, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, owner = admin(capsys, "create-user", "boss@example.com", "--role", "owner")
    assert code == 0
    code, member = admin(capsys, "create-user", "m@example.com", "--phone", "+14155550100")
    assert code == 0
    code, users = admin(capsys, "list-users")
    assert {u["email"]: u["phoneVerified"] for u in users} == {
        "boss@example.com": False,
        "m@example.com": False,
    }

    assert admin(capsys, "verify-phone", "m@example.com") == (0, {"status": "ok"})
    assert admin(capsys, "set-role", "m@example.com", "admin") == (0, {"status": "ok"})
    assert admin(capsys, "set-role", "boss@example.com", "member")[0] == 2  # the last owner stays
    assert admin(capsys, "verify-phone", "nobody@example.com")[0] == 2
    _, users = admin(capsys, "list-users")
    by_email = {u["email"]: u for u in users}
    assert by_email["m@example.com"]["phoneVerified"] is True
    assert by_email["m@example.com"]["role"] == "admin"
    assert by_email["boss@example.com"]["role"] == "owner"

    with TestClient(create_app(config)) as client:
        token = login(client, "boss@example.com", owner["password"]).json()["token"]
        secret = call(client, "POST", "/api/auth/2fa/enable", token).json()["secret"]
        call(client, "POST", "/api/auth/2fa/confirm", token, json={"code": totp_code(secret)})
        assert login(client, "boss@example.com", owner["password"]).json()["status"] == "2fa_required"

    assert admin(capsys, "reset-2fa", "boss@example.com") == (0, {"status": "ok"})
    code, revoked = admin(capsys, "revoke-sessions", "boss@example.com")
    assert code == 0
    assert revoked["revoked"] >= 2
    with TestClient(create_app(config)) as client:
        assert call(client, "GET", "/api/auth", token).json()["auth"] is None
        assert login(client, "boss@example.com", owner["password"]).json()["status"] == "phone_not_verified"
    assert member["id"].startswith("usr_")
