"""cleanup-recordings over the app: recordings (objects written through the store API,
listed in call_recordings as the calls issue will list them) older than the retention
are deleted from their users' stores with object_deleted events, in batches; the newer
ones, the rows and any store object stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from tests.auth_support import FAST_ENV, call
from tests.store_client import StoreClient
from tests.test_connect_routes import add_user


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(environ={**env, **FAST_ENV}))) as client:
        assert client.blocking_portal is not None
        client.blocking_portal.call(client.app.state.box.jobs.caught_up.wait)
        yield client


def store_user(app: TestClient, email: str) -> tuple[str, StoreClient]:
    user = add_user(app, email)
    client = StoreClient(app, user["api_key"])
    client.connect()
    return user["id"], client


def record(app: TestClient, user_id: str, object_id: str, age: timedelta) -> None:
    async def write(tx: Transaction) -> None:
        made = iso(datetime.now(UTC) - age)
        await jobs_repo.remember_recording(tx, f"call_{object_id}", user_id, object_id, made)

    assert app.blocking_portal is not None
    app.blocking_portal.call(app.app.state.box.db.write, write)


def read(app: TestClient, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        async with app.app.state.box.db.reading() as conn:
            return [tuple(row) for row in await conn.execute_fetchall(sql, params)]

    assert app.blocking_portal is not None
    return app.blocking_portal.call(go)


def deleted_events(app: TestClient, user_id: str) -> set[str]:
    rows = read(app, "SELECT data FROM events WHERE user_id = ? AND type = 'object_deleted'", user_id)
    return {msgspec.json.decode(row[0])["object_id"] for row in rows}


def test_jobs_cleanup_deletes_exactly_the_recordings_past_retention(app: TestClient) -> None:
    old, young = timedelta(days=91), timedelta(days=89)
    alice_id, alice = store_user(app, "alice@example.com")
    bob_id, bob = store_user(app, "bob@example.com")
    alice_old = [alice.create("contacts", {"recording": n})["id"] for n in range(3)]
    alice_new = [alice.create("contacts", {"recording": n})["id"] for n in range(2)]
    child = alice.call(
        "PUT", "/objects", {**_sealed(alice, {"part": 1}), "related_object_id": alice_old[0]}
    )["id"]  # fmt: skip
    bob_old = [bob.create("contacts", {"recording": n})["id"] for n in range(2)]
    for object_id in alice_old:
        record(app, alice_id, object_id, old)
    for object_id in alice_new:
        record(app, alice_id, object_id, young)
    for object_id in bob_old:
        record(app, bob_id, object_id, old)
    record(app, alice_id, alice.stores["contacts"]["id"], old)  # a store is never deleted
    record(app, bob_id, "obj_gone", old)  # its object already deleted by its user
    app.app.state.box.jobs.runner.jobs["cleanup-recordings"].batch = 2  # several batches

    secret = app.app.state.box.jobs.cron_secret
    answer = call(app, "POST", "/api/cron/cleanup-recordings", secret).json()
    assert answer["status"] == "ran"
    assert answer["run"]["counts"] == {"deleted_objects": 6, "expired_recordings": 7, "kept_store_objects": 1}
    for client, gone in ((alice, [*alice_old, child]), (bob, bob_old)):
        for object_id in gone:
            response = client.http.request("GET", f"/api/objects/{object_id}", headers=client.headers)
            assert response.status_code == 404
    assert [alice.get("contacts", object_id)["recording"] for object_id in alice_new] == [0, 1]
    assert alice.call("GET", f"/objects/{alice.stores['contacts']['id']}")["id"]
    assert deleted_events(app, alice_id) == {*alice_old, child}
    assert deleted_events(app, bob_id) == set(bob_old)
    # The calls keep their recording rows, stamped expired.
    rows = read(app, "SELECT object_id, expired_at IS NOT NULL FROM call_recordings")
    assert {object_id for object_id, expired in rows if not expired} == set(alice_new)
    assert len(rows) == 9

    again = call(app, "GET", "/api/cron/cleanup-recordings", secret).json()
    assert (again["status"], again["run"]["id"]) == ("already_done", answer["run"]["id"])
    assert deleted_events(app, alice_id) == {*alice_old, child}


def test_jobs_cleanup_keeps_everything_with_retention_zero(env: dict[str, str]) -> None:
    environ = {**env, **FAST_ENV, "TELENTIR_BOX_JOBS__RECORDING_RETENTION_DAYS": "0"}
    with TestClient(create_app(load_config(environ=environ))) as app:
        user_id, client = store_user(app, "carol@example.com")
        kept = client.create("contacts", {"recording": 1})["id"]
        record(app, user_id, kept, timedelta(days=4000))
        answer = call(app, "GET", "/api/cron/cleanup-recordings", app.app.state.box.jobs.cron_secret).json()
        assert answer["run"]["outcome"] == "done"
        assert client.get("contacts", kept) == {"recording": 1}


def _sealed(client: StoreClient, value: Any) -> dict[str, Any]:
    entry = client.stores["contacts"]
    content, tag = client.seal(*client.key(entry["defaultKey"]), value)
    return {"keyId": entry["defaultKey"], "content": content, "authTag": tag}
