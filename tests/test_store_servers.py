"""Servers, root provisioning (once, even under concurrent first calls) and what the
box writes for users, over the app in-process; and, over the real server, what a
generated server costs: checked first, then limited per user per hour."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.testing import TestClient

from telentir_box.box import Box
from telentir_box.config import Config
from telentir_box.store.root import ensure_provisioned, get_root
from telentir_box.store.writer import write_for_user
from tests.conftest import LiveServer, create_user
from tests.store_client import OAEP, StoreClient, b64url_decode


def spki(key: Any) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(der).rstrip(b"=").decode()


def unusable_spki(bits: int, exponent_bits: int = 17) -> str:
    """A well-formed RSA public key OpenSSL parses but will not encrypt with (a modulus
    over 16384 bits, or a long exponent on a large modulus). Nobody has its private key."""
    n = secrets.randbits(bits) | 1 << (bits - 1) | 1
    e = secrets.randbits(exponent_bits) | 1 << (exponent_bits - 1) | 1
    der = (
        rsa.RSAPublicNumbers(e, n)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.urlsafe_b64encode(der).rstrip(b"=").decode()


async def count(box: Box, table: str, user_id: str) -> int:
    async with box.db.reading() as conn:
        rows = await conn.execute_fetchall(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user_id,))
    return next(iter(rows))[0]


async def test_store_root_concurrent_first_calls_provision_once(config: Config, env: dict[str, str]) -> None:
    user = create_user(env, "race@example.com", "--phone-verified")
    box = await Box.start(config)
    try:
        roots = await asyncio.gather(*(get_root(box.db, box.keyring, user["id"]) for _ in range(6)))
        assert all(root == roots[0] for root in roots)
        assert await count(box, "user_servers", user["id"]) == 1
        assert await count(box, "stores", user["id"]) == 8
        assert await count(box, "keys", user["id"]) == 8
        assert await count(box, "objects", user["id"]) == 8
        assert await ensure_provisioned(box.db, box.keyring, user["id"]) == await ensure_provisioned(
            box.db, box.keyring, user["id"]
        )
    finally:
        await box.stop()


def test_store_root_concurrent_http_calls_agree(client: TestClient, env: dict[str, str]) -> None:
    key = create_user(env, "threads@example.com", "--phone-verified", "--api-key", "k")["api_key"]
    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(lambda _: StoreClient(client, key).call("GET", "/root"), range(4)))
    assert all(root == roots[0] for root in roots)
    assert len(roots[0]["stores"]) == 8 and list(roots[0]["servers"]) == ["default"]


def test_store_servers_generate_upload_and_refuse(client: TestClient, env: dict[str, str]) -> None:
    owner = StoreClient(
        client, create_user(env, "o@example.com", "--phone-verified", "--api-key", "k")["api_key"]
    )
    other = StoreClient(
        client, create_user(env, "p@example.com", "--phone-verified", "--api-key", "k")["api_key"]
    )
    server = owner.call("GET", "/server")
    assert server["current"] == "box" and set(server["keys"]["box"]) == {
        "application/pkix-spki",
        "application/jwk+json",
    }

    made = owner.call("POST", "/servers", {"name": "Laptop", "mode": "generate"})
    assert made["name"] == "laptop" and made["privateKey"]
    byok = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    uploaded = owner.call(
        "POST", "/servers", {"name": "hsm", "mode": "upload_public", "publicKey": spki(byok)}
    )
    assert uploaded == {"name": "hsm", "publicKey": spki(byok), "privateKey": None}
    root = owner.call("GET", "/root")
    assert root["servers"]["laptop"]["privateKey"] == made["privateKey"]
    assert root["servers"]["hsm"] == {"publicKey": spki(byok), "deprecated": False}
    listed = owner.call("GET", "/servers")
    assert [s["name"] for s in listed] == ["default", "laptop", "hsm"]
    assert other.call("GET", "/servers")[0]["name"] == "default" and len(other.call("GET", "/servers")) == 1

    # A key the box mints for a BYOK server is readable by that server's private key only.
    key_id = owner.call("PUT", "/keys", {"server": "HSM"})
    record = owner.call("GET", f"/keys/{key_id}")
    assert record["server"] == "hsm" and len(byok.decrypt(bytes.fromhex(record["key"]), OAEP)) == 32

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused
    curve = ec.generate_private_key(ec.SECP256R1())
    for body, status, code in [
        ({"name": "box", "mode": "generate"}, 400, "VALIDATION_ERROR"),
        ({"name": "BOX", "mode": "generate"}, 400, "VALIDATION_ERROR"),
        ({"name": "default", "mode": "generate"}, 409, "CONFLICT"),
        ({"name": "bad name", "mode": "generate"}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": "not*base64"}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": "AAAA"}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": spki(weak)}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": spki(curve)}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public"}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "other"}, 400, "VALIDATION_ERROR"),
        ({"name": "n" * 65, "mode": "generate"}, 400, "VALIDATION_ERROR"),
        ({"name": "n" * 900_000, "mode": "generate"}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": "A" * 900_000}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "upload_public", "publicKey": "A" * 2_000_000}, 413, "PAYLOAD_TOO_LARGE"),
        # Parsed fine, but the box could never wrap a key for them (was a 500 on PUT /keys).
        ({"name": "x", "mode": "upload_public", "publicKey": unusable_spki(16392)}, 400, "VALIDATION_ERROR"),
        (
            {"name": "x", "mode": "upload_public", "publicKey": unusable_spki(4096, 80)},
            400,
            "VALIDATION_ERROR",
        ),
        ({"name": "x", "mode": "generate", "publicKey": spki(byok)}, 400, "VALIDATION_ERROR"),
        ({"name": "x", "mode": "generate", "extra": 1}, 400, "VALIDATION_ERROR"),
    ]:
        response = client.post("/api/servers", json=body, headers=owner.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), str(body)[:80]
        assert set(response.json()) == {"error", "code", "message"}
    assert owner.call("GET", "/servers") == listed

    response = client.patch("/api/servers/hsm", json={"deprecated": True}, headers=other.headers)
    assert response.status_code == 404
    assert owner.call("PATCH", "/servers/hsm", {"deprecated": True})["deprecated"] is True
    response = client.put("/api/keys", json={"server": "hsm"}, headers=owner.headers)
    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_ERROR")
    # Deprecation stops new keys; the keys already wrapped for it stay manageable.
    patched = owner.call("PATCH", f"/keys/{key_id}", {"metadata": {"retired": True}, "deprecated": True})
    assert patched["metadata"] == {"retired": True} and patched["deprecated"] is True
    assert patched["key"] == record["key"] and patched["server"] == "hsm"
    response = client.patch(f"/api/keys/{key_id}", json={"key": record["key"]}, headers=owner.headers)
    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_ERROR")
    response = client.put("/api/keys", json={"server": "laptop"}, headers=other.headers)
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")


async def test_store_write_for_user_fresh_key_per_document(config: Config, env: dict[str, str]) -> None:
    user = create_user(env, "w@example.com", "--phone-verified")
    box = await Box.start(config)
    try:
        docs = [{"name": f"lead {i}", "phone": f"+1555010{i}"} for i in range(3)]
        records = await write_for_user(box.db, box.keyring, user["id"], "contacts", docs)
        root = await get_root(box.db, box.keyring, user["id"])
        private = serialization.load_der_private_key(
            b64url_decode(root.servers["default"].privateKey or ""), None
        )
        assert isinstance(private, rsa.RSAPrivateKey)
        async with box.db.reading() as conn:
            keys = await conn.execute_fetchall(
                "SELECT id, server, key, iv FROM keys WHERE id IN (?, ?, ?)", tuple(r.key_id for r in records)
            )
        assert len({k["iv"] for k in keys}) == 3 and {k["server"] for k in keys} == {"default"}
        by_id = {k["id"]: k for k in keys}
        for doc, record in zip(docs, records, strict=True):
            assert record.related_object_id == root.stores["contacts"].id
            key = by_id[record.key_id]
            aes = private.decrypt(bytes(key["key"]), OAEP)
            plain = AESGCM(aes).decrypt(
                bytes(key["iv"]), bytes.fromhex(record.content + record.auth_tag), None
            )
            assert plain.decode() == json.dumps(doc, separators=(",", ":"))
    finally:
        await box.stop()


def provisioned_servers(data_dir: Path, user_id: str) -> int:
    """Rows of `user_id`'s servers, read straight from the database file."""
    with closing(sqlite3.connect(data_dir / "telentir-box.sqlite3")) as conn:
        return conn.execute("SELECT COUNT(*) FROM user_servers WHERE user_id = ?", (user_id,)).fetchone()[0]


