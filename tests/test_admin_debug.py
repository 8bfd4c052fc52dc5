"""GET /api/debug/db: the super admin sees the database's health; anyone else, and
everyone when [admin] debug_endpoints is off, gets the 404 of a route that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.db.migrate import available_migrations
from tests.auth_support import FAST_ENV, call, setup_owner
from tests.test_connect_routes import add_user


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    data_dir: Path = tmp_path_factory.mktemp("debug") / "data"
    environ = {**FAST_ENV, "TELENTIR_BOX_DATA__DIR": str(data_dir), "TELENTIR_BOX_LOG__FORMAT": "text"}
    with TestClient(create_app(load_config(environ=environ))) as client:
        tokens = {"super": setup_owner(client, data_dir)}
        for role in ("owner", "admin", "member"):
            tokens[role] = add_user(client, f"team-{role}@example.com", role)["api_key"]
        yield client, tokens


def test_admin_debug_db_reports_the_database_to_the_super_admin(
    app: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = app
    response = call(client, "GET", "/api/debug/db", tokens["super"])
    assert response.status_code == 200, response.text
    report = response.json()
    latest = available_migrations()[-1].version
    assert report["reachable"] is True
    assert report["latency_ms"] >= 0
    assert report["schema_version"] == report["latest_schema_version"] == latest
    assert report["journal_mode"] == "wal"
    assert report["integrity"] == ["ok"]
    assert report["file_bytes"] > 0 and report["page_size"] > 0 and report["page_count"] > 0
    assert report["wal_bytes"] >= 0 and report["freelist_count"] >= 0


@pytest.mark.parametrize("who", ["owner", "admin", "member", "nobody", "forged"])
def test_admin_debug_db_is_not_there_for_anyone_else(
    app: tuple[TestClient, dict[str, str]], who: str
) -> None:
    client, tokens = app
    token = {"nobody": None, "forged": "tbx_" + "a" * 40}.get(who, tokens.get(who))
    response = call(client, "GET", "/api/debug/db", token)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert "integrity" not in response.text


def test_admin_debug_db_switched_off_is_gone(env: dict[str, str], data_dir: Path) -> None:
    environ = {**env, **FAST_ENV, "TELENTIR_BOX_ADMIN__DEBUG_ENDPOINTS": "false"}
    with TestClient(create_app(load_config(environ=environ))) as client:
        token = setup_owner(client, data_dir)
        response = call(client, "GET", "/api/debug/db", token)
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
        assert "/api/debug/db" not in client.get("/api/schema/openapi.json").json()["paths"]


def test_admin_routes_are_in_the_schema(app: tuple[TestClient, dict[str, str]]) -> None:
    paths = app[0].get("/api/schema/openapi.json").json()["paths"]
    assert {"/api/debug/db", "/api/cron/{job}", "/api/jobs/runs", "/api/jobs/preferences"} <= set(paths)
    assert set(paths["/api/cron/{job}"]) == {"get", "post"}
    assert set(paths["/api/jobs/preferences"]) == {"get", "put"}
