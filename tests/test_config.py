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


OUT_OF_RANGE = [
    ("SERVER__PORT", "0"),
    ("SERVER__PORT", "65536"),
    ("SERVER__MAX_BODY_BYTES", "0"),
    ("SERVER__SHUTDOWN_TIMEOUT", "0"),
    ("DATA__DIR", " "),
    ("DATABASE__READ_POOL_SIZE", "0"),
    ("DATABASE__READ_POOL_SIZE", "-1"),
    ("DATABASE__BUSY_TIMEOUT_MS", "0"),
    ("DATABASE__MAX_BATCH", "0"),
    *[
        (f"AUTH__{name}", "0")
        for name in (
            "SESSION_TTL_HOURS",
            "REMEMBER_TTL_DAYS",
            "ARGON2_MEMORY_KIB",
            "ARGON2_TIME_COST",
            "ARGON2_PARALLELISM",
            "MAX_ATTEMPTS",
            "LOCKOUT_SECONDS",
            "PHONE_CODE_TTL_SECONDS",
            "PHONE_CODE_ATTEMPTS",
            "PHONE_SENDS_PER_DAY",
            "REGISTRATIONS_PER_IP_PER_HOUR",
            "RESET_TTL_HOURS",
            "INVITE_TTL_DAYS",
        )
    ],
    ("AUTH__PHONE_RESEND_SECONDS", "-1"),
    ("SMTP__PORT", "70000"),
    ("STORE__MAX_OBJECT_BYTES", "0"),
    ("STORE__MAX_METADATA_BYTES", "0"),
    ("STORE__PAGE_SIZE", "0"),
    ("EVENTS__HEARTBEAT_SECONDS", "0"),
    ("EVENTS__RETENTION_DAYS", "0"),
    ("EVENTS__RETENTION_COUNT", "0"),
    ("EVENTS__QUEUE_SIZE", "0"),
    ("EVENTS__MAX_STREAMS_PER_USER", "0"),
    ("EVENTS__MAX_STREAMS", "0"),
    ("CONNECT__TIMEOUT_SECONDS", "0"),
    ("CONNECT__CONNECT_TIMEOUT_SECONDS", "-1"),
    ("BILLING__LEAD_ALLOWANCE", "-1"),
    ("BILLING__LEAD_PRICE_CENTS", "-1"),
    ("BILLING__LEAD_PRICE_CENTS", "0"),
    ("BILLING__TOPUP_CENTS", "10"),
    ("BILLING__WEBHOOK_TOLERANCE_SECONDS", "0"),
    ("BILLING__PAYG_USD_PER_MINUTE", "-1"),
    ("BILLING__CURRENCY", "US Dollars"),
]


@pytest.mark.parametrize(("setting", "value"), OUT_OF_RANGE)
def test_config_refuses_every_setting_out_of_range(setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={f"TELENTIR_BOX_{setting}": value})
    message = str(caught.value)
    assert setting.lower().replace("__", ".") in message.replace("`", "") and "\n" not in message


def test_config_accepts_the_edges_of_each_range() -> None:
    config = load_config(
        environ={
            "TELENTIR_BOX_SERVER__PORT": "65535",
            "TELENTIR_BOX_DATABASE__READ_POOL_SIZE": "1",
            "TELENTIR_BOX_AUTH__PHONE_RESEND_SECONDS": "0",
            "TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": "0",
        }
    )
    assert (config.server.port, config.database.read_pool_size) == (65535, 1)


def test_config_command_line_settings_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_config(environ={}, overrides={"server": {"port": 70000}})
    assert load_config(environ={}, overrides={"server": {"port": 8080}}).server.port == 8080
