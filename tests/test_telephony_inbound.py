"""End to end over the real `telentir-box serve`: inbound configurations (create, list,
get, replace, patch, delete) in the client's shapes, attaching and detaching numbers (a
number answers for at most one configuration), users kept apart, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.telephony_support import (
    Caller,
    FakeTwilio,
    agent,
    assert_error,
    box_env,
    configuration_body,
    running_box,
)

pytestmark = pytest.mark.e2e

CONFIGURATION_KEYS = {
    "id",
    "user_id",
    "name",
    "description",
    "knowledge_base_id",
    "metadata",
    "agent",
    "humanAgents",
    "source",
    "created_at",
    "updated_at",
}
PATHWAY = {
    "type": "pathway",
    "pathway": {"id": "obj_pathway", "name": "Triage", "nodes": [{"id": "n1", "data": {}}], "edges": []},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("inbound")
    with FakeTwilio() as twilio, running_box(box_env(root / "data", twilio), root / "server.log") as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def alice(http: httpx.Client, server: LiveServer) -> Caller:
    return Caller.new(http, server.env, "alice@example.com")


@pytest.fixture(scope="module")
def bob(http: httpx.Client, server: LiveServer) -> Caller:
    return Caller.new(http, server.env, "bob@example.com")


def attach(caller: Caller, config_id: str, number_id: str, action: str = "attach") -> httpx.Response:
    body = {"action": action, "phone_number_id": number_id}
    return caller.request("POST", f"/inbound-configurations/{config_id}", json=body)


def test_inbound_create_get_list_in_the_client_shape(alice: Caller) -> None:
    human = agent("human", relations={"contact": "obj_1"})
    created = alice.ok("PUT", "/inbound-configurations", json=configuration_body(humanAgents=[human]))
    assert set(created) == CONFIGURATION_KEYS
    assert created["user_id"] == alice.user_id
    assert created["description"] is None and created["knowledge_base_id"] is None
    assert created["metadata"] == {}
    assert created["agent"] == configuration_body()["agent"] | {"id": created["agent"]["id"]}
    assert created["humanAgents"] == [human]
    assert created["source"] == {"type": "prompt", "prompt": {"text": "Greet the caller and take a message."}}

    body = configuration_body(name="Triage", source=PATHWAY, description="After hours")
    del body["humanAgents"]
    pathway = alice.ok("PUT", "/inbound-configurations", json=body)
    assert pathway["humanAgents"] == [] and pathway["source"] == PATHWAY
    assert alice.ok("GET", f"/inbound-configurations/{pathway['id']}") == pathway
    listed = alice.ok("GET", "/inbound-configurations")
    assert [c["id"] for c in listed][-2:] == [created["id"], pathway["id"]]


def test_inbound_refuses_an_unknown_knowledge_base(alice: Caller) -> None:
    before = alice.ok("GET", "/inbound-configurations")
    body = configuration_body(knowledge_base_id="kb_unknown")
    assert_error(alice.request("PUT", "/inbound-configurations", json=body), 404, "NOT_FOUND")
    created = alice.ok("PUT", "/inbound-configurations", json=configuration_body())
    path = f"/inbound-configurations/{created['id']}"
    assert_error(alice.request("PATCH", path, json={"knowledge_base_id": "kb_unknown"}), 404, "NOT_FOUND")
    assert alice.ok("GET", path) == created
    assert len(alice.ok("GET", "/inbound-configurations")) == len(before) + 1


def test_inbound_replace_sets_every_field(alice: Caller) -> None:
    created = alice.ok("PUT", "/inbound-configurations", json=configuration_body(description="x"))
    path = f"/inbound-configurations/{created['id']}"
    replacement = configuration_body(name="Renamed", agent=agent("human"), source=PATHWAY)
    replaced = alice.ok("PUT", path, json=replacement)
    assert replaced["name"] == "Renamed" and replaced["description"] is None
    assert replaced["agent"]["type"] == "human" and replaced["source"] == PATHWAY
    assert replaced["created_at"] == created["created_at"]
    missing_name = {k: v for k, v in replacement.items() if k != "name"}
    assert_error(alice.request("PUT", path, json=missing_name), 400, "VALIDATION_ERROR")
    assert alice.ok("GET", path) == replaced


def test_inbound_patch_sets_the_fields_present(alice: Caller) -> None:
    created = alice.ok(
        "PUT",
        "/inbound-configurations",
        json=configuration_body(description="Day", humanAgents=[agent("human")]),
    )
    path = f"/inbound-configurations/{created['id']}"
    patched = alice.ok("PATCH", path, json={"description": None, "knowledge_base_id": None})
    assert patched["description"] is None and patched["knowledge_base_id"] is None
    assert (patched["name"], patched["agent"], patched["humanAgents"]) == (
        created["name"],
        created["agent"],
        created["humanAgents"],
    )
    # The client sends humanAgents as [] when the caller gives it as null or leaves it out.
    renamed = alice.ok("PATCH", path, json={"name": "Night", "humanAgents": []})
    assert renamed["name"] == "Night" and renamed["humanAgents"] == []
    assert alice.ok("PATCH", path, json={"humanAgents": None})["humanAgents"] == []
    new_source = alice.ok("PATCH", path, json={"source": PATHWAY})
    assert new_source["source"] == PATHWAY and new_source["name"] == "Night"

    for bad in ({}, {"name": None}, {"agent": None}, {"source": None}, {"colour": "red"}, {"name": ""}):
        assert_error(alice.request("PATCH", path, json=bad), 400, "VALIDATION_ERROR")
    assert alice.ok("GET", path) == new_source


def test_inbound_attach_and_detach_numbers(alice: Caller, bob: Caller) -> None:
    number_id = alice.buy()
    first = alice.ok("PUT", "/inbound-configurations", json=configuration_body(name="First"))["id"]
    second = alice.ok("PUT", "/inbound-configurations", json=configuration_body(name="Second"))["id"]

    attached = attach(alice, first, number_id)
    assert attached.status_code == 200
    assert attached.json()["ok"] is True
    assert attached.json()["phone_number"]["id"] == number_id
    assert attached.json()["phone_number"]["inbound_configuration_id"] == first
    assert attach(alice, first, number_id).json()["phone_number"]["inbound_configuration_id"] == first

    # A number answers for at most one configuration: detach it first.
    assert_error(attach(alice, second, number_id), 409, "CONFLICT")
    assert_error(attach(alice, second, number_id, "detach"), 409, "CONFLICT")
    assert alice.ok("GET", f"/phone-numbers/{number_id}")["inbound_configuration_id"] == first
    detached = attach(alice, first, number_id, "detach").json()
    assert detached == {"ok": True, "phone_number": detached["phone_number"]}
    assert detached["phone_number"]["inbound_configuration_id"] is None
    assert attach(alice, second, number_id).json()["phone_number"]["inbound_configuration_id"] == second

    bobs_number = bob.buy("GB", "mobile")
    bobs_config = bob.ok("PUT", "/inbound-configurations", json=configuration_body())["id"]
    assert_error(attach(alice, first, bobs_number), 404, "NOT_FOUND")
    assert_error(attach(alice, bobs_config, number_id), 404, "NOT_FOUND")
    assert_error(attach(alice, first, "num_doesnotexist000000"), 404, "NOT_FOUND")
    assert bob.ok("GET", f"/phone-numbers/{bobs_number}")["inbound_configuration_id"] is None

    for bad in (
        {"action": "move", "phone_number_id": number_id},
        {"action": "attach"},
        {"action": "attach", "phone_number_id": number_id, "extra": True},
        {"action": "attach", "phone_number_id": 7},
    ):
        response = alice.request("POST", f"/inbound-configurations/{first}", json=bad)
        assert_error(response, 400, "VALIDATION_ERROR")
    assert alice.ok("GET", f"/phone-numbers/{number_id}")["inbound_configuration_id"] == second


def test_inbound_delete_detaches_its_numbers(alice: Caller) -> None:
    number_id = alice.buy("GB", "local")
    config_id = alice.ok("PUT", "/inbound-configurations", json=configuration_body())["id"]
    assert attach(alice, config_id, number_id).status_code == 200
    assert alice.request("DELETE", f"/inbound-configurations/{config_id}").status_code == 204
    assert alice.ok("GET", f"/phone-numbers/{number_id}")["inbound_configuration_id"] is None
    assert_error(alice.request("GET", f"/inbound-configurations/{config_id}"), 404, "NOT_FOUND")
    assert_error(alice.request("DELETE", f"/inbound-configurations/{config_id}"), 404, "NOT_FOUND")


def test_inbound_another_users_configuration_is_not_found(alice: Caller, bob: Caller) -> None:
    created = alice.ok("PUT", "/inbound-configurations", json=configuration_body())
    path = f"/inbound-configurations/{created['id']}"
    for method, body in (
        ("GET", None),
        ("PUT", configuration_body(name="Taken")),
        ("PATCH", {"name": "Taken"}),
        ("DELETE", None),
    ):
        assert_error(bob.request(method, path, json=body), 404, "NOT_FOUND")
    assert created["id"] not in [c["id"] for c in bob.ok("GET", "/inbound-configurations")]
    assert alice.ok("GET", path) == created


def test_inbound_refuses_callers_without_credentials(http: httpx.Client) -> None:
    for method, path in (
        ("GET", "/api/inbound-configurations"),
        ("PUT", "/api/inbound-configurations"),
        ("GET", "/api/inbound-configurations/inb_x"),
        ("PUT", "/api/inbound-configurations/inb_x"),
        ("PATCH", "/api/inbound-configurations/inb_x"),
        ("POST", "/api/inbound-configurations/inb_x"),
        ("DELETE", "/api/inbound-configurations/inb_x"),
    ):
        body = {} if method in ("PUT", "PATCH", "POST") else None
        assert_error(http.request(method, path, json=body), 401, "UNAUTHORIZED")


def test_inbound_refuses_malformed_and_oversized_bodies(alice: Caller) -> None:
    before = alice.ok("GET", "/inbound-configurations")
    headers = {"content-type": "application/json"}
    bad_bodies: list[Any] = [
        configuration_body(agent=agent(type="robot")),
        configuration_body(agent={**agent(), "colour": "red"}),
        configuration_body(source={"type": "prompt", "prompt": {"text": ""}}),
        configuration_body(source={"type": "script"}),
        configuration_body(humanAgents=[agent("human")] * 51),
        configuration_body(name=5),
        configuration_body(extra=True),
        [],
    ]
    for body in bad_bodies:
        assert_error(alice.request("PUT", "/inbound-configurations", json=body), 400, "VALIDATION_ERROR")
    malformed = alice.request("PUT", "/inbound-configurations", content=b'{"name": ', headers=headers)
    assert_error(malformed, 400, "VALIDATION_ERROR")
    huge = configuration_body(source={"type": "prompt", "prompt": {"text": "x" * 2_000_000}})
    one = "/inbound-configurations/inb_doesnotexist000000"
    for method, path in (("PUT", "/inbound-configurations"), ("PUT", one), ("PATCH", one), ("POST", one)):
        assert_error(alice.request(method, path, json=huge), 413, "PAYLOAD_TOO_LARGE")
    assert alice.ok("GET", "/inbound-configurations") == before
