"""End to end over the real `telentir-box serve`: a local connector's SSE frames
become objects the client decrypts plus object_created events, and a crash between
reservation and settlement is settled at the next start."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer, replay_events
from tests.connect_fakes import FakeConnector, lead, lead_frames
from tests.store_client import StoreClient

pytestmark = pytest.mark.e2e


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    with FakeConnector() as fake:
        yield fake


def test_connect_live_frames_become_decryptable_objects_and_events(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    connector: FakeConnector,
) -> None:
    count = 40
    server = live_server_factory(
        TELENTIR_BOX_CONNECT__BASE_URL=connector.url, TELENTIR_BOX_BILLING__LEAD_ALLOWANCE=str(count)
    )
    user = user_factory()
    with server.client() as http:
        body = {"repository": "contacts", "path": "/get-leads", "params": {"credits": 500}}
        response = http.post(
            "/api/connect", json=body, headers={"authorization": f"Bearer {user['api_key']}"}
        )
        assert response.status_code == 204, response.text
        assert response.headers["x-telentir-credits-granted"] == str(count)
        client = StoreClient(http, user["api_key"])
        client.connect()
        items = client.all("contacts")
        assert sorted(items, key=lambda item: item["phone"]) == [
            {**lead(n), "id": item["id"]}
            for n, item in enumerate(sorted(items, key=lambda item: item["phone"]))
        ]
        store_id = client.stores["contacts"]["id"]
        events = replay_events(http, user["api_key"], "object_created", f"relatedId={store_id}", count)
    assert {event["id"] for event in events} == {item["id"] for item in items}
    assert all(event["related_object_id"] == store_id for event in events)


def test_connect_live_crash_mid_stream_is_settled_at_next_start(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    connector: FakeConnector,
) -> None:
    connector.frames = lambda params: lead_frames(20)
    connector.stall_after = 3
    env = {"TELENTIR_BOX_CONNECT__BASE_URL": connector.url, "TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": "20"}
    server = live_server_factory(**env)
    user = user_factory()
    headers = {"authorization": f"Bearer {user['api_key']}"}
    body = {"repository": "contacts", "path": "/get-leads", "params": {"credits": 8}}

    def call() -> None:
        with server.client() as http, pytest.raises(httpx.TransportError):
            http.post("/api/connect", json=body, headers=headers, timeout=60)

    caller = threading.Thread(target=call)
    caller.start()
    assert connector.stalled.wait(20)
    with server.client() as http:
        client = StoreClient(http, user["api_key"])
        client.connect()
        deadline = time.monotonic() + 10
        while len(client.call("GET", f"/objects/{client.stores['contacts']['id']}/related")) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        view = client.call("GET", "/credits/ledger")
        assert [(e["kind"], e["amount"]) for e in view["entries"]] == [("reserve", 8)]
    server.kill()
    caller.join(10)
    connector.release.set()

    restarted = live_server_factory(**env)
    with restarted.client() as http:
        deadline = time.monotonic() + 10
        while True:
            view = http.get("/api/credits/ledger", headers=headers).json()
            if len(view["entries"]) > 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    kinds = sorted((e["kind"], e["amount"]) for e in view["entries"])
    assert kinds == [("consume", 3), ("refund", 5), ("reserve", 8)]
    assert view["used"] == 3
