"""The guards over a real app: who gets in, with which error, from server-side state."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import get
from litestar.di import NamedDependency
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.auth.guards import requires_object_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.config import Config
from tests.auth_support import FAST_ENV
from tests.conftest import create_user


@get("/test/objects", guards=[requires_object_auth])
async def object_route(principal: NamedDependency[Principal]) -> dict[str, Any]:
    return {"user_id": principal.user_id, "role": principal.role}


@get("/test/admin", guards=[requires_role("admin")])
async def admin_route() -> dict[str, str]:
    return {"ok": "yes"}


@pytest.fixture
def guarded(config: Config) -> Callable[[], TestClient]:
    def start() -> TestClient:
        return TestClient(create_app(config, extra_routes=[object_route, admin_route]))

    return start


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One data directory for the module: its users are made once (a subprocess each),
    and the tests only read them, each through an app of its own."""
    data_dir = tmp_path_factory.mktemp("guards") / "data"
    return {"TELENTIR_BOX_DATA__DIR": str(data_dir), "TELENTIR_BOX_LOG__FORMAT": "text", **FAST_ENV}


@pytest.fixture(scope="module")
def users(env: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        "verified": create_user(env, "v@example.com", "--phone-verified", "--api-key", "k"),
        "unverified": create_user(env, "u@example.com", "--api-key", "k"),
        "admin": create_user(env, "a@example.com", "--role", "admin", "--phone-verified", "--api-key", "k"),
    }


@pytest.fixture
def app(guarded: Callable[[], TestClient], users: dict[str, dict[str, str]]) -> Iterator[TestClient]:
    with guarded() as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_guards_api_key_acts_as_its_owner(app: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = app.get("/api/test/objects", headers=bearer(users["verified"]["api_key"]))
    assert response.status_code == 200
    assert response.json() == {"user_id": users["verified"]["id"], "role": "member"}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHORIZED"),
        (bearer("tbx_" + "A" * 43), 401, "UNAUTHORIZED"),
        (bearer("not-a-jwt"), 401, "UNAUTHORIZED"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401, "UNAUTHORIZED"),
    ],
)
def test_guards_reject_missing_and_forged_credentials(
    app: TestClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = app.get("/api/test/objects", headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_guards_object_auth_needs_verified_phone(app: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = app.get("/api/test/objects", headers=bearer(users["unverified"]["api_key"]))
    assert response.status_code == 403
    assert response.json()["code"] == "PHONE_VERIFICATION_REQUIRED"


def test_guards_role(app: TestClient, users: dict[str, dict[str, str]]) -> None:
    assert (
        app.get("/api/test/admin", headers=bearer(users["verified"]["api_key"])).json()["code"] == "FORBIDDEN"
    )
    assert app.get("/api/test/admin", headers=bearer(users["admin"]["api_key"])).status_code == 200
