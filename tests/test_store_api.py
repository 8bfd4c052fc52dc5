"""The object store over the app in-process: documented base64 forms, validation,
isolation between users, cascades, listing and the events each mutation records."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.store.routes import store_routes
from tests.conftest import create_user
from tests.store_client import OAEP, StoreClient

METADATA_LIMIT = 1024
USER_TABLES = ("user_servers", "keys", "objects", "stores", "publications", "events")


@pytest.fixture(scope="module")
def store_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir: Path = tmp_path_factory.mktemp("store") / "data"
    return {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_STORE__MAX_OBJECT_BYTES": "4096",
        "TELENTIR_BOX_STORE__MAX_METADATA_BYTES": str(METADATA_LIMIT),
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
    """One request; bytes are sent as they are (malformed JSON), anything else as JSON."""
    if isinstance(body, bytes):
        headers = {**client.headers, "content-type": "application/json"}
        response = client.http.request(method, "/api" + path, content=body, headers=headers)
    else:
        response = client.http.request(method, "/api" + path, json=body, headers=client.headers)
    return response.status_code, (response.json() if response.content else None)


def user_id_of(client: StoreClient) -> str:
    return client.call("GET", f"/keys/{client.stores['contacts']['defaultKey']}")["user_id"]


def snapshot(app: TestClient, client: StoreClient) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the user owns in the store's tables and the event log: a refused
    request must leave all of it as it was."""
    box = app.app.state.box
    user_id = user_id_of(client)

    async def read() -> dict[str, list[tuple[Any, ...]]]:
        async with box.db.reading() as conn:
            return {
                table: [
                    tuple(row)
                    for row in await conn.execute_fetchall(
                        f"SELECT * FROM {table} WHERE user_id = ? ORDER BY rowid",
                        (user_id,),
                    )
                ]
                for table in USER_TABLES
            }

    return app.blocking_portal.call(read)


def assert_error(answer: Any, status: int, code: str, got: int) -> None:
    assert (got, answer["code"]) == (status, code), answer
    assert set(answer) == {"error", "code", "message"}


def metadata_of(size: int) -> dict[str, str]:
    """Metadata whose JSON encoding is exactly `size` bytes."""
    return {"m": "x" * (size - len('{"m":""}'))}


def events(app: TestClient, user_client: StoreClient) -> list[tuple[str, dict[str, Any]]]:
    box = app.app.state.box
    user_id = user_id_of(user_client)

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
    ("body", "status", "code"),
    [
        ({"server": "default", "key": "00" * 256, "iv": "00" * 11}, 400, "VALIDATION_ERROR"),
        ({"server": "default", "key": "0" * 511, "iv": "00" * 12}, 400, "VALIDATION_ERROR"),
        ({"server": "default", "key": "00" * 100, "iv": "00" * 12}, 400, "VALIDATION_ERROR"),
        ({"server": "default", "key": "00" * 256}, 400, "VALIDATION_ERROR"),
        ({"server": "default", "key": "00" * 256, "iv": "00" * 12, "extra": 1}, 400, "VALIDATION_ERROR"),
        ({"server": "nope", "key": "00" * 256, "iv": "00" * 12}, 404, "NOT_FOUND"),
        (b'{"server": "default",', 400, "VALIDATION_ERROR"),
    ],
)
def test_store_key_create_rejects_bad_input(
    app: TestClient, alice: StoreClient, body: Any, status: int, code: str
) -> None:
    before = snapshot(app, alice)
    got, answer = raw(alice, "POST", "/keys", body)
    assert_error(answer, status, code, got)
    assert snapshot(app, alice) == before


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


