"""The real client's flow over the real server: connect, create, list, get, update,
delete, publish a box-readable copy, and read what the box wrote for the user."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from telentir_box.box import Box
from telentir_box.config import load_config
from telentir_box.datadir import DATABASE_FILE
from telentir_box.store.publish import read_publication
from telentir_box.store.writer import write_for_user
from tests.conftest import LiveServer
from tests.store_client import StoreClient, b64url_decode

pytestmark = pytest.mark.e2e

CAMPAIGN = {
    "name": "Spring",
    "contacts": {"tags": ["vip"], "items": []},
    "agents": [],
    "relations": {},
    "type": "prompt",
    "prompt": {"text": "Hello"},
}


async def box_side(env: dict[str, str], user_id: str, campaign_id: str) -> object:
    """What the box's own features do with a user's store, in-process on the same data."""
    box = await Box.start(load_config(environ=env))
    try:
        published = await read_publication(box.db, box.keyring, user_id, "campaigns", campaign_id)
        await write_for_user(
            box.db, box.keyring, user_id, "contacts", [{"name": "Lead", "phone": "+15550100"}]
        )
        return published
    finally:
        await box.stop()


def sqlite_bytes(data_dir: Path) -> bytes:
    files = [data_dir / DATABASE_FILE, data_dir / f"{DATABASE_FILE}-wal"]
    return b"".join(p.read_bytes() for p in files if p.exists())


def test_store_live_real_client_flow(
    live_server: LiveServer,
    user_factory: Callable[..., dict[str, str]],
    env: dict[str, str],
    data_dir: Path,
) -> None:
    user = user_factory()
    with live_server.client() as http:
        client = StoreClient(http, user["api_key"])
        root = client.connect()
        assert set(root["stores"]) >= {
            "contacts",
            "agents",
            "calls",
            "campaigns",
            "tasks",
            "conversational-pathways",
        }
        assert set(root["servers"]) == {"default"} and root["servers"]["default"]["deprecated"] is False
        assert client.current not in root["servers"]

        contact = {"name": "Ada", "tags": ["a"], "phone": "+15550123", "status": "new"}
        created = client.create("contacts", contact)
        assert set(created) == {
            "id", "metadata", "created_at", "updated_at", "user_id", "key_id", "auth_tag", "content",
            "related_object_id",
        }  # fmt: skip
        assert client.all("contacts") == [{**contact, "id": created["id"]}]
        assert client.get("contacts", created["id"]) == contact
        updated = client.update("contacts", created["id"], {**contact, "status": "won"})
        assert updated["related_object_id"] == client.stores["contacts"]["id"]
        assert client.get("contacts", created["id"])["status"] == "won"
        client.delete("contacts", created["id"])
        assert client.all("contacts") == []
        assert http.get(f"/api/objects/{created['id']}", headers=client.headers).status_code == 404

        campaign = client.create("campaigns", CAMPAIGN)
        client.publish("campaigns", campaign["id"])
        # The private key never sits in clear in the database or its WAL.
        default_der = b64url_decode(root["servers"]["default"]["privateKey"])
        assert default_der not in sqlite_bytes(data_dir)
        assert base64.b64encode(default_der) not in sqlite_bytes(data_dir)
    live_server.stop()
    assert default_der not in sqlite_bytes(data_dir)

    assert asyncio.run(box_side(env, user["id"], campaign["id"])) == CAMPAIGN

    again = LiveServer(env=env, log_path=live_server.log_path).start()
    try:
        with again.client() as http:
            client = StoreClient(http, user["api_key"])
            client.connect()
            leads = client.all("contacts")
            assert [lead["name"] for lead in leads] == ["Lead"]
            assert leads[0]["phone"] == "+15550100"
    finally:
        again.stop()
