"""[integrations] settings: nested sections from the environment, secrets masked, the
Teams target rule, and an unconfigured provider answered 503 with what to set."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import MASK, ConfigError, load_config, masked
from tests.auth_support import FAST_ENV, bearer


def test_integrations_config_nested_env_and_masking() -> None:
    config = load_config(
        environ={
            "TELENTIR_BOX_INTEGRATIONS__HUBSPOT__CLIENT_ID": "id-1",
            "TELENTIR_BOX_INTEGRATIONS__HUBSPOT__CLIENT_SECRET": "shh",
            "TELENTIR_BOX_INTEGRATIONS__MAX_ATTEMPTS": "3",
        }
    )
    assert config.integrations.hubspot.client_id == "id-1" and config.integrations.max_attempts == 3
    shown = masked(config)["integrations"]["hubspot"]
    assert shown["client_secret"] == MASK and shown["token_url"].startswith("https://")


@pytest.mark.parametrize(
    ("env", "word"),
    [
        ({"TELENTIR_BOX_INTEGRATIONS__MICROSOFT_TEAMS__TEAM_ID": "t"}, "channel_id"),
        ({"TELENTIR_BOX_INTEGRATIONS__MAX_ATTEMPTS": "0"}, "max_attempts"),
        ({"TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE": "-1"}, "requests_per_minute"),
    ],
)
def test_integrations_config_refuses_bad_values(env: dict[str, str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        load_config(environ=env)


def test_integrations_unconfigured_provider_is_503_and_status_says_so(
    env: dict[str, str], user_factory: Callable[..., dict[str, str]]
) -> None:
    env.update(FAST_ENV)
    admin = user_factory(None, "--role", "admin")
    with TestClient(create_app(load_config(environ=env))) as client:
        answer = client.post("/api/integrations/hubspot/connect", headers=bearer(admin["api_key"]))
        assert answer.status_code == 503 and answer.json()["code"] == "INTEGRATION_NOT_CONFIGURED"
        assert "client_id" in answer.json()["message"]
        status = client.get("/api/integrations/status", headers=bearer(admin["api_key"])).json()
        assert [(s["provider"], s["configured"], s["status"]) for s in status["integrations"]] == [
            ("google_calendar", False, "disconnected"),
            ("hubspot", False, "disconnected"),
            ("salesforce", False, "disconnected"),
            ("microsoft_teams", False, "disconnected"),
        ]
