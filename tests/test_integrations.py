"""Integrations end to end: a browser connects each provider through the box's routes
against a real local authorization server, finished calls go into the delivery queue
(real calls made final by their webhooks: test_after_calls.py), and each provider's
API gets exactly one correct delivery; states, codes, roles, users, retries, dead
letters, refresh and secrecy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from telentir_box.config import load_config
from telentir_box.db import integrations as repo
from telentir_box.db.events import events_after
from telentir_box.integrations.calls import AgreedMeeting, FinishedCall
from telentir_box.voice.elevenlabs_webhooks import agreed_meeting
from tests.auth_support import FAST_ENV, PASSWORD
from tests.conftest import create_user, free_port
from tests.inprocess_box import InProcessBox
from tests.integration_fakes import PROVIDERS, FakeProviders, client_secret
from tests.integration_support import browser, settled_deliveries
from tests.integration_support import connect as connect_in

ALL = list(PROVIDERS)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


class World:
    def __init__(
        self, fake: FakeProviders, harness: InProcessBox, users: dict[str, dict[str, str]], log: Captured
    ):
        self.fake, self.harness, self.users, self.log = fake, harness, users, log

    def api(self, who: str) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.users[who]['api_key']}"}
        return httpx.Client(base_url=self.harness.base_url, headers=headers, timeout=10)

    @contextmanager
    def browser(self, who: str) -> Iterator[httpx.Client]:
        with browser(self.harness.base_url, self.users[who]["email"]) as client:
            yield client

    def finish_call(self, who: str, call: FinishedCall) -> list[str]:
        box = self.harness.box

        async def enqueue(tx: Any) -> list[str]:
            return await box.integrations.queue.enqueue_call_deliveries(tx, self.users[who]["id"], call)

        return self.harness.run(box.db.write(enqueue))

    def wait_settled(self, who: str) -> list[dict[str, Any]]:
        with self.api(who) as api:
            return settled_deliveries(api)

    def status(self, who: str = "admin") -> dict[str, dict[str, Any]]:
        with self.api(who) as api:
            answer = api.get("/api/integrations/status")
        assert answer.status_code == 200, answer.text
        return {item["provider"]: item for item in answer.json()["integrations"]}

    def states(self) -> int:
        async def count() -> int:
            async with self.harness.box.db.reading() as conn:
                rows = await conn.execute_fetchall("SELECT COUNT(*) FROM integration_states")
            return int(rows[0][0])

        return self.harness.run(count())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("integrations") / "data"
    env = {"TELENTIR_BOX_DATA__DIR": str(data_dir), "TELENTIR_BOX_LOG__FORMAT": "text", **FAST_ENV}
    users = {}
    for who, role in (("admin", "admin"), ("other", "owner"), ("member", "member")):
        email = f"{who}@example.com"
        made = create_user(
            env, email, "--role", role, "--phone-verified", "--api-key", "t", password=PASSWORD
        )
        users[who] = {**made, "email": email}
    log = Captured()
    logging.getLogger().addHandler(log)
    port = free_port()
    with FakeProviders() as fake:
        fake.redirect_uris = {f"http://127.0.0.1:{port}/api/integrations/{p}/callback" for p in ALL}
        config = load_config(environ=env, overrides={"integrations": fake.config()})
        with InProcessBox(config, port) as harness:
            yield World(fake, harness, users, log)
    logging.getLogger().removeHandler(log)


def connect(world: World, who: str, provider: str) -> dict[str, str]:
    with world.browser(who) as client:
        return connect_in(client, provider)


def a_call(**extra: Any) -> FinishedCall:
    fields: dict[str, Any] = {
        "call_id": "call-1",
        "direction": "inbound",
        "started_at": datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
        "duration_seconds": 125,
        "outcome": "completed",
        "summary": "Grace wants a demo of the <premium> plan",
        "from_number": "+14155550100",
        "to_number": "+14155550199",
        "contact_name": "Grace Hopper",
        "contact_phone": "+14155550100",
        "contact_email": "grace@example.com",
        **extra,
    }
    return FinishedCall(**fields)


MEETING = AgreedMeeting(
    start=datetime(2026, 12, 3, 10, 30, tzinfo=UTC), duration_minutes=30, attendee_email="grace@example.com"
)


def test_integrations_browser_connects_all_four_and_a_finished_call_delivers_once_each(world: World) -> None:
    for provider in ALL:
        assert connect(world, "admin", provider) == {"integration": provider, "status": "connected"}
    status = world.status()
    assert all(status[p]["connected"] and status[p]["status"] == "connected" for p in ALL)
    assert status["google_calendar"]["account"]["email"] == "ada@example.com"
    assert status["hubspot"]["account"]["portal_id"] == "4242"
    assert status["salesforce"]["account"]["org_id"] == "00Dorg000000001"
    assert status["salesforce"]["account"]["instance_url"] == world.fake.url + "/salesforce"
    assert status["microsoft_teams"]["account"]["user"] == "ada@contoso.example"
    assert "team-1" in status["microsoft_teams"]["account"]["posts_to"]
    # The authorization server saw the PKCE verifier, the exact redirect URI and the client.
    for prefix in ("google", "hubspot", "salesforce", "microsoft"):
        exchange = world.fake.providers[prefix].token_requests[0]
        assert exchange["grant_type"] == "authorization_code" and exchange["code_verifier"]
        assert exchange["client_secret"] == client_secret(prefix)

    ids = world.finish_call("admin", a_call(meeting=MEETING))
    assert len(ids) == 4
    items = world.wait_settled("admin")
    assert sorted(i["provider"] for i in items) == sorted(ALL)
    assert all(i["status"] == "delivered" and i["attempts"] == 1 for i in items)

    objects = {prefix: p.objects for prefix, p in world.fake.providers.items()}
    [event] = objects["google"]["events"]
    assert event["start"]["dateTime"] == "2026-12-03T10:30:00+00:00"
    assert event["end"]["dateTime"] == "2026-12-03T11:00:00+00:00"
    assert event["attendees"] == [{"email": "grace@example.com"}]
    [contact] = objects["hubspot"]["contacts"]
    assert contact["properties"]["email"] == "grace@example.com"
    [call] = objects["hubspot"]["calls"]
    assert call["properties"]["hs_call_direction"] == "INBOUND"
    assert call["properties"]["hs_call_duration"] == "125000"
    assert call["properties"]["hs_call_body"] == "Grace wants a demo of the <premium> plan"
    assert call["associations"][0]["to"]["id"] == contact["id"]
    [lead] = objects["salesforce"]["Lead"]
    assert (lead["LastName"], lead["FirstName"], lead["Email"]) == ("Hopper", "Grace", "grace@example.com")
    [task] = objects["salesforce"]["Task"]
    assert task["WhoId"] == lead["Id"] and task["CallType"] == "Inbound"
    assert task["CallDurationInSeconds"] == 125 and task["TaskSubtype"] == "Call"
    [message] = objects["microsoft"]["messages"]
    assert "&lt;premium&gt;" in message["body"]["content"] and message["body"]["contentType"] == "html"


def test_integrations_second_call_reuses_the_contact_and_books_nothing_without_a_meeting(
    world: World,
) -> None:
    events_before = len(world.fake.providers["google"].objects["events"])
    ids = world.finish_call("admin", a_call(call_id="call-2", direction="outbound"))
    assert len(ids) == 3  # no meeting agreed: nothing for Google Calendar
    world.wait_settled("admin")
    hubspot = world.fake.providers["hubspot"].objects
    assert len(hubspot["contacts"]) == 1 and len(hubspot["calls"]) == 2
    salesforce = world.fake.providers["salesforce"].objects
    assert len(salesforce["Lead"]) == 1 and len(salesforce["Task"]) == 2  # the lead matched by email
    assert len(world.fake.providers["google"].objects["events"]) == events_before


@pytest.mark.parametrize(
    "collected",
    [
        {
            "meeting_start": {"value": "2026-12-04T15:00:00"},
            "meeting_attendee_email": {"value": "a@b.example"},
        },
        {"meeting_start": {"value": "next tuesday"}, "meeting_attendee_email": {"value": "a@b.example"}},
        {"meeting_start": {"value": "2026-12-04T15:00:00+00:00"}},
        {"meeting_attendee_email": {"value": "a@b.example"}},
        {},
    ],
)
def test_integrations_no_meeting_unless_the_analysis_names_a_start_with_offset_and_an_email(
    collected: dict[str, Any],
) -> None:
    assert agreed_meeting({"data_collection_results": collected}) is None


def test_integrations_microsoft_rotated_refresh_tokens_are_stored_each_time(world: World) -> None:
    microsoft = world.fake.providers["microsoft"]
    refreshes = [r for r in microsoft.token_requests if r["grant_type"] == "refresh_token"]
    # Its tokens live 60 s, under the refresh margin: every delivery refreshed, each with
    # the token the previous refresh rotated in (the fake kills the old one).
    assert len(refreshes) >= 2
    assert len({r["refresh_token"] for r in refreshes}) == len(refreshes)
    assert all(r["scope"] for r in refreshes)
    assert world.status()["microsoft_teams"]["status"] == "connected"


def test_integrations_salesforce_refreshes_on_401_and_keeps_its_refresh_token(world: World) -> None:
    salesforce = world.fake.providers["salesforce"]
    salesforce.expire_access_tokens()
    world.finish_call("admin", a_call(call_id="call-3"))
    items = world.wait_settled("admin")
    assert all(i["status"] == "delivered" for i in items)
    refreshes = [r for r in salesforce.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1
    salesforce.expire_access_tokens()
    world.finish_call("admin", a_call(call_id="call-4"))
    world.wait_settled("admin")
    again = [r for r in salesforce.token_requests if r["grant_type"] == "refresh_token"]
    # The refresh answer carried no refresh token: the first one is kept and works again.
    assert len(again) == 2 and again[0]["refresh_token"] == again[1]["refresh_token"]


def test_integrations_concurrent_senders_refresh_a_token_once(world: World) -> None:
    hubspot = world.fake.providers["hubspot"]
    box = world.harness.box
    before = [r for r in hubspot.token_requests if r["grant_type"] == "refresh_token"]

    async def expire_and_race() -> set[str]:
        async with box.db.reading() as conn:
            row = await repo.get_integration(conn, world.users["admin"]["id"], "hubspot")
        assert row is not None

        async def expire(tx: Any) -> None:
            await tx.conn.execute("UPDATE integrations SET expires_at = ? WHERE id = ?", (tx.now, row.id))

        await box.db.write(expire)
        keeper = box.integrations.connections.tokens
        return set(await asyncio.gather(*(keeper.access_token(row.id) for _ in range(10))))

    tokens = world.harness.run(expire_and_race())
    after = [r for r in hubspot.token_requests if r["grant_type"] == "refresh_token"]
    assert len(after) == len(before) + 1 and len(tokens) == 1


def test_integrations_a_lost_answer_is_resent_without_doubling(world: World) -> None:
    hubspot, google = world.fake.providers["hubspot"], world.fake.providers["google"]
    calls, events = len(hubspot.objects["calls"]), len(google.objects["events"])
    hubspot.lose_answer_next = True  # the contact search lands, its answer is lost
    google.lose_answer_next = True  # the event is made, its answer is lost
    world.finish_call("admin", a_call(call_id="call-5", meeting=MEETING))
    items = world.wait_settled("admin")
    assert all(i["status"] == "delivered" for i in items)
    assert len(hubspot.objects["calls"]) == calls + 1
    assert len(google.objects["events"]) == events + 1
    assert max(i["attempts"] for i in items) == 2


def test_integrations_backoff_honours_retry_after_then_dead_letter_and_user_retry(world: World) -> None:
    teams = world.fake.providers["microsoft"]
    teams.fail_next = [(429, {"Retry-After": "1"}), (503, {})]
    started = time.monotonic()
    world.finish_call("admin", a_call(call_id="call-6"))
    items = world.wait_settled("admin")
    latest = next(i for i in items if i["provider"] == "microsoft_teams")
    assert latest["status"] == "delivered" and latest["attempts"] == 3
    assert time.monotonic() - started >= 1.0  # not sooner than Retry-After

    teams.fail_next = [(400, {})]
    world.finish_call("admin", a_call(call_id="call-7"))
    items = world.wait_settled("admin")
    dead = next(i for i in items if i["provider"] == "microsoft_teams")
    assert dead["status"] == "dead" and dead["attempts"] == 1 and "HTTP 400" in dead["last_error"]
    assert world.status()["microsoft_teams"]["failed_deliveries"] == 1
    sent = len(teams.objects["messages"])
    with world.api("other") as other:
        assert other.post(f"/api/integrations/deliveries/{dead['id']}/retry").status_code == 404
        assert other.get("/api/integrations/deliveries").json()["items"] == []
    with world.api("admin") as api:
        answer = api.post(f"/api/integrations/deliveries/{dead['id']}/retry")
        assert answer.status_code == 200 and answer.json()["status"] == "pending"
    world.wait_settled("admin")
    assert len(teams.objects["messages"]) == sent + 1
    with world.api("admin") as api:
        assert api.post(f"/api/integrations/deliveries/{dead['id']}/retry").status_code == 404  # delivered


def test_integrations_forged_replayed_and_foreign_states_store_nothing(world: World) -> None:
    hubspot = world.fake.providers["hubspot"]
    with world.browser("other") as browser:
        forged = browser.get("/api/integrations/hubspot/callback", params={"state": "forged", "code": "x"})
        assert forged.json() == {"integration": "hubspot", "status": "error", "error": "invalid_state"}
    with world.api("admin") as api:
        url = api.post("/api/integrations/hubspot/connect").json()["url"]
    # The admin's state, completed by the other user's browser: foreign.
    with httpx.Client(follow_redirects=False) as raw:
        callback = raw.get(url).headers["location"]
    with world.browser("other") as browser:
        foreign = browser.get(callback)
        assert foreign.json()["error"] == "invalid_state"
        # Completed by its owner once, then replayed.
    with world.browser("admin") as browser:
        assert browser.get(callback).json()["status"] == "connected"
        assert browser.get(callback).json()["error"] == "invalid_state"
    assert world.status("other")["hubspot"]["status"] == "disconnected"
    assert all(r.get("code") != "x" for r in hubspot.token_requests)


def test_integrations_code_for_another_client_or_denied_consent_store_nothing(world: World) -> None:
    with world.api("other") as api:
        url = api.post("/api/integrations/google_calendar/connect").json()["url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    query["client_id"] = "some-other-client"
    with httpx.Client(follow_redirects=False) as raw:
        callback = raw.get(url.split("?")[0], params=query).headers["location"]
    with world.browser("other") as browser:
        assert browser.get(callback).json()["error"] == "exchange_failed"
    world.fake.providers["google"].deny_next = True
    assert connect(world, "other", "google_calendar")["error"] == "access_denied"
    assert world.status("other")["google_calendar"]["status"] == "disconnected"


def test_integrations_members_and_strangers_are_refused(world: World) -> None:
    states = world.states()
    with world.api("member") as member:
        for method in ("GET", "POST"):
            answer = member.request(method, "/api/integrations/hubspot/connect")
            assert answer.status_code == 403 and answer.json()["code"] == "FORBIDDEN"
        assert member.get("/api/integrations/status").status_code == 403
        assert member.post("/api/integrations/hubspot/disconnect").status_code == 403
    with httpx.Client(base_url=world.harness.base_url) as anonymous:
        assert anonymous.post("/api/integrations/hubspot/connect").status_code == 401
        assert anonymous.get("/api/integrations/deliveries").status_code == 401
        answer = anonymous.get("/api/integrations/hubspot/callback", params={"state": "s", "code": "c"})
        assert answer.status_code == 302 and "error=unauthorized" in answer.headers["location"]
    with world.api("admin") as api:
        assert api.post("/api/integrations/nope/connect").status_code == 404
        assert api.post("/api/integrations/Bad-Name/connect").json()["code"] == "NOT_FOUND"
        assert api.get("/api/integrations/deliveries", params={"limit": 0}).status_code == 400
        assert api.get("/api/integrations/deliveries", params={"status": "lost"}).status_code == 400
        assert api.post("/api/integrations/deliveries/dlv_nope/retry").status_code == 404
    assert world.states() == states
    with world.api("other") as other:
        # Another user's integration is not theirs to disconnect: theirs is not connected.
        assert other.post("/api/integrations/salesforce/disconnect").status_code == 404
    assert world.status()["salesforce"]["connected"]


def test_integrations_invalid_grant_breaks_the_integration_with_an_event(world: World) -> None:
    hubspot = world.fake.providers["hubspot"]
    hubspot.expire_access_tokens()
    hubspot.kill_refresh_tokens()
    world.finish_call("admin", a_call(call_id="call-8"))
    items = world.wait_settled("admin")
    dead = next(i for i in items if i["provider"] == "hubspot")
    assert dead["status"] == "dead" and "invalid_grant" in dead["last_error"]
    status = world.status()["hubspot"]
    assert (
        status["status"] == "broken" and not status["connected"] and "invalid_grant" in status["last_error"]
    )

    async def broken_events() -> list[Any]:
        async with world.harness.box.db.reading() as conn:
            return await events_after(conn, world.users["admin"]["id"], 0, 1000, type="integration_broken")

    [event] = world.harness.run(broken_events())
    assert event.payload == {"provider": "hubspot", "error": "invalid_grant"}
    # On the user's stream, replayed from the log.
    with (
        world.api("admin") as api,
        api.stream("GET", "/api/events/integration_broken?lastEventId=0") as stream,
    ):
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: integration_broken"
        assert '"provider":"hubspot"' in next(lines)
    # Connecting again mends it.
    assert connect(world, "admin", "hubspot")["status"] == "connected"
    assert world.status()["hubspot"]["status"] == "connected"


def test_integrations_disconnect_revokes_where_it_can_and_drops_pending(world: World) -> None:
    google = world.fake.providers["google"]
    google.fail_next = [(503, {})] * 3
    world.finish_call("admin", a_call(call_id="call-9", meeting=MEETING))
    with world.api("admin") as api:
        answer = api.post("/api/integrations/google_calendar/disconnect")
        assert answer.status_code == 200, answer.text
        assert answer.json()["revoked"] is True
        assert google.revoked and google.revoked[-1].startswith("google-refresh-")
        teams = api.post("/api/integrations/microsoft_teams/disconnect").json()
        assert teams["revoked"] is False and "no revocation" in teams["note"]
        assert api.post("/api/integrations/microsoft_teams/disconnect").status_code == 404
    status = world.status()
    assert status["google_calendar"]["status"] == "disconnected"
    assert status["google_calendar"]["pending_deliveries"] == 0
    items = world.wait_settled("admin")
    assert not any(i["provider"] == "google_calendar" and i["status"] != "delivered" for i in items)


def test_integrations_tokens_and_secrets_never_in_clear(world: World) -> None:
    secrets = [t for p in world.fake.providers.values() for t in p.issued]
    secrets += [client_secret(prefix) for prefix in world.fake.providers]
    assert len(secrets) > 10

    async def checkpoint() -> None:
        await world.harness.box.db.writer.run_blocking("PRAGMA wal_checkpoint(FULL)")

    world.harness.run(checkpoint())
    data_dir = Path(world.harness.box.config.data_dir)
    stored = b"".join(path.read_bytes() for path in data_dir.glob("telentir-box.sqlite3*"))
    answers = ""
    with world.api("admin") as api:
        answers += api.get("/api/integrations/status").text + api.get("/api/integrations/deliveries").text
    logs = "\n".join(world.log.lines)
    for secret in secrets:
        assert secret.encode() not in stored, secret
        assert secret not in logs and secret not in answers, secret
    # Delivered payloads are gone; the summary a call carried is nowhere in clear.
    assert b"premium" not in stored


def test_integrations_unsent_deliveries_survive_a_restart_and_go_once(world: World) -> None:
    hubspot, salesforce = world.fake.providers["hubspot"], world.fake.providers["salesforce"]
    calls, tasks = len(hubspot.objects["calls"]), len(salesforce.objects["Task"])
    hubspot.fail_next = [(503, {"Retry-After": "1"})]
    salesforce.fail_next = [(503, {"Retry-After": "1"})]
    ids = world.finish_call("admin", a_call(call_id="call-10"))
    deadline = time.monotonic() + 10
    while len(hubspot.fail_next) + len(salesforce.fail_next):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    config, port = world.harness.box.config, world.harness.port
    world.harness.__exit__(None, None, None)  # stopped with both deliveries waiting to retry
    with InProcessBox(config, port) as restarted:
        world.harness = restarted
        items = world.wait_settled("admin")
    assert sorted(i["provider"] for i in items if i["id"] in ids) == ["hubspot", "salesforce"]
    assert all(i["status"] == "delivered" and i["attempts"] == 2 for i in items if i["id"] in ids)
    assert len(hubspot.objects["calls"]) == calls + 1
    assert len(salesforce.objects["Task"]) == tasks + 1
