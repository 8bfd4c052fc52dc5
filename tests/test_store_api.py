"""The object store over the app in-process: documented base64 forms, validation,
isolation between users, cascades, listing and the events each mutation records."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.conftest import create_user
from tests.store_client import OAEP, StoreClient


@pytest.fixture(scope="module")
def store_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir: Path = tmp_path_factory.mktemp("store") / "data"
    return {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_STORE__MAX_OBJECT_BYTES": "4096",
    }


@pytest.fixture(scope="module")
def app(store_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(environ=store_env))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def alice(app: TestClient, store_env: dict[str, str]) -> StoreClient:
    client = StoreClient(
        app, create_user(store_env, "alice@example.com", "--phone-verified", "--api-key", "k")["api_key"]
    )
    client.connect()
    return client


@pytest.fixture(scope="module")
def mallory(app: TestClient, store_env: dict[str, str]) -> StoreClient:
    client = StoreClient(
        app, create_user(store_env, "mallory@example.com", "--phone-verified", "--api-key", "k")["api_key"]
    )
    client.connect()
    return client


def raw(client: StoreClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = client.http.request(method, "/api" + path, json=body, headers=client.headers)
    return response.status_code, (response.json() if response.content else None)


def events(app: TestClient, user_client: StoreClient) -> list[tuple[str, dict[str, Any]]]:
    box = app.app.state.box
    user_id = user_client.call("GET", f"/keys/{user_client.stores['contacts']['defaultKey']}")["user_id"]

    async def read() -> list[tuple[str, dict[str, Any]]]:
        async with box.db.reading() as conn:
            rows = await conn.execute_fetchall(
                "SELECT type, data FROM events WHERE user_id = ? ORDER BY id", (user_id,)
            )
        return [(r["type"], msgspec.json.decode(r["data"])) for r in rows]

    return app.blocking_portal.call(read)


def contact_body(client: StoreClient, value: Any = None) -> dict[str, Any]:
    entry = client.stores["contacts"]
    content, tag = client.seal(*client.key(entry["defaultKey"]), value or {"name": "x"})
    return {
        "keyId": entry["defaultKey"],
        "content": content,
        "authTag": tag,
        "related_object_id": entry["id"],
    }


def test_store_documented_base64_forms(alice: StoreClient) -> None:
    store = alice.stores["contacts"]
    status, key_id = raw(alice, "PUT", "/keys", {"server": "default"})
    assert status == 201 and isinstance(key_id, str)
    aes, iv = alice.key(key_id)
    assert len(aes) == 32 and len(iv) == 12
    out = AESGCM(aes).encrypt(iv, b'{"name":"b64"}', None)
    body = {
        "keyId": key_id,
        "content": base64.b64encode(out[:-16]).decode(),
        "authTag": base64.b64encode(out[-16:]).decode(),
        "relatedId": store["id"],
    }
    status, record = raw(alice, "PUT", "/objects", body)
    assert status == 201, record
    assert record["content"] == out[:-16].hex() and record["related_object_id"] == store["id"]
    assert alice.get("contacts", record["id"]) == {"name": "b64"}

    own_key, own_iv = secrets.token_bytes(32), secrets.token_bytes(12)
    body = {
        "server": "default",
        "key": base64.b64encode(own_key).decode(),
        "iv": base64.b64encode(own_iv).decode(),
    }
    status, key_id = raw(alice, "PUT", "/keys", body)
    assert status == 201 and alice.key(key_id) == (own_key, own_iv)


def test_store_key_record_shape_and_lifecycle(app: TestClient, alice: StoreClient) -> None:
    wrapped = alice.remote[alice.current].encrypt(secrets.token_bytes(32), OAEP)
    status, key = raw(
        alice, "POST", "/keys", {"server": "BOX", "key": wrapped.hex(), "iv": "00" * 12, "metadata": {"a": 1}}
    )
    assert status == 201
    assert set(key) == {
        "id",
        "metadata",
        "created_at",
        "updated_at",
        "user_id",
        "server",
        "key",
        "iv",
        "deprecated",
    }
    assert key["server"] == "box" and key["metadata"] == {"a": 1} and key["key"] == wrapped.hex()
    status, patched = raw(alice, "PATCH", f"/keys/{key['id']}", {"metadata": {"b": 2}})
    assert status == 200 and patched["metadata"] == {"b": 2} and patched["key"] == wrapped.hex()
    assert raw(alice, "DELETE", f"/keys/{key['id']}") == (204, None)
    assert raw(alice, "GET", f"/keys/{key['id']}")[0] == 404
    kinds = [(t, p["key_id"]) for t, p in events(app, alice) if t.startswith("key_")]
    assert ("key_created", key["id"]) in kinds and ("key_deleted", key["id"]) in kinds
    status, body = raw(alice, "DELETE", f"/keys/{alice.stores['contacts']['defaultKey']}")
    assert (status, body["code"]) == (409, "CONFLICT")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"content": "abc"}, 400, "VALIDATION_ERROR"),
        ({"content": "zz"}, 400, "VALIDATION_ERROR"),
        ({"authTag": "00" * 15}, 400, "VALIDATION_ERROR"),
        ({"authTag": "g" * 32}, 400, "VALIDATION_ERROR"),
        ({"authTag": "!" * 24}, 400, "VALIDATION_ERROR"),
        ({"keyId": "key_" + "A" * 22}, 404, "NOT_FOUND"),
        ({"keyId": "../etc"}, 404, "NOT_FOUND"),
        ({"related_object_id": "obj_" + "A" * 22}, 404, "NOT_FOUND"),
        ({"content": "00" * 4097}, 413, "PAYLOAD_TOO_LARGE"),
        ({"key_id": "key_" + "B" * 22}, 400, "VALIDATION_ERROR"),
        ({"extra": 1}, 400, "VALIDATION_ERROR"),
    ],
)
def test_store_object_create_rejects_bad_input(
    alice: StoreClient, change: dict[str, Any], status: int, code: str
) -> None:
    before = alice.call("GET", f"/objects/{alice.stores['contacts']['id']}/related")
    got, body = raw(alice, "PUT", "/objects", {**contact_body(alice), **change})
    assert (got, body["code"]) == (status, code), body
    assert set(body) == {"error", "code", "message"}
    assert alice.call("GET", f"/objects/{alice.stores['contacts']['id']}/related") == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"server": "default", "key": "00" * 256, "iv": "00" * 11}, "VALIDATION_ERROR"),
        ({"server": "default", "key": "0" * 511, "iv": "00" * 12}, "VALIDATION_ERROR"),
        ({"server": "default", "key": "00" * 100, "iv": "00" * 12}, "VALIDATION_ERROR"),
        ({"server": "nope", "key": "00" * 256, "iv": "00" * 12}, "NOT_FOUND"),
    ],
)
def test_store_key_create_rejects_bad_input(alice: StoreClient, body: dict[str, Any], code: str) -> None:
    status, answer = raw(alice, "POST", "/keys", body)
    assert answer["code"] == code and status in (400, 404)


def test_store_key_mint_rejects_bad_base64(alice: StoreClient) -> None:
    assert (
        raw(alice, "PUT", "/keys", {"server": "default", "iv": "AAAA*AAAAAAAAAAA"})[1]["code"]
        == "VALIDATION_ERROR"
    )
    assert raw(alice, "PUT", "/keys", {"server": "default", "key": "QUJD"})[1]["code"] == "VALIDATION_ERROR"


def test_store_second_user_sees_nothing(alice: StoreClient, mallory: StoreClient) -> None:
    item = alice.create("contacts", {"name": "secret"})
    key_id = alice.stores["contacts"]["defaultKey"]
    for method, path, body in [
        ("GET", f"/objects/{item['id']}", None),
        ("GET", f"/objects/{item['id']}/related", None),
        ("PATCH", f"/objects/{item['id']}", {"metadata": {"x": 1}}),
        ("DELETE", f"/objects/{item['id']}", None),
        ("GET", f"/keys/{key_id}", None),
        ("PATCH", f"/keys/{key_id}", {"metadata": {}}),
        ("DELETE", f"/keys/{key_id}", None),
        ("PUT", "/objects", {**contact_body(mallory), "keyId": key_id}),
        ("PUT", "/objects", {**contact_body(mallory), "related_object_id": item["id"]}),
        ("PATCH", f"/objects/{mallory.create('contacts', {})['id']}", {"related_object_id": item["id"]}),
        ("PUT", f"/objects/publish/contacts/{item['id']}", {"objectId": item["id"]}),
    ]:
        status, answer = raw(mallory, method, path, body)
        assert (status, answer["code"]) == (404, "NOT_FOUND"), (method, path)
    assert mallory.call("GET", f"/objects?related_object_id={alice.stores['contacts']['id']}")["items"] == []
    assert mallory.call("GET", f"/objects?key_id={key_id}")["items"] == []
    assert alice.get("contacts", item["id"]) == {"name": "secret"}


@pytest.mark.parametrize(
    "path", ["/server", "/root", "/servers", "/keys/key_AAAAAAAAAAAAAAAAAAAA", "/objects"]
)
@pytest.mark.parametrize("token", [None, "tbx_" + "A" * 43, "forged.jwt.value"])
def test_store_requires_credentials(app: TestClient, path: str, token: str | None) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = app.get("/api" + path, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED")


def test_store_delete_cascades_with_events(app: TestClient, alice: StoreClient) -> None:
    parent = alice.create("campaigns", {"name": "p"})
    copy_id = alice.publish("campaigns", parent["id"])
    entry = alice.stores["campaigns"]
    content, tag = alice.seal(*alice.key(entry["defaultKey"]), {"log": 1})
    child = alice.call(
        "POST",
        "/objects",
        {
            "key_id": entry["defaultKey"],
            "related_object_id": copy_id,
            "content": content,
            "auth_tag": tag,
            "metadata": {},
        },
    )
    assert [r["id"] for r in alice.call("GET", f"/objects/{parent['id']}/related")] == [copy_id]
    assert alice.call("GET", "/objects/publish/campaigns")["items"][-1]["related_id"] == parent["id"]
    alice.call("DELETE", f"/objects/{parent['id']}")
    for gone in (parent["id"], copy_id, child["id"]):
        assert raw(alice, "GET", f"/objects/{gone}")[0] == 404
    assert all(
        p["related_id"] != parent["id"] for p in alice.call("GET", "/objects/publish/campaigns")["items"]
    )
    deleted = {p["object_id"] for t, p in events(app, alice) if t == "object_deleted"}
    assert {parent["id"], copy_id, child["id"]} <= deleted
    assert any(t == "unpublish" and p["related_id"] == parent["id"] for t, p in events(app, alice))
    status, answer = raw(alice, "DELETE", f"/objects/{entry['id']}")
    assert (status, answer["code"]) == (409, "CONFLICT")


def test_store_publish_unpublish_and_bad_type(app: TestClient, alice: StoreClient) -> None:
    item = alice.create("campaigns", {"name": "q"})
    copy_id = alice.publish("campaigns", item["id"])
    seen = [p for t, p in events(app, alice) if t == "publish" and p["related_id"] == item["id"]]
    assert seen and set(seen[0]) == {"user_id", "type", "related_id", "object_id", "timestamp"}
    assert seen[0]["object_id"] == copy_id
    status, answer = raw(alice, "PUT", f"/objects/publish/bogus/{item['id']}", {"objectId": copy_id})
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")
    # A copy under the user's own key is not readable by the box: refused.
    status, answer = raw(alice, "PUT", f"/objects/publish/campaigns/{item['id']}", {"objectId": item["id"]})
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")
    assert raw(alice, "DELETE", f"/objects/publish/campaigns/{item['id']}") == (204, None)
    assert raw(alice, "DELETE", f"/objects/publish/campaigns/{item['id']}")[0] == 404
    assert any(t == "unpublish" and p["related_id"] == item["id"] for t, p in events(app, alice))


def test_store_patch_keeps_absent_fields_and_refuses_cycles(alice: StoreClient) -> None:
    item = alice.create("tasks", {"title": "t"})
    patched = alice.call("PATCH", f"/objects/{item['id']}", {"metadata": {"m": 1}})
    assert patched["content"] == item["content"] and patched["metadata"] == {"m": 1}
    child = alice.call(
        "POST",
        "/objects",
        {
            "key_id": item["key_id"],
            "related_object_id": item["id"],
            "content": "",
            "auth_tag": "00" * 16,
            "metadata": {},
        },
    )
    status, answer = raw(alice, "PATCH", f"/objects/{item['id']}", {"related_object_id": child["id"]})
    assert (status, answer["code"]) == (400, "VALIDATION_ERROR")


def test_store_listing_pages_by_cursor(alice: StoreClient) -> None:
    store_id = alice.stores["agents"]["id"]
    ids = [alice.create("agents", {"n": i})["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = alice.call(
            "GET", f"/objects?related_object_id={store_id}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert raw(alice, "GET", "/objects?limit=0")[1]["code"] == "VALIDATION_ERROR"
    assert raw(alice, "GET", "/objects?cursor=abc")[1]["code"] == "VALIDATION_ERROR"
    assert raw(alice, "GET", "/objects/publish/nope")[1]["code"] == "VALIDATION_ERROR"


def test_store_openapi_documents_listings(app: TestClient) -> None:
    paths = app.get("/api/schema/openapi.json").json()["paths"]
    assert "cursor" in {p["name"] for p in paths["/api/objects"]["get"]["parameters"]}
    assert "/api/objects/publish/{type}" in paths
