"""The object hot path (store/hot_path.py): which requests it answers itself and which
it passes on to Litestar untouched, and that both ways answer alike.

Routing is observed by putting an ASGI app that records what reaches it where Litestar's
handler would be, around the real Box of an app started under the test client. The
answers are compared over the whole app: a browser's `Origin` header sends the same
request through the Litestar routes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from litestar.types import Message, Receive, Scope, Send

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.store.hot_path import object_hot_path
from tests.conftest import create_user
from tests.store_client import StoreClient

MAX_BODY = 8192
MAX_OBJECT = 2048


@pytest.fixture(scope="module")
def hot_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir: Path = tmp_path_factory.mktemp("hot") / "data"
    return {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_SERVER__MAX_BODY_BYTES": str(MAX_BODY),
        "TELENTIR_BOX_STORE__MAX_OBJECT_BYTES": str(MAX_OBJECT),
    }


@pytest.fixture(scope="module")
def app(hot_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(environ=hot_env))) as test_client:
        yield test_client


def connected(app: TestClient, env: dict[str, str], email: str, *flags: str) -> StoreClient:
    client = StoreClient(app, create_user(env, email, "--api-key", "k", *flags)["api_key"])
    if "--phone-verified" in flags:
        client.connect()
    return client


@pytest.fixture(scope="module")
def alice(app: TestClient, hot_env: dict[str, str]) -> StoreClient:
    return connected(app, hot_env, "alice@example.com", "--phone-verified")


@pytest.fixture(scope="module")
def bob(app: TestClient, hot_env: dict[str, str]) -> StoreClient:
    return connected(app, hot_env, "bob@example.com", "--phone-verified")


@pytest.fixture(scope="module")
def unverified(app: TestClient, hot_env: dict[str, str]) -> StoreClient:
    return connected(app, hot_env, "unverified@example.com")


def put_body(client: StoreClient, content: bytes = b"\x01" * 64, **changes: Any) -> dict[str, Any]:
    store = client.stores["contacts"]
    body = {
        "keyId": store["defaultKey"],
        "related_object_id": store["id"],
        "content": content.hex(),
        "authTag": secrets.token_bytes(16).hex(),
    }
    return {**body, **changes}


@dataclass
class Exchange:
    """One request driven through the hot path with a recording app behind it."""

    answered: list[Message] = field(default_factory=list)
    passed_on: Scope | None = None
    passed_body: bytes | None = None

    @property
    def status(self) -> int:
        return self.answered[0]["status"]

    @property
    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.answered[1:]))


def drive(
    app: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    *,
    chunks: list[bytes] | None = None,
    disconnect: bool = False,
) -> Exchange:
    exchange = Exchange()

    async def recording_app(scope: Scope, receive: Receive, send: Send) -> None:
        exchange.passed_on = scope
        received = b""
        while True:
            message = await receive()
            received += message.get("body", b"")
            if not message.get("more_body", False):
                break
        exchange.passed_body = received

    pieces = list(chunks if chunks is not None else [body])
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    if disconnect:
        messages = [{**messages[0], "more_body": True}, {"type": "http.disconnect"}]
    messages.append({"type": "http.disconnect"})

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Message) -> None:
        exchange.answered.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "state": {},
    }
    hot_path = object_hot_path(recording_app, lambda: app.app.state.box)
    app.blocking_portal.call(hot_path, scope, receive, send)  # type: ignore[arg-type]
    return exchange


def with_length(headers: dict[str, str], body: bytes) -> dict[str, str]:
    return {**headers, "content-length": str(len(body))}


def test_hot_path_answers_the_common_get_and_put(app: TestClient, alice: StoreClient) -> None:
    body = json.dumps(put_body(alice)).encode()
    created = drive(app, "PUT", "/api/objects", with_length(alice.headers, body), body)
    assert created.passed_on is None
    assert created.status == 201
    assert (b"content-type", b"application/json") in created.answered[0]["headers"]
    record = created.json
    assert record["content"] == put_body(alice)["content"]
    # what it wrote is what the Litestar route reads back
    assert alice.call("GET", f"/objects/{record['id']}") == record

    read = drive(app, "GET", f"/api/objects/{record['id']}", alice.headers)
    assert read.passed_on is None
    assert (read.status, read.json) == (200, record)

    posted = drive(app, "POST", "/api/objects", with_length(alice.headers, body), body)
    assert (posted.passed_on, posted.status) == (None, 201)


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("GET", "/api/objects/{id}", {"origin": "http://localhost:5173"}),  # CORS is Litestar's
        ("PUT", "/api/objects", {"origin": "http://localhost:5173"}),
        ("GET", "/api/objects", {}),  # the listing
        ("GET", "/api/objects/{id}/related", {}),
        ("PATCH", "/api/objects/{id}", {}),
        ("DELETE", "/api/objects/{id}", {}),
        ("HEAD", "/api/objects/{id}", {}),
        ("GET", "/api/objects/not-an-id", {}),
        ("GET", "/api/objects/publish/contacts", {}),
        ("PUT", "/api/objects/", {}),
        ("GET", "/api/objectsX/{id}", {}),
    ],
)
def test_hot_path_passes_on_other_requests(
    app: TestClient, alice: StoreClient, method: str, path: str, extra: dict[str, str]
) -> None:
    body = json.dumps(put_body(alice)).encode()
    target = path.format(id=alice.stores["contacts"]["id"])
    exchange = drive(app, method, target, with_length({**alice.headers, **extra}, body), body)
    assert exchange.answered == []
    assert exchange.passed_on is not None and exchange.passed_on["path"] == target
    assert exchange.passed_body == body


def test_hot_path_passes_on_a_cookie_or_a_body_of_unknown_length(app: TestClient, alice: StoreClient) -> None:
    body = json.dumps(put_body(alice)).encode()
    api_key = alice.headers["authorization"].removeprefix("Bearer ")
    cases = [
        ({"cookie": f"token={api_key}", "content-length": str(len(body))}, [body]),
        (alice.headers, [body[:100], body[100:]]),  # chunked: no content-length
        ({**alice.headers, "content-length": "12x"}, [body]),
    ]
    for headers, chunks in cases:
        exchange = drive(app, "PUT", "/api/objects", headers, chunks=chunks)
        assert exchange.answered == [], headers
        assert exchange.passed_body == body


def test_hot_path_passes_on_an_oversized_body_unread(app: TestClient, alice: StoreClient) -> None:
    body = b"{" + b" " * MAX_BODY + b"}"
    exchange = drive(app, "PUT", "/api/objects", with_length(alice.headers, body), body)
    assert exchange.answered == []
    assert exchange.passed_body == body
    # and Litestar refuses it
    refused = app.put("/api/objects", headers=alice.headers, content=body)
    assert refused.status_code == 413
    assert refused.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b'{"keyId": 5}', b'{"unknown": "field"}', b"[" * 3000 + b"]" * 3000],
    ids=["malformed", "empty", "array", "wrong_type", "unknown_field", "nested"],
)
def test_hot_path_hands_an_undecodable_body_to_litestar_with_the_caller_resolved(
    app: TestClient, alice: StoreClient, body: bytes
) -> None:
    exchange = drive(app, "PUT", "/api/objects", with_length(alice.headers, body), body)
    assert exchange.answered == []
    assert exchange.passed_body == body
    assert exchange.passed_on is not None
    assert exchange.passed_on["state"]["principal"].user_id == alice.create("contacts", {})["user_id"]


def test_hot_path_refuses_like_the_guard_before_reading_the_body(
    app: TestClient, alice: StoreClient, unverified: StoreClient
) -> None:
    object_id = alice.stores["contacts"]["id"]
    body = b"{not json"
    cases = [
        ({"authorization": "Bearer tbx_" + "A" * 43}, 401, "UNAUTHORIZED"),
        ({"authorization": "Bearer not.a.jwt"}, 401, "UNAUTHORIZED"),
        (unverified.headers, 403, "PHONE_VERIFICATION_REQUIRED"),
    ]
    for headers, status, code in cases:
        for method, path in (("GET", f"/api/objects/{object_id}"), ("PUT", "/api/objects")):
            exchange = drive(app, method, path, with_length(headers, body), body)
            assert exchange.passed_on is None, (method, headers)
            assert exchange.status == status
            assert exchange.json["code"] == code
            assert exchange.json["message"] == exchange.json["error"]


def test_hot_path_keeps_users_apart(app: TestClient, alice: StoreClient, bob: StoreClient) -> None:
    mine = alice.create("contacts", {"name": "alice's"})
    stolen = drive(app, "GET", f"/api/objects/{mine['id']}", bob.headers)
    assert (stolen.status, stolen.json["code"]) == (404, "NOT_FOUND")

    # bob writing under alice's key or below alice's store object
    for changes in (
        {"keyId": alice.stores["contacts"]["defaultKey"]},
        {"related_object_id": alice.stores["contacts"]["id"]},
    ):
        body = json.dumps(put_body(bob, **changes)).encode()
        before = alice.call("GET", f"/objects?related_object_id={alice.stores['contacts']['id']}&limit=200")
        refused = drive(app, "PUT", "/api/objects", with_length(bob.headers, body), body)
        assert (refused.status, refused.json["code"]) == (404, "NOT_FOUND")
        after = alice.call("GET", f"/objects?related_object_id={alice.stores['contacts']['id']}&limit=200")
        assert after == before


def test_hot_path_answers_service_errors_in_the_one_format(app: TestClient, alice: StoreClient) -> None:
    cases = [
        (put_body(alice, content=b"\x00" * (MAX_OBJECT + 1)), 413, "PAYLOAD_TOO_LARGE"),
        (put_body(alice, authTag="ab" * 15), 400, "VALIDATION_ERROR"),
        (put_body(alice, content=b"", authTag="zz" * 16), 400, "VALIDATION_ERROR"),
        (put_body(alice, keyId="key_" + "A" * 20), 404, "NOT_FOUND"),
    ]
    for payload, status, code in cases:
        body = json.dumps(payload).encode()
        exchange = drive(app, "PUT", "/api/objects", with_length(alice.headers, body), body)
        assert exchange.passed_on is None
        assert (exchange.status, exchange.json["code"]) == (status, code), payload


def test_hot_path_writes_nothing_for_a_client_that_went_away(app: TestClient, alice: StoreClient) -> None:
    body = json.dumps(put_body(alice)).encode()
    listing = f"/objects?related_object_id={alice.stores['contacts']['id']}&limit=200"
    before = alice.call("GET", listing)
    exchange = drive(app, "PUT", "/api/objects", with_length(alice.headers, body), body, disconnect=True)
    assert exchange.answered == [] and exchange.passed_on is None
    assert alice.call("GET", listing) == before


def test_hot_path_and_litestar_routes_answer_alike(
    app: TestClient, alice: StoreClient, bob: StoreClient
) -> None:
    """The same requests, once through the hot path and once (with an Origin header)
    through the Litestar routes: the same status, body and header names."""
    mine = alice.create("contacts", {"name": "compare"})
    browser = {"origin": "http://localhost:5173"}
    forged = {"authorization": "Bearer tbx_" + "B" * 43}
    requests: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", f"/api/objects/{mine['id']}", alice.headers, None),
        ("GET", f"/api/objects/{mine['id']}", bob.headers, None),
        ("GET", f"/api/objects/{mine['id']}", forged, None),
        ("GET", "/api/objects/obj_" + "C" * 20, alice.headers, None),
        ("PUT", "/api/objects", forged, put_body(alice)),
        ("PUT", "/api/objects", alice.headers, put_body(alice, authTag="ab" * 15)),
        ("PUT", "/api/objects", alice.headers, put_body(alice, content=b"\x00" * (MAX_OBJECT + 1))),
        ("PUT", "/api/objects", alice.headers, put_body(alice, keyId="key_" + "A" * 20)),
        (
            "POST",
            "/api/objects",
            alice.headers,
            {"key_id": "key_" + "A" * 20, "content": "00", "auth_tag": "00" * 16},
        ),
    ]
    for method, path, headers, payload in requests:
        hot = app.request(method, path, headers=headers, json=payload)
        reference = app.request(method, path, headers={**headers, **browser}, json=payload)
        assert hot.status_code == reference.status_code, (method, path, hot.text, reference.text)
        assert hot.json() == reference.json()
        assert set(hot.headers) == set(reference.headers)

    hot = app.put("/api/objects", headers=alice.headers, json=put_body(alice))
    reference = app.put("/api/objects", headers={**alice.headers, **browser}, json=put_body(alice))
    assert hot.status_code == reference.status_code == 201
    assert set(hot.json()) == set(reference.json())
    assert set(hot.headers) == set(reference.headers)