@pytest.mark.e2e
def test_store_servers_generation_is_checked_first_and_limited_per_user(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    data_dir: Path,
) -> None:
    server = live_server_factory(TELENTIR_BOX_STORE__SERVER_GENERATIONS_PER_HOUR="2")
    user, other = user_factory(), user_factory()
    headers = {"authorization": f"Bearer {user['api_key']}"}
    with server.client() as http:

        def generate(name: str, who: dict[str, str] = headers) -> httpx.Response:
            return http.post("/api/servers", json={"name": name, "mode": "generate"}, headers=who)

        # Refused before anything costly: not even the first-call provisioning ran.
        for name in ("bad name", "box", "n" * 65, ".hidden"):
            refused = generate(name)
            assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR"), name
        assert provisioned_servers(data_dir, user["id"]) == 0

        assert generate("first").status_code == 201
        # A taken name is refused before the limit is counted, however often it is tried.
        for name in ("first", "default", "FIRST"):
            taken = generate(name)
            assert (taken.status_code, taken.json()["code"]) == (409, "CONFLICT"), name

        # Concurrently, exactly one more generation fits in the hour.
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(lambda n: generate(f"burst{n}").status_code, range(6)))
        assert statuses == [201, 429, 429, 429, 429, 429]
        limited = generate("late")
        assert (limited.status_code, limited.json()["code"]) == (429, "RATE_LIMITED")
        assert 0 < int(limited.headers["retry-after"]) <= 3600
        assert set(limited.json()) == {"error", "code", "message"}
        assert provisioned_servers(data_dir, user["id"]) == 3  # default, first, one burst

        # The limit is the caller's alone, and it does not cover uploads (no generation).
        assert generate("mine", {"authorization": f"Bearer {other['api_key']}"}).status_code == 201
        byok = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = {"name": "uploaded", "mode": "upload_public", "publicKey": spki(byok)}
        assert http.post("/api/servers", json=body, headers=headers).status_code == 201