# Every store route with a body it would accept; the path parameters are filled with a
# real item, key and publication of alice's, so a missing guard would show as a change.
STORE_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/server", None),
    ("GET", "/root", None),
    ("GET", "/servers", None),
    ("POST", "/servers", {"name": "intruder", "mode": "generate"}),
    ("PATCH", "/servers/{name}", {"deprecated": True}),
    ("POST", "/keys", {"server": "default", "key": "00" * 256, "iv": "00" * 12}),
    ("PUT", "/keys", {"server": "default"}),
    ("GET", "/keys/{key_id}", None),
    ("PATCH", "/keys/{key_id}", {"metadata": {"owned": True}}),
    ("DELETE", "/keys/{key_id}", None),
    ("PUT", "/objects", {"keyId": "{key_id}", "content": "", "authTag": "00" * 16}),
    ("POST", "/objects", {"key_id": "{key_id}", "content": "", "auth_tag": "00" * 16}),
    ("GET", "/objects", None),
    ("GET", "/objects/{object_id}", None),
    ("PATCH", "/objects/{object_id}", {"metadata": {"owned": True}}),
    ("DELETE", "/objects/{object_id}", None),
    ("GET", "/objects/{object_id}/related", None),
    ("PUT", "/objects/publish/{type}/{related_id}", {"objectId": "{object_id}"}),
    ("DELETE", "/objects/publish/{type}/{related_id}", None),
    ("GET", "/objects/publish/{type}", None),
]
_FORGED_CLAIMS = {
    "sub": "usr_" + "A" * 22,
    "jti": "ses_" + "A" * 22,
    "iat": 1_700_000_000,
    "exp": 4_000_000_000,
    "aud": "telentir-box",
}
FORGED_TOKENS = [
    None,
    "tbx_" + "A" * 43,
    jwt.encode(_FORGED_CLAIMS, "not-the-box-secret-but-32-bytes!!", algorithm="HS256"),
    jwt.encode(_FORGED_CLAIMS, None, algorithm="none"),
]


@pytest.fixture(scope="module")
def alice_targets(alice: StoreClient) -> dict[str, str]:
    item = alice.create("campaigns", {"name": "target"})
    alice.publish("campaigns", item["id"])
    key_id = alice.call("PUT", "/keys", {"server": "default"})
    return {
        "name": "default",
        "key_id": key_id,
        "object_id": item["id"],
        "type": "campaigns",
        "related_id": item["id"],
    }


def test_store_credential_cases_cover_every_route(app: TestClient) -> None:
    served = {
        (method, re.sub(r":\w+}", "}", route.path).removeprefix("/api"))
        for route in app.app.routes
        for handler in route.route_handlers
        # Handlers are bound methods of the store's controllers (OPTIONS ones are not).
        if isinstance(getattr(handler.fn, "__self__", None), tuple(store_routes))
        for method in handler.http_methods
    }
    assert served == {(method, path) for method, path, _ in STORE_ROUTES}


