"""The SSE stream over real HTTP (uvicorn in the test's event loop, so the test writes
events through the app's own box): framing, filters, auth, tickets, resume, reset,
caps, heartbeats, slow subscribers and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from telentir_box.app import create_app
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.config import load_config
from telentir_box.db.database import Transaction
from telentir_box.db.events import Event, prune_events, record_event
from telentir_box.events.recheck import close_revoked_streams
from telentir_box.events.tickets import issue_ticket
from tests.conftest import create_user, free_port


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the signals


@dataclass
class Served:
    base_url: str
    box: Box
    server: _Server
    users: dict[str, dict[str, str]]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10, **kwargs)

    def auth(self, name: str = "alice") -> dict[str, str]:
        return {"authorization": f"Bearer {self.users[name]['api_key']}"}

    async def principal(self, name: str) -> Principal:
        principal = await self.box.authenticator.resolve(self.users[name]["api_key"])
        assert principal is not None
        return principal

    async def emit(self, user: str, type: str, payload: dict[str, Any]) -> Event:
        user_id = self.users[user]["id"]

        async def write(tx: Transaction) -> Event:
            return await record_event(tx, user_id, type, payload)

        return await self.box.db.write(write)


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: Any
    raw: bytes


class SSEReader:
    """Cuts the body on LF LF exactly as the real client does."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.chunks = response.aiter_raw()
        self.buffer = b""
        self.ended = False

    async def frame(self, timeout: float = 5.0) -> Frame:
        while b"\n\n" not in self.buffer:
            try:
                self.buffer += await asyncio.wait_for(anext(self.chunks), timeout)
            except StopAsyncIteration:
                self.ended = True
                raise
        raw, _, self.buffer = self.buffer.partition(b"\n\n")
        fields: dict[str, str] = {}
        for line in raw.split(b"\n"):
            name, _, value = line.decode().partition(":")
            fields.setdefault(name, value.strip())
        data = msgspec.json.decode(fields["data"]) if fields.get("data") else None
        return Frame(int(fields["id"]) if "id" in fields else None, fields.get("event"), data, raw)

    async def event(self, timeout: float = 5.0) -> Frame:
        """The next frame that carries data (comments and retry hints are skipped)."""
        while True:
            frame = await self.frame(timeout)
            if frame.data is not None:
                return frame

    async def events(self, count: int, timeout: float = 5.0) -> list[Frame]:
        return [await self.event(timeout) for _ in range(count)]


