"""The per-credential request budget: charged alike by the Litestar routes and the
object hot path, 429 with Retry-After past it, the remaining budget in headers, and
no charge where no credential is resolved (health check, webhooks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.auth.principal import Principal
from telentir_box.config import load_config
from telentir_box.errors import RateLimited
from telentir_box.web.budget import RequestBudget
from tests.auth_support import FAST_ENV, bearer


def principal(key: str) -> Principal:
    return Principal("usr_x", "member", False, True, False, False, api_key_id=key)


def test_ratelimit_bucket_refills_at_its_rate_and_keeps_credentials_apart() -> None:
    now = [0.0]
    budget = RequestBudget(60, clock=lambda: now[0])
    for _ in range(60):
        budget.spend(principal("a"))
    with pytest.raises(RateLimited) as refused:
        budget.spend(principal("a"))
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    budget.spend(principal("b"))  # another credential has its own budget
    now[0] = 1.0
    budget.spend(principal("a"))  # one second brought one request back
    with pytest.raises(RateLimited):
        budget.spend(principal("a"))


def test_ratelimit_off_charges_nothing() -> None:
    budget = RequestBudget(0)
    for _ in range(1000):
        budget.spend(principal("a"))


def test_ratelimit_routes_and_hot_path_share_one_budget(
    env: dict[str, str], user_factory: Callable[..., dict[str, str]]
) -> None:
    env.update(FAST_ENV)
    user, other = user_factory(), user_factory()
    config = load_config(environ={**env, "TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE": "4"})
    with TestClient(create_app(config)) as client:
        for path in ("/api/objects/obj_00000000000abcdefghijklmnop", "/api/api-keys") * 2:
            answer = client.get(path, headers=bearer(user["api_key"]))
            assert answer.status_code in (200, 404), answer.text
            assert "x-ratelimit-limit" not in answer.headers  # only a refusal says it
        for path in ("/api/objects/obj_00000000000abcdefghijklmnop", "/api/api-keys"):
            refused = client.get(path, headers=bearer(user["api_key"]))
            assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["x-ratelimit-remaining"] == "0"
            assert refused.headers["x-ratelimit-limit"] == "4"
        health = client.get("/api/health", headers=bearer(user["api_key"]))
        assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
        assert client.get("/api/api-keys", headers=bearer(other["api_key"])).status_code == 200
