"""POST /api/connect and the credits endpoints over the app (Litestar's test client)
with a real local connector server: storage, clamping, refunds, failures, validation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.auth.accounts import NewUser, create_user
from telentir_box.auth.apikeys import create_api_key
from telentir_box.config import load_config
from tests.connect_fakes import FakeConnector, lead, lead_frames
from tests.store_client import StoreClient

Users = dict[str, dict[str, str]]


def bearer(user: dict[str, str]) -> dict[str, str]:
    return {"authorization": f"Bearer {user['api_key']}"}


def leads_body(credits: Any, **extra: Any) -> dict[str, Any]:
    return {"repository": "contacts", "path": "/get-leads", "params": {"credits": credits, **extra}}


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    with FakeConnector() as fake:
        yield fake


def add_user(app: TestClient, email: str, role: str = "member") -> dict[str, str]:
    """A phone-verified user with an API key, made in-process (a subprocess per user
    would dominate these tests' time)."""
    box = app.app.state.box

    async def make() -> dict[str, str]:
        new = NewUser(email=email, password="correct horse battery", role=role, phone_verified=True)
        user_id = await create_user(box.db, box.passwords, new)
        return {"id": user_id, "api_key": (await create_api_key(box.db, box.authenticator, user_id, "t")).key}

    assert app.blocking_portal is not None
    return app.blocking_portal.call(make)


def team(app: TestClient) -> Users:
    return {
        "member": add_user(app, "member@example.com"),
        "admin": add_user(app, "admin@example.com", "admin"),
    }


@pytest.fixture
def start_app(env: dict[str, str], connector: FakeConnector) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def start(**overrides: str) -> TestClient:
        environ = {
            "TELENTIR_BOX_CONNECT__BASE_URL": connector.url,
            "TELENTIR_BOX_AUTH__ARGON2_MEMORY_KIB": "1024",
            "TELENTIR_BOX_AUTH__ARGON2_TIME_COST": "1",
            **env,
            **overrides,
        }
        client = TestClient(create_app(load_config(environ=environ))).__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def app(start_app: Callable[..., TestClient]) -> TestClient:
    return start_app(TELENTIR_BOX_BILLING__LEAD_ALLOWANCE="10")


@pytest.fixture
def users(app: TestClient) -> Users:
    return team(app)


def ledger(app: TestClient, user: dict[str, str]) -> dict[str, Any]:
    response = app.get("/api/credits/ledger", headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def booked(view: dict[str, Any]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for entry in view["entries"]:
        key = (entry["kind"], entry["source"])
        totals[key] = totals.get(key, 0) + entry["amount"]
    return totals


def test_connect_stores_leads_the_client_can_decrypt(
    app: TestClient, users: Users, connector: FakeConnector
) -> None:
    response = app.post(
        "/api/connect", json=leads_body(4, name="CTO", country=["US"]), headers=bearer(users["member"])
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["x-telentir-credits-granted"] == "4"
    assert response.headers["x-telentir-records-stored"] == "4"
    sent = connector.requests[0]
    assert (sent.method, sent.path) == ("POST", "/get-leads")
    assert sent.json() == {"credits": 4, "name": "CTO", "country": ["US"]}
    client = StoreClient(app, users["member"]["api_key"])
    client.connect()
    assert sorted(client.all("contacts"), key=lambda c: c["phone"]) == [
        {**lead(n), "id": item["id"]}
        for n, item in zip(range(4), sorted(client.all("contacts"), key=lambda c: c["phone"]), strict=True)
    ]
    view = ledger(app, users["member"])
    assert (view["allowance"], view["used"], view["remaining"]) == (10, 4, 6)


def test_connect_clamps_to_allowance_plus_prepaid(
    app: TestClient, users: Users, connector: FakeConnector
) -> None:
    granted = app.post(
        "/api/credits/grants", json={"credits": 3, "note": "trial"}, headers=bearer(users["admin"])
    )
    assert granted.status_code == 201, granted.text
    assert granted.json()["balance"] == 3
    assert app.get("/api/credits", headers=bearer(users["member"])).json() == {
        "amount": 0.3,
        "currency": "usd",
    }
    response = app.post("/api/connect", json=leads_body(50), headers=bearer(users["member"]))
    assert response.status_code == 204
    assert response.headers["x-telentir-credits-granted"] == "13"
    assert connector.requests[0].json() == {"credits": 13}
    view = ledger(app, users["admin"])
    assert (view["used"], view["balance"]) == (10, 0)
    assert booked(view)[("consume", "prepaid")] == 3
    assert app.get("/api/credits", headers=bearer(users["member"])).json() == {
        "amount": 0.0,
        "currency": "usd",
    }


def test_connect_with_nothing_available_never_calls_the_connector(
    start_app: Callable[..., TestClient], connector: FakeConnector
) -> None:
    app = start_app(TELENTIR_BOX_BILLING__LEAD_ALLOWANCE="0")
    users = team(app)
    response = app.post("/api/connect", json=leads_body(5), headers=bearer(users["member"]))
    assert response.status_code == 204
    assert response.headers["x-telentir-credits-granted"] == "0"
    assert response.headers["x-telentir-connector"].startswith("skipped")
    assert connector.requests == []
    assert ledger(app, users["admin"])["entries"] == []


def test_connect_early_end_refunds_unused(app: TestClient, users: Users, connector: FakeConnector) -> None:
    connector.frames = lambda params: lead_frames(2)
    response = app.post("/api/connect", json=leads_body(8), headers=bearer(users["member"]))
    assert response.status_code == 204
    assert response.headers["x-telentir-records-stored"] == "2"
    view = ledger(app, users["member"])
    assert view["used"] == 2
    assert booked(view) == {
        ("reserve", "allowance"): 8,
        ("consume", "allowance"): 2,
        ("refund", "allowance"): 6,
    }


def test_connect_stops_at_the_granted_count(app: TestClient, users: Users, connector: FakeConnector) -> None:
    connector.frames = lambda params: lead_frames(25)
    response = app.post("/api/connect", json=leads_body(25), headers=bearer(users["member"]))
    assert response.headers["x-telentir-credits-granted"] == "10"
    assert response.headers["x-telentir-records-stored"] == "10"
    assert ledger(app, users["member"])["used"] == 10


def test_connect_stream_cut_midway_keeps_records_and_refunds(
    app: TestClient, users: Users, connector: FakeConnector
) -> None:
    admin = users["admin"]
    app.post("/api/credits/grants", json={"credits": 20}, headers=bearer(admin))
    connector.frames = lambda params: lead_frames(30)
    connector.cut_after = 13
    response = app.post("/api/connect", json=leads_body(30), headers=bearer(users["member"]))
    assert response.status_code == 204
    assert response.headers["x-telentir-records-stored"] == "13"
    assert response.headers["x-telentir-connector"] == "interrupted"
    view = ledger(app, admin)
    assert (view["used"], view["balance"]) == (10, 17)
    totals = booked(view)
    assert totals[("reserve", "prepaid")] == totals[("consume", "prepaid")] + totals[("refund", "prepaid")]
    assert view["remaining"] + view["balance"] == 10 + 20 - 13


@pytest.mark.parametrize("failure", ["status", "cut_at_once", "unreachable"])
def test_connect_fails_before_streaming_with_a_clear_error(
    start_app: Callable[..., TestClient], connector: FakeConnector, failure: str
) -> None:
    overrides = {"TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": "10"}
    if failure == "status":
        connector.status = 500
    elif failure == "cut_at_once":
        connector.cut_after = 0
    else:
        overrides["TELENTIR_BOX_CONNECT__BASE_URL"] = "http://127.0.0.1:9"
    app = start_app(**overrides)
    users = team(app)
    response = app.post("/api/connect", json=leads_body(5), headers=bearer(users["member"]))
    assert response.status_code == 502
    assert response.json()["code"] == "UPSTREAM_ERROR"
    view = ledger(app, users["member"])
    assert view["used"] == 0
    assert booked(view) == {("reserve", "allowance"): 5, ("refund", "allowance"): 5}


def test_connect_other_paths_skip_credits_and_bad_frames(
    start_app: Callable[..., TestClient], connector: FakeConnector
) -> None:
    app = start_app(TELENTIR_BOX_CONNECT__PATHS='["/get-leads", "/sync/tasks"]')
    users = team(app)
    frames = [
        b": keep-alive\n\n",
        b'data: {"title": "one"}\r\n\r\n',
        b"data: [1, 2]\n\n",
        b"data: not json\n\n",
        b'event: task\ndata: {"title":\ndata:  "two"}\n\n',
        b"data: 42\n\n",
    ]
    connector.frames = lambda params: frames
    response = app.post(
        "/api/connect",
        json={"repository": "tasks", "path": "/sync/tasks", "params": {}},
        headers=bearer(users["member"]),
    )
    assert response.status_code == 204, response.text
    assert "x-telentir-credits-granted" not in response.headers
    assert (response.headers["x-telentir-records-stored"], response.headers["x-telentir-frames-skipped"]) == (
        "2",
        "3",
    )
    client = StoreClient(app, users["member"]["api_key"])
    client.connect()
    assert sorted(item["title"] for item in client.all("tasks")) == ["one", "two"]
    assert ledger(app, users["member"])["entries"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"repository": "secrets", "path": "/get-leads", "params": {"credits": 1}}, "repository"),
        ({"repository": "contacts", "path": "get-leads", "params": {}}, "path"),
        ({"repository": "contacts", "path": "/../admin", "params": {}}, "path"),
        # Other spellings of /get-leads that an HTTP client or router would resolve to it.
        *(
            ({"repository": "contacts", "path": path, "params": {"credits": 5000}}, "path")
            for path in (
                "/./get-leads",
                "/get-leads/.",
                "/get-leads/",
                "//get-leads",
                "/get%2Dleads",
                "/x/../get-leads",
                "/GET-Leads",
            )
        ),
        ({"repository": "contacts", "path": "/.hidden", "params": {}}, "path"),
        (leads_body("ten"), "credits"),
        (leads_body(-1), "credits"),
        (leads_body(True), "credits"),
        ({"repository": "contacts", "path": "/get-leads"}, "credits"),
        ({**leads_body(1), "extra": 1}, "extra"),
        ({"repository": "contacts", "path": "/x", "params": [1]}, "params"),
    ],
)
def test_connect_rejects_malformed_bodies(
    app: TestClient, users: Users, connector: FakeConnector, body: dict[str, Any], field: str
) -> None:
    response = app.post("/api/connect", json=body, headers=bearer(users["member"]))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert field in response.json()["message"]
    assert connector.requests == []


def test_connect_rejects_oversized_and_unauthenticated(
    app: TestClient, users: Users, connector: FakeConnector
) -> None:
    huge = leads_body(1, name="x" * 2_000_000)
    assert app.post("/api/connect", json=huge, headers=bearer(users["member"])).status_code == 413
    assert app.post("/api/connect", json=leads_body(1)).json()["code"] == "UNAUTHORIZED"
    forged = {"authorization": "Bearer tbx_" + "A" * 43}
    assert app.post("/api/connect", json=leads_body(1), headers=forged).status_code == 401
    assert app.get("/api/credits", headers=forged).status_code == 401
    assert app.get("/api/credits/ledger").status_code == 401
    assert connector.requests == []


def test_credits_ledger_shows_members_only_their_own_entries(
    app: TestClient, users: Users, connector: FakeConnector
) -> None:
    app.post("/api/connect", json=leads_body(2), headers=bearer(users["member"]))
    other = add_user(app, "other@example.com")
    view = ledger(app, other)
    assert view["entries"] == []
    assert view["used"] == 2  # the allowance is the team's
    assert {e["user_id"] for e in ledger(app, users["admin"])["entries"]} == {users["member"]["id"]}


def test_credits_grants_need_admin_and_valid_input(app: TestClient, users: Users) -> None:
    grant = {"credits": 5}
    assert app.post("/api/credits/grants", json=grant, headers=bearer(users["member"])).status_code == 403
    assert app.post("/api/credits/grants", json=grant).status_code == 401
    for bad in (
        {"credits": 0},
        {"credits": 1.5},
        {"credits": 5, "who": "me"},
        {"credits": 5, "note": "n" * 201},
    ):
        response = app.post("/api/credits/grants", json=bad, headers=bearer(users["admin"]))
        assert response.status_code == 400, bad
        assert response.json()["code"] == "VALIDATION_ERROR"
    response = app.post("/api/credits/grants", content=b"{not json", headers=bearer(users["admin"]))
    assert response.status_code == 400
    assert ledger(app, users["admin"])["balance"] == 0
    assert json.loads(app.get("/api/credits", headers=bearer(users["admin"])).content) == {
        "amount": 0.0,
        "currency": "usd",
    }
