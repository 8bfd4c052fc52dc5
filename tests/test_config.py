from pathlib import Path

import pytest

from telentir_box.config import MASK, ConfigError, load_config, masked


def test_config_defaults_without_file() -> None:
    config = load_config(environ={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 3000)
    assert config.data_dir == Path("./telentir-data").resolve()
    assert config.database.synchronous == "FULL"


def test_config_reads_toml_and_env_overrides_it(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text('[server]\nport = 4000\nhost = "0.0.0.0"\n[billing]\nlead_allowance = 5\n')
    config = load_config(
        str(path),
        environ={
            "TELENTIR_BOX_SERVER__PORT": "4100",
            "TELENTIR_BOX_SERVER__CORS_ORIGINS": '["http://localhost:5173"]',
            "TELENTIR_BOX_SMTP__STARTTLS": "false",
        },
    )
    assert config.server.port == 4100
    assert config.server.host == "0.0.0.0"
    assert config.server.cors_origins == ["http://localhost:5173"]
    assert config.smtp.starttls is False
    assert config.billing.lead_allowance == 5


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text('[data]\ndir = "/srv/box"\n')
    assert load_config(environ={"TELENTIR_BOX_CONFIG": str(path)}).data.dir == "/srv/box"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[server]\nprot = 1\n", {}, "unknown field `prot`"),
        ("[server]\nport = 'abc'\n", {}, "server.port"),
        ("[nope]\nx = 1\n", {}, "unknown field `nope`"),
        ("[server\n", {}, "not valid TOML"),
        ("", {"TELENTIR_BOX_DATABASE__SYNCHRONOUS": "SOMETIMES"}, "database.synchronous"),
        ("", {"TELENTIR_BOX_SERVER__PORT": "eighty"}, "server.port"),
        ("[server]\ncors_origins = ['*']\n", {}, "cors_origins"),
        ("", {"TELENTIR_BOX_SERVER__CORS_ORIGINS": '["https://app.example.com/path"]'}, "cors_origins"),
        ("[server]\ntrusted_proxies = ['*']\n", {}, "trusted_proxies"),
        ("[server]\ntrusted_proxies = ['proxy.local']\n", {}, "trusted_proxies"),
        ("[server]\nheader_timeout = 0\n", {}, "header_timeout"),
        ("[server]\nmax_header_bytes = 70000\n", {}, "max_header_bytes"),
        ("[server]\nmax_connections = 1000\n", {}, "max_streams must not exceed server.max_connections"),
    ],
)
def test_config_errors_name_the_key_in_one_line(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "box.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), environ=env)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_config_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"), environ={})


def test_config_masked_hides_every_secret() -> None:
    config = load_config(
        environ={
            "TELENTIR_BOX_TWILIO__AUTH_TOKEN": "tw-secret",
            "TELENTIR_BOX_SMTP__PASSWORD": "smtp-secret",
            "TELENTIR_BOX_BILLING__STRIPE_SECRET_KEY": "sk_test_x",
        }
    )
    shown = masked(config)
    assert shown["twilio"]["auth_token"] == MASK
    assert shown["smtp"]["password"] == MASK
    assert shown["billing"]["stripe_secret_key"] == MASK
    assert "sk_test_x" not in repr(shown)
    assert shown["server"]["port"] == 3000


def test_config_example_file_matches_defaults() -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    assert load_config(str(example), environ={}) == load_config(environ={})