@pytest.mark.parametrize(("method", "path", "body"), STORE_ROUTES)
@pytest.mark.parametrize("token", FORGED_TOKENS, ids=["none", "api_key", "jwt_hs256", "jwt_none"])
def test_store_requires_credentials(
    app: TestClient,
    alice: StoreClient,
    alice_targets: dict[str, str],
    method: str,
    path: str,
    body: Any,
    token: str | None,
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        body = {k: v.format(**alice_targets) if isinstance(v, str) else v for k, v in body.items()}
    before = snapshot(app, alice)
    response = app.request(method, "/api" + path.format(**alice_targets), json=body, headers=headers)
    assert_error(response.json(), 401, "UNAUTHORIZED", response.status_code)
    assert snapshot(app, alice) == before


@pytest.fixture(scope="module")
def unverified_key(store_env: dict[str, str]) -> str:
    return create_user(store_env, "unverified@example.com", "--api-key", "k")["api_key"]


@pytest.mark.parametrize(("method", "path", "body"), STORE_ROUTES)
def test_store_requires_a_verified_phone(
    app: TestClient,
    alice: StoreClient,
    alice_targets: dict[str, str],
    unverified_key: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    """object_auth, not just auth: a valid key of a user whose phone is unverified is
    refused on every store route (so a route that loses its guard shows up here)."""
    if body is not None:
        body = {k: v.format(**alice_targets) if isinstance(v, str) else v for k, v in body.items()}
    headers = {"authorization": f"Bearer {unverified_key}"}
    before = snapshot(app, alice)
    response = app.request(method, "/api" + path.format(**alice_targets), json=body, headers=headers)
    assert_error(response.json(), 403, "PHONE_VERIFICATION_REQUIRED", response.status_code)
    assert snapshot(app, alice) == before


def test_store_publications_stay_with_their_owner(
    app: TestClient, alice: StoreClient, mallory: StoreClient
) -> None:
    item = alice.create("campaigns", {"name": "alice's"})
    copy_id = alice.publish("campaigns", item["id"])
    own = mallory.create("campaigns", {"name": "mallory's"})
    before = snapshot(app, alice)
    status, answer = raw(mallory, "DELETE", f"/objects/publish/campaigns/{item['id']}")
    assert_error(answer, 404, "NOT_FOUND", status)
    # Her own item with alice's copy as the published object.
    status, answer = raw(mallory, "PUT", f"/objects/publish/campaigns/{own['id']}", {"objectId": copy_id})
    assert_error(answer, 404, "NOT_FOUND", status)
    assert snapshot(app, alice) == before
    mallory.publish("campaigns", own["id"])
    listed = mallory.call("GET", "/objects/publish/campaigns?limit=1000")["items"]
    assert own["id"] in {p["related_id"] for p in listed}
    assert not {item["id"], copy_id} & ({p["related_id"] for p in listed} | {p["object_id"] for p in listed})
    alices = alice.call("GET", "/objects/publish/campaigns?limit=1000")["items"]
    assert {"related_id": item["id"], "object_id": copy_id}.items() <= next(
        p for p in alices if p["related_id"] == item["id"]
    ).items()
    assert own["id"] not in {p["related_id"] for p in alices}


def test_store_servers_stay_with_their_owner(
    app: TestClient, alice: StoreClient, mallory: StoreClient
) -> None:
    made = alice.call("POST", "/servers", {"name": "alice-laptop", "mode": "generate"})
    assert made["name"] == "alice-laptop"
    own_key = mallory.stores["contacts"]["defaultKey"]
    before, theirs = snapshot(app, alice), snapshot(app, mallory)
    wrapped = {"key": "00" * 256, "iv": "00" * 12}
    for method, path, body in [
        ("POST", "/keys", {"server": "alice-laptop", **wrapped}),
        ("PUT", "/keys", {"server": "alice-laptop"}),
        ("PATCH", f"/keys/{own_key}", {"server": "alice-laptop", **wrapped}),
        ("PATCH", "/servers/alice-laptop", {"deprecated": True}),
    ]:
        status, answer = raw(mallory, method, path, body)
        assert_error(answer, 404, "NOT_FOUND", status)
    assert snapshot(app, alice) == before and snapshot(app, mallory) == theirs
    assert "alice-laptop" not in {s["name"] for s in mallory.call("GET", "/servers")}
    assert "alice-laptop" not in mallory.call("GET", "/root")["servers"]


@pytest.mark.parametrize(
    "query",
    [
        "/objects?limit=1001",
        "/objects?limit=0",
        "/objects?limit=-1",
        "/objects?limit=ten",
        "/objects?cursor=abc",
        "/objects?cursor=-1",
        "/objects?cursor=" + "9" * 19,
        # digits of other scripts, which str.isdigit and int() accept
        "/objects?cursor=١٢٣",
        "/objects?cursor=%C2%B2",
        "/objects?cursor=%EF%BC%91",
        "/objects?limit=١٢",
        "/objects/publish/contacts?cursor=١٢٣",
        "/objects/publish/contacts?limit=\uff11\uff12"  # fullwidth,
        "/objects/publish/contacts?limit=1001",
        "/objects/publish/contacts?limit=0",
        "/objects/publish/contacts?cursor=1.5",
        "/objects/publish/nope",
    ],
)
def test_store_listings_reject_bad_paging(alice: StoreClient, query: str) -> None:
    status, answer = raw(alice, "GET", query)
    assert_error(answer, 400, "VALIDATION_ERROR", status)


@pytest.mark.parametrize("bad_id", ["bad", "obj_" + "A" * 65, "obj_AAAA'AAAAAAAAAAAAAAAA", "x" * 2000])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/objects/{}", None),
        ("PATCH", "/objects/{}", {"metadata": {}}),
        ("DELETE", "/objects/{}", None),
        ("GET", "/objects/{}/related", None),
        ("GET", "/keys/{}", None),
        ("PATCH", "/keys/{}", {"metadata": {}}),
        ("DELETE", "/keys/{}", None),
        ("DELETE", "/objects/publish/contacts/{}", None),
        ("PUT", "/objects/publish/contacts/{}", {"objectId": "obj_" + "A" * 22}),
    ],
)
def test_store_malformed_ids_are_not_found(
    app: TestClient, alice: StoreClient, bad_id: str, method: str, path: str, body: Any
) -> None:
    before = snapshot(app, alice)
    status, answer = raw(alice, method, path.format(bad_id), body)
    assert_error(answer, 404, "NOT_FOUND", status)
    assert snapshot(app, alice) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"content": "00" * 4097, "authTag": "00" * 16}, 413, "PAYLOAD_TOO_LARGE"),
        ({"content": base64.b64encode(bytes(4097)).decode(), "authTag": "A" * 24}, 413, "PAYLOAD_TOO_LARGE"),
        ({"content": "00"}, 400, "VALIDATION_ERROR"),
        ({"bogus": 1}, 400, "VALIDATION_ERROR"),
        ({"metadata": "text"}, 400, "VALIDATION_ERROR"),
        ({"keyId": "key_" + "A" * 22}, 404, "NOT_FOUND"),
        (b"[]", 400, "VALIDATION_ERROR"),
        (b'{"metadata": ', 400, "VALIDATION_ERROR"),
    ],
)
def test_store_object_patch_rejects_bad_input(
    app: TestClient, alice: StoreClient, body: Any, status: int, code: str
) -> None:
    item = alice.create("tasks", {"title": "kept"})
    before = snapshot(app, alice)
    got, answer = raw(alice, "PATCH", f"/objects/{item['id']}", body)
    assert_error(answer, status, code, got)
    assert snapshot(app, alice) == before
    assert alice.get("tasks", item["id"]) == {"title": "kept"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"metadata": "text"}, 400, "VALIDATION_ERROR"),
        ({"bogus": 1}, 400, "VALIDATION_ERROR"),
        ({"deprecated": "yes"}, 400, "VALIDATION_ERROR"),
        ({"iv": "00" * 11}, 400, "VALIDATION_ERROR"),
        ({"key": "00" * 10}, 400, "VALIDATION_ERROR"),
        ({"server": "default"}, 400, "VALIDATION_ERROR"),
        ({"server": "nope", "key": "00" * 256}, 404, "NOT_FOUND"),
        (b"[]", 400, "VALIDATION_ERROR"),
        (b"{not json", 400, "VALIDATION_ERROR"),
    ],
)
def test_store_key_patch_rejects_bad_input(
    app: TestClient, alice: StoreClient, body: Any, status: int, code: str
) -> None:
    key_id = alice.call("PUT", "/keys", {"server": "default", "metadata": {"kept": 1}})
    record = alice.call("GET", f"/keys/{key_id}")
    before = snapshot(app, alice)
    got, answer = raw(alice, "PATCH", f"/keys/{key_id}", body)
    assert_error(answer, status, code, got)
    assert snapshot(app, alice) == before
    assert alice.call("GET", f"/keys/{key_id}") == record


