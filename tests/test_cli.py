import stat
from pathlib import Path

import pytest

from telentir_box.cli import build_parser, main


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("TELENTIR_BOX_DATA__DIR", str(data_dir))
    monkeypatch.delenv("TELENTIR_BOX_CONFIG", raising=False)
    return data_dir


def test_cli_init_creates_private_data_dir_and_prints_setup_token_once(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    first = capsys.readouterr().out
    assert "tbs_" in first
    assert stat.S_IMODE(cli_env.stat().st_mode) == 0o700
    assert stat.S_IMODE((cli_env / "master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cli_env / "telentir-box.sqlite3").stat().st_mode) == 0o600
    key_before = (cli_env / "master.key").read_bytes()
    db_before = (cli_env / "telentir-box.sqlite3").read_bytes()

    assert main(["init"]) == 0
    second = capsys.readouterr().out
    assert "nothing changed" in second
    assert "tbs_" not in second
    assert (cli_env / "master.key").read_bytes() == key_before
    assert (cli_env / "telentir-box.sqlite3").read_bytes() == db_before


def test_cli_migrate_and_version(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert "0001_foundation" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("telentir-box ")


def test_cli_check_config_masks_secrets(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELENTIR_BOX_TWILIO__AUTH_TOKEN", "super-secret-token")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "super-secret-token" not in out
    assert '"auth_token": "********"' in out


def test_cli_config_typo_is_one_clear_line(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 3000\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "prot" in err and "Traceback" not in err


def test_cli_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("serve", "init", "migrate", "check-config", "version"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.strip()


def test_cli_version_option_and_every_command_takes_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("telentir-box ")
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    admin = commands.pop("admin")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, parser in [*commands.items(), *admin.items()]:
        assert "--config" in parser._option_string_actions, name


def test_cli_config_file_missing_is_refused_by_every_command(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["init"], ["migrate"], ["admin", "list-users"], ["backup", "x"], ["serve"]):
        assert main([*command, "--config", "/nonexistent.toml"]) == 2
        assert "config file not found: /nonexistent.toml" in capsys.readouterr().err
    assert not cli_env.exists()