@contextlib.asynccontextmanager
async def serve_app(env: dict[str, str], users: dict[str, dict[str, str]]) -> AsyncIterator[Served]:
    app = create_app(load_config(environ=env))
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server failed to start"
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", app.state.box, server, users)
    finally:
        app.state.box.stopping.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def open_sse(
    served: Served, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SSEReader]:
    async with served.client() as client, client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield SSEReader(response)


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One data directory per module: creating users costs a subprocess each."""
    return {
        "TELENTIR_BOX_DATA__DIR": str(tmp_path_factory.mktemp("events") / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_EVENTS__HEARTBEAT_SECONDS": "0.3",
        "TELENTIR_BOX_EVENTS__MAX_STREAMS_PER_USER": "3",
        "TELENTIR_BOX_EVENTS__QUEUE_SIZE": "50",
    }


@pytest.fixture(scope="module")
def users(module_env: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        "alice": create_user(module_env, "alice@example.com", "--phone-verified", "--api-key", "k"),
        "bob": create_user(module_env, "bob@example.com", "--phone-verified", "--api-key", "k"),
        "unverified": create_user(module_env, "carol@example.com", "--api-key", "k"),
    }


@pytest.fixture
async def served(module_env: dict[str, str], users: dict[str, dict[str, str]]) -> AsyncIterator[Served]:
    async with serve_app(module_env, users) as s:
        yield s


def created(object_id: str, related: str | None = "store_1", user_id: str = "") -> dict[str, Any]:
    return {
        "id": object_id,
        "user_id": user_id,
        "metadata": {},
        "key_id": "key_1",
        "related_object_id": related,
        "content": "00",
        "auth_tag": "11" * 16,
        "created_at": "2025-01-01T00:00:00.000Z",
        "updated_at": "2025-01-01T00:00:00.000Z",
    }


async def test_events_stream_frames_only_own_events_of_its_type(served: Served) -> None:
    async with open_sse(served, "/api/events/object_created", served.auth()) as sse:
        headers = sse.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        first = await sse.frame()
        assert first.raw.startswith(b":") and b"\nretry: " in first.raw and first.data is None
        await served.emit("bob", "object_created", created("obj_bob"))
        await served.emit("alice", "object_updated", {"object_id": "obj_a"})
        one = await served.emit("alice", "object_created", created("obj_a"))
        two = await served.emit("alice", "object_created", created("obj_b"))
        got = await sse.events(2)
    assert [f.id for f in got] == [one.id, two.id]
    assert got[0].raw == b"id: %d\nevent: object_created\ndata: %s" % (one.id, one.data)
    assert got[1].data == created("obj_b")
    assert b"\r" not in got[0].raw


async def test_events_stream_all_types_and_filters(served: Served) -> None:
    async def first_event(path: str, writes: list[tuple[str, dict[str, Any]]]) -> Frame:
        async with open_sse(served, path, served.auth()) as sse:
            await sse.frame()
            for type_, payload in writes:
                await served.emit("alice", type_, payload)
            return await sse.event()

    noise: list[tuple[str, dict[str, Any]]] = [
        ("key_created", {"key_id": "key_x", "user_id": "u", "created_at": "t"}),
        ("object_created", created("obj_x", related="store_2")),
        ("object_updated", {"object_id": "obj_x", "key_id": "key_1"}),
        ("publish", {"type": "agents", "related_id": "obj_x", "object_id": "obj_c"}),
        ("unpublish", {"type": "agents", "related_id": "obj_x"}),
    ]
    target = ("object_deleted", {"object_id": "obj_t", "deleted_at": "t"})
    assert (await first_event("/api/events?objectId=obj_t", [*noise, target])).data == target[1]
    target = ("object_created", created("obj_y", related="store_1"))
    found = await first_event("/api/events/object_created?relatedId=store_1", [*noise, target])
    assert found.data["id"] == "obj_y"
    target = ("unpublish", {"type": "campaigns", "related_id": "obj_x"})
    found = await first_event("/api/events?type=campaigns&relatedId=obj_x", [*noise, target])
    assert (found.event, found.data) == ("unpublish", target[1])
    target = ("key_deleted", {"key_id": "key_x", "deleted_at": "t"})
    found = await first_event("/api/events/key_deleted?keyId=key_x", [*noise, target])
    assert found.data == target[1]
    alice = served.users["alice"]["id"]
    found = await first_event(f"/api/events?userId={alice}", [noise[0]])
    assert found.event == "key_created"


async def test_events_stream_foreign_user_filter_selects_nothing(served: Served) -> None:
    bob = served.users["bob"]["id"]
    async with open_sse(served, f"/api/events?userId={bob}", served.auth()) as sse:
        await sse.frame()
        await served.emit("alice", "object_created", created("obj_a"))
        await served.emit("bob", "object_created", created("obj_b"))
        assert (await sse.frame(timeout=2)).raw == b":"  # only heartbeats arrive


MALFORMED = [
    ("/api/events/nope", 404, "NOT_FOUND"),
    ("/api/events/object_created?keyId=key_1", 400, "VALIDATION_ERROR"),
    ("/api/events/unpublish?objectId=obj_1", 400, "VALIDATION_ERROR"),
    ("/api/events?objectId=" + "x" * 201, 400, "VALIDATION_ERROR"),
    ("/api/events?objectId=", 400, "VALIDATION_ERROR"),
    ("/api/events?lastEventId=abc", 400, "VALIDATION_ERROR"),
    ("/api/events?lastEventId=-1", 400, "VALIDATION_ERROR"),
    ("/api/events?lastEventId=" + "9" * 40, 400, "VALIDATION_ERROR"),
]


async def test_events_stream_rejects_malformed_and_oversized_requests(served: Served) -> None:
    async with served.client() as client:
        for path, status, code in MALFORMED:
            response = await client.get(path, headers=served.auth())
            assert (response.status_code, response.json()["code"]) == (status, code), path
        response = await client.get("/api/events", headers={**served.auth(), "last-event-id": "1.5"})
        assert response.status_code == 400


async def test_events_stream_auth(served: Served) -> None:
    async with served.client() as client:
        assert (await client.get("/api/events")).status_code == 401
        forged = {"authorization": "Bearer tbx_" + "A" * 43}
        assert (await client.get("/api/events/publish", headers=forged)).json()["code"] == "UNAUTHORIZED"
        response = await client.get("/api/events", headers=served.auth("unverified"))
        assert response.json()["code"] == "PHONE_VERIFICATION_REQUIRED"
        assert (await client.post("/api/events/ticket")).status_code == 401
    # The token cookie works same-origin (EventSource sends cookies, not headers).
    cookies = {"token": served.users["alice"]["api_key"]}
    async with served.client(cookies=cookies) as client, client.stream("GET", "/api/events") as response:
        assert response.status_code == 200


async def test_events_ticket_opens_own_stream_only(served: Served) -> None:
    async with served.client() as client:
        response = await client.post("/api/events/ticket", headers=served.auth("bob"))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"ticket", "expires_at"} and body["expires_at"].endswith("Z")
    async with open_sse(served, f"/api/events?ticket={body['ticket']}") as sse:
        await sse.frame()
        await served.emit("alice", "object_created", created("obj_a"))
        mine = await served.emit("bob", "object_created", created("obj_b"))
        assert (await sse.event()).id == mine.id


async def test_events_ticket_refused_when_expired_forged_used_or_for_unverified(served: Served) -> None:
    key = served.box.keyring.derive("event-tickets")
    now = served.box.clock()
    alice, unverified = await served.principal("alice"), await served.principal("unverified")
    expired, _ = issue_ticket(key, alice, now - timedelta(seconds=61))
    foreign_key, _ = issue_ticket(b"k" * 32, alice, now)
    for_unverified, _ = issue_ticket(key, unverified, now)
    good, _ = served.box.tickets.issue(alice, now)
    tampered = good[:5] + ("A" if good[5] != "A" else "B") + good[6:]
    async with served.client() as client:
        async with client.stream("GET", "/api/events", params={"ticket": good}) as response:
            assert response.status_code == 200
        for ticket in (
            good,
            expired,
            foreign_key,
            for_unverified,
            tampered,
            "x" * 600,
            "not.a.ticket",
            "...",
        ):
            response = await client.get("/api/events", params={"ticket": ticket}, headers=served.auth())
            assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED"), ticket


async def test_events_streams_end_when_their_credentials_are_revoked(served: Served) -> None:
    """A stream opened with an API key, and one opened with a ticket that key asked for,
    both end (with an error frame) when the key is deleted; other streams go on."""
    async with served.client() as client:
        made = (await client.post("/api/api-keys", json={"name": "tmp"}, headers=served.auth())).json()
        temporary = {"authorization": f"Bearer {made['key']}"}
        ticket = (await client.post("/api/events/ticket", headers=temporary)).json()["ticket"]
        async with (
            open_sse(served, "/api/events", temporary) as by_key,
            open_sse(served, f"/api/events?ticket={ticket}") as by_ticket,
            open_sse(served, "/api/events", served.auth()) as untouched,
        ):
            for sse in (by_key, by_ticket, untouched):
                await sse.frame()
            deleted = await client.delete(f"/api/api-keys/{made['id']}", headers=served.auth())
            assert deleted.status_code == 204
            for sse in (by_key, by_ticket):
                frame = await sse.event()
                assert frame.event == "error" and "no longer valid" in frame.data
            event = await served.emit("alice", "object_created", created("obj_after"))
            assert (await untouched.event()).id == event.id
        response = await client.get("/api/events", headers=temporary)
        assert response.status_code == 401


async def test_events_recheck_sees_revocations_made_by_another_process(served: Served) -> None:
    async with served.client() as client:
        made = (await client.post("/api/api-keys", json={"name": "cli"}, headers=served.auth())).json()
    async with open_sse(served, "/api/events", {"authorization": f"Bearer {made['key']}"}) as sse:
        await sse.frame()
        assert await close_revoked_streams(served.box.bus, served.box.db, served.box.clock()) == 0
        # As the admin CLI would: another connection, so this process hears nothing of it.
        other = sqlite3.connect(served.box.db.path)
        with other:
            other.execute("DELETE FROM api_keys WHERE id = ?", (made["id"],))
        other.close()
        assert await close_revoked_streams(served.box.bus, served.box.db, served.box.clock()) == 1
        assert (await sse.event()).event == "error"


async def test_events_stream_resume_has_no_gap_or_duplicate_under_writes(served: Served) -> None:
    first = await served.emit("alice", "object_created", created("obj_0"))
    for n in range(1, 5):
        await served.emit("alice", "object_created", created(f"obj_{n}"))

    async def write_many() -> list[int]:
        return [(await served.emit("alice", "object_created", created(f"obj_w{n}"))).id for n in range(150)]

    writer = asyncio.create_task(write_many())
    headers = {**served.auth(), "last-event-id": str(first.id)}
    async with open_sse(served, "/api/events/object_created", headers) as sse:
        written = await writer
        expected = list(range(first.id + 1, first.id + 5)) + written
        got = [f.id for f in await sse.events(len(expected))]
        assert got == expected
        live = await served.emit("alice", "object_created", created("obj_live"))
        assert (await sse.event()).id == live.id
    async with open_sse(
        served, f"/api/events/object_created?lastEventId={written[-2]}", served.auth()
    ) as sse:
        assert (await sse.event()).id == written[-1]


async def test_events_stream_reset_when_resume_point_was_pruned(served: Served) -> None:
    old = [await served.emit("alice", "object_created", created(f"obj_{n}")) for n in range(5)]

    async def prune(tx: Transaction) -> int:
        return await prune_events(tx, old[-2].id, 100_000)  # keep the newest two

    assert await served.box.db.write(prune) >= 3
    async with open_sse(served, "/api/events", {**served.auth(), "last-event-id": str(old[0].id)}) as sse:
        reset = await sse.event()
        assert reset.event == "reset" and reset.id == old[-1].id
        assert reset.data["resume_from"] == old[-1].id
        live = await served.emit("alice", "object_updated", {"object_id": "obj_1"})
        assert (await sse.event()).id == live.id
    # Still covered: resuming from the last pruned id loses nothing, so no reset.
    async with open_sse(served, "/api/events", {**served.auth(), "last-event-id": str(old[2].id)}) as sse:
        assert [f.id for f in await sse.events(2)] == [old[3].id, old[4].id]
    # An id this box never gave out cannot be resumed either.
    async with open_sse(served, "/api/events?lastEventId=999999", served.auth()) as sse:
        assert (await sse.event()).event == "reset"


async def test_events_stream_caps_answer_429(served: Served) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(open_sse(served, "/api/events", served.auth()))
        async with served.client() as client:
            response = await client.get("/api/events", headers=served.auth())
            assert (response.status_code, response.json()["code"]) == (429, "RATE_LIMITED")
            bob = await stack.enter_async_context(open_sse(served, "/api/events", served.auth("bob")))
            assert (await bob.frame()).data is None
    for _ in range(50):  # closed streams are released once the server sees the disconnect
        if served.box.bus.subscriber_count == 0:
            break
        await asyncio.sleep(0.02)
    assert served.box.bus.subscriber_count == 0
    async with open_sse(served, "/api/events", served.auth()) as sse:
        assert (await sse.frame()).data is None


async def test_events_stream_heartbeat_keeps_idle_stream_alive(served: Served) -> None:
    async with open_sse(served, "/api/events/publish", served.auth()) as sse:
        await sse.frame()
        assert (await sse.frame(timeout=2)).raw == b":"
        assert (await sse.frame(timeout=2)).raw == b":"


async def test_events_stream_slow_subscriber_does_not_stall_writer(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(served.base_url.rsplit(":", 1)[1]))
    key = served.users["alice"]["api_key"]
    writer.write(f"GET /api/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\r\n".encode())
    await writer.drain()
    assert b"200" in await reader.readline()
    assert served.box.bus.subscriber_count == 1
    async with open_sse(served, "/api/events", served.auth()) as sse:
        big = {"object_id": "obj_1", "pad": "x" * 60_000}
        for _ in range(400):  # ~24 MB for a client that reads nothing
            # A writer held up by the stalled stream would hang here until the timeout.
            event = await asyncio.wait_for(served.emit("alice", "object_updated", big), 5)
            assert (await sse.event()).id == event.id  # the reading stream keeps up
        assert served.box.bus.subscriber_count == 1  # the stalled one was dropped
    writer.close()


async def test_events_stream_ends_with_error_frame_on_shutdown(served: Served) -> None:
    async with open_sse(served, "/api/events", served.auth()) as sse:
        await sse.frame()
        served.box.stopping.set()
        frame = await sse.event()
        assert frame.event == "error" and isinstance(frame.data, str) and "shutting down" in frame.data
        with pytest.raises(StopAsyncIteration):
            await sse.frame()
