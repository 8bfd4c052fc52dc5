"""End to end over the real `telentir-box serve`: a real SSE client watches changes
made through the object store API (by a stand-in for the real client), resumes after
a dropped connection and after a server restart, and sees only its own events."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.store_client import StoreClient
from tests.test_events_stream import Frame, SSEReader


@contextlib.asynccontextmanager
async def sse(
    server: LiveServer, path: str, api_key: str, last_id: int | None = None
) -> AsyncIterator[SSEReader]:
    headers = {"authorization": f"Bearer {api_key}"}
    if last_id is not None:
        headers["last-event-id"] = str(last_id)
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        reader = SSEReader(response)
        assert (await reader.frame()).data is None  # the retry hint
        yield reader


def store_client(server: LiveServer, api_key: str) -> StoreClient:
    client = StoreClient(server.client(), api_key)
    client.connect()
    return client


async def test_events_live_every_change_arrives_once_in_order_with_filters(
    live_server: LiveServer, user_factory: Callable[..., dict[str, str]]
) -> None:
    alice, bob = user_factory(), user_factory()
    store = await asyncio.to_thread(store_client, live_server, alice["api_key"])
    contacts = store.stores["contacts"]["id"]
    async with contextlib.AsyncExitStack() as stack:
        every = await stack.enter_async_context(sse(live_server, "/api/events", alice["api_key"]))
        in_contacts = await stack.enter_async_context(
            sse(live_server, f"/api/events/object_created?relatedId={contacts}", alice["api_key"])
        )
        publishes = await stack.enter_async_context(
            sse(live_server, "/api/events?type=campaigns", alice["api_key"])
        )
        bobs = await stack.enter_async_context(sse(live_server, "/api/events", bob["api_key"]))

        contact = await asyncio.to_thread(store.create, "contacts", {"name": "Ada"})
        updated = await asyncio.to_thread(store.update, "contacts", contact["id"], {"name": "Ada L."})
        campaign = await asyncio.to_thread(store.create, "campaigns", {"title": "Spring"})
        copy_id = await asyncio.to_thread(store.publish, "campaigns", campaign["id"])
        copy = await asyncio.to_thread(store.call, "GET", f"/objects/{copy_id}")
        await asyncio.to_thread(store.call, "DELETE", f"/objects/publish/campaigns/{campaign['id']}")
        await asyncio.to_thread(store.delete, "contacts", contact["id"])
        await asyncio.to_thread(store.call, "DELETE", f"/keys/{copy['key_id']}")

        expected = [
            "object_created",
            "object_updated",
            "object_created",
            "key_created",
            "object_created",
            "publish",
            "unpublish",
            "object_deleted",
            "key_deleted",
        ]
        got = await every.events(len(expected))
        assert [f.event for f in got] == expected
        ids = [f.id for f in got]
        assert ids == sorted(set(ids))
        assert got[0].data == contact
        assert got[1].data == {
            "object_id": contact["id"],
            "key_id": contact["key_id"],
            "user_id": alice["id"],
            "updated_at": updated["updated_at"],
        }
        assert got[3].data["key_id"] == copy["key_id"] and got[3].data["user_id"] == alice["id"]
        assert got[4].data == copy
        publish, unpublish = got[5].data, got[6].data
        assert {k: publish[k] for k in ("user_id", "type", "related_id", "object_id")} == {
            "user_id": alice["id"],
            "type": "campaigns",
            "related_id": campaign["id"],
            "object_id": copy_id,
        }
        assert set(publish) == {"user_id", "type", "related_id", "object_id", "timestamp"}
        assert set(unpublish) == {"user_id", "type", "related_id", "timestamp"}
        assert got[7].data["object_id"] == contact["id"] and "deleted_at" in got[7].data
        assert set(got[8].data) == {"key_id", "user_id", "deleted_at"}

        assert [f.data["id"] for f in [await in_contacts.event()]] == [contact["id"]]
        assert [f.event for f in await publishes.events(2)] == ["publish", "unpublish"]
        # Nothing else was queued on the filtered streams: the next frame is a heartbeat
        # or Bob's own first event, never one of Alice's.
        await asyncio.to_thread(store_client, live_server, bob["api_key"])
        for frame in await bobs.events(3):
            assert frame.id not in ids
            assert frame.data.get("user_id") == bob["id"]


async def read_until(reader: SSEReader, last_id: int) -> list[Frame]:
    frames: list[Frame] = []
    while not frames or frames[-1].id != last_id:
        frames.append(await reader.event())
    return frames


class Writer:
    """Another client creating objects from a thread while the stream is read."""

    def __init__(self, server: LiveServer, api_key: str) -> None:
        self.store = store_client(server, api_key)
        self.ids: list[str] = []

    def create(self, count: int) -> list[str]:
        made = [self.store.create("contacts", {"n": n})["id"] for n in range(count)]
        self.ids += made
        return made


def object_ids(frames: list[Frame]) -> list[str]:
    return [f.data["id"] for f in frames]


async def test_events_live_resume_after_client_drop_and_server_restart(
    live_server: LiveServer,
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
) -> None:
    user = user_factory()
    key = user["api_key"]
    writer = await asyncio.to_thread(Writer, live_server, key)
    path = "/api/events/object_created"
    async with sse(live_server, path, key) as reader:
        first = await asyncio.to_thread(writer.create, 3)
        seen = await reader.events(3)
        assert object_ids(seen) == first
    # The client is gone; another keeps writing, in the background, while it reconnects.
    missed = await asyncio.to_thread(writer.create, 5)
    background = threading.Thread(target=writer.create, args=(20,))
    async with sse(live_server, path, key, last_id=seen[-1].id) as reader:
        background.start()
        await asyncio.to_thread(background.join)
        tail = writer.ids[-20:]
        frames = []
        while len(frames) < 25:
            frames.append(await reader.event())
        assert object_ids(frames) == missed + tail
        assert [f.id for f in frames] == sorted({f.id for f in frames})
        last_seen = frames[-1].id
    # Writes the client misses, then a restart: the log is durable.
    after = await asyncio.to_thread(writer.create, 4)
    live_server.stop()
    restarted = live_server_factory()
    writer.store.http = restarted.client()
    async with sse(restarted, path, key, last_id=last_seen) as reader:
        assert object_ids(await reader.events(4)) == after
        live = await asyncio.to_thread(writer.create, 2)
        assert object_ids(await reader.events(2)) == live


async def test_events_live_auth_and_tickets(
    live_server: LiveServer, user_factory: Callable[..., dict[str, str]]
) -> None:
    user = user_factory()
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        response = await client.get("/api/events/object_created")
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED")
        response = await client.get("/api/events", params={"ticket": "e30.AAAA"})
        assert response.status_code == 401
        issued = await client.post(
            "/api/events/ticket", headers={"authorization": f"Bearer {user['api_key']}"}
        )
        ticket: dict[str, Any] = issued.json()
        async with client.stream("GET", "/api/events", params={"ticket": ticket["ticket"]}) as response:
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-cache"
