"""Connector paths are the operator's to allow, over the real `telentir-box serve`: a
path not in `[connect] paths` is refused with 400 before the connector is called
(nothing stored, nothing booked), a metered path spends credits, an allowed unmetered
one does not; and the config refuses paths it cannot hold to one spelling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from telentir_box.config import ConfigError, load_config
from tests.conftest import LiveServer, create_user
from tests.connect_fakes import FakeConnector
from tests.store_client import StoreClient

ALLOWANCE = 10


class Box:
    """One real server, a local connector that records every request, and one user."""

    def __init__(self, server: LiveServer, connector: FakeConnector, api_key: str) -> None:
        self.http = server.client()
        self.connector = connector
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.store = StoreClient(self.http, api_key)
        self.store.connect()

    def connect(self, repository: str, path: str, params: dict[str, Any]) -> httpx.Response:
        body = {"repository": repository, "path": path, "params": params}
        return self.http.post("/api/connect", json=body, headers=self.headers)

    def stored(self, repository: str) -> int:
        return len(self.store.all(repository))

    def ledger(self) -> list[dict[str, Any]]:
        view = self.http.get("/api/credits/ledger", headers=self.headers)
        assert view.status_code == 200, view.text
        return view.json()["entries"]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    base = tmp_path_factory.mktemp("connect-paths")
    with FakeConnector() as connector:
        env = {
            "TELENTIR_BOX_DATA__DIR": str(base / "data"),
            "TELENTIR_BOX_LOG__FORMAT": "text",
            "TELENTIR_BOX_CONNECT__BASE_URL": connector.url,
            "TELENTIR_BOX_CONNECT__PATHS": '["/get-leads", "/sync/tasks"]',
            "TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": str(ALLOWANCE),
        }
        server = LiveServer(env=env, log_path=base / "server.log").start()
        try:
            user = create_user(env, "leads@example.com", "--phone-verified", "--api-key", "t")
            box = Box(server, connector, user["api_key"])
            yield box
            box.http.close()
        finally:
            server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path",
    [
        "/get-leads.",
        "/get-leads/x",
        "/leads",
        "/GET-Leads",
        "/get-leads/",
        "/sync/tasks/x",
        "/get-leads?credits=5",
        "/get-leads#x",
        "/",
    ],
)
def test_connect_paths_not_allowed_are_refused_before_the_connector(box: Box, path: str) -> None:
    calls_before = len(box.connector.requests)
    stored_before = box.stored("contacts")
    ledger_before = box.ledger()
    response = box.connect("contacts", path, {"credits": 300})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "/get-leads, /sync/tasks" in response.json()["message"]
    assert len(box.connector.requests) == calls_before
    assert box.stored("contacts") == stored_before
    assert box.ledger() == ledger_before


@pytest.mark.e2e
def test_connect_paths_metered_and_unmetered(box: Box) -> None:
    metered = box.connect("contacts", "/get-leads", {"credits": 3})
    assert metered.status_code == 204, metered.text
    assert metered.headers["x-telentir-credits-granted"] == "3"
    assert box.connector.requests[-1].path == "/get-leads"
    assert sorted((e["kind"], e["amount"]) for e in box.ledger()) == [("consume", 3), ("reserve", 3)]
    assert box.stored("contacts") == 3

    ledger_before = box.ledger()
    unmetered = box.connect("tasks", "/sync/tasks", {"credits": 2})
    assert unmetered.status_code == 204, unmetered.text
    assert "x-telentir-credits-granted" not in unmetered.headers
    assert box.connector.requests[-1].path == "/sync/tasks"
    assert box.stored("tasks") == 2
    assert box.ledger() == ledger_before


@pytest.mark.parametrize(
    ("paths", "metered", "complaint"),
    [
        ('["get-leads"]', '["get-leads"]', "paths entries"),
        ('["/get-leads/"]', "[]", "paths entries"),
        ('["/a/../get-leads"]', "[]", "paths entries"),
        ('["/get%2Dleads"]', "[]", "paths entries"),
        ('["/sync"]', '["/get-leads"]', "metered_paths entry '/get-leads'"),
    ],
)
def test_connect_paths_config_is_strict(data_dir: Path, paths: str, metered: str, complaint: str) -> None:
    environ = {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_CONNECT__PATHS": paths,
        "TELENTIR_BOX_CONNECT__METERED_PATHS": metered,
    }
    with pytest.raises(ConfigError) as raised:
        load_config(environ=environ)
    assert complaint in str(raised.value) and "`connect`" in str(raised.value)


def test_connect_paths_default_is_get_leads_metered(data_dir: Path) -> None:
    connect = load_config(environ={"TELENTIR_BOX_DATA__DIR": str(data_dir)}).connect
    assert (connect.paths, connect.metered_paths) == (["/get-leads"], ["/get-leads"])