def metadata_write_base(client: StoreClient, method: str, path: str) -> dict[str, Any]:
    """A body the route accepts, to which the test adds `metadata`."""
    if path == "/objects":
        return contact_body(client)
    if (method, path) == ("POST", "/keys"):
        wrapped = client.private["default"].public_key().encrypt(secrets.token_bytes(32), OAEP)
        return {"server": "default", "key": wrapped.hex(), "iv": "00" * 12}
    if (method, path) == ("PUT", "/keys"):
        return {"server": "default"}
    return {}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PUT", "/objects", 201),
        ("POST", "/objects", 201),
        ("PATCH", "/objects/{object_id}", 200),
        ("POST", "/keys", 201),
        ("PUT", "/keys", 201),
        ("PATCH", "/keys/{key_id}", 200),
    ],
)
def test_store_metadata_is_capped(
    app: TestClient, alice: StoreClient, method: str, path: str, status: int
) -> None:
    object_id = alice.create("tasks", {"title": "m"})["id"]
    path = path.format(object_id=object_id, key_id=alice.call("PUT", "/keys", {"server": "default"}))
    base = metadata_write_base(alice, method, path)
    before = snapshot(app, alice)
    got, answer = raw(alice, method, path, {**base, "metadata": metadata_of(METADATA_LIMIT + 1)})
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE", got)
    assert "`metadata`" in answer["message"] and str(METADATA_LIMIT) in answer["message"]
    assert snapshot(app, alice) == before
    # Exactly the limit is fine, and kept as sent.
    got, answer = raw(alice, method, path, {**base, "metadata": metadata_of(METADATA_LIMIT)})
    assert got == status, answer
    record_id = answer if isinstance(answer, str) else answer["id"]
    kind = "/keys" if path.startswith("/keys") else "/objects"
    assert alice.call("GET", f"{kind}/{record_id}")["metadata"] == metadata_of(METADATA_LIMIT)


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


def test_store_openapi_documents_listings(app: TestClient) -> None:
    paths = app.get("/api/schema/openapi.json").json()["paths"]
    assert "cursor" in {p["name"] for p in paths["/api/objects"]["get"]["parameters"]}
    assert "/api/objects/publish/{type}" in paths
