"""What follows real calls, end to end on one box: calls placed by the client's session
call through a fake Twilio, finished by its signed callbacks and by ElevenLabs' signed
post-call webhooks. Each connected integration gets one correct delivery of a call
(issue 19); the report emails carry the figures of those calls, of leads from the demo
connector and of a dead delivery, and the retention job deletes exactly the recording
old enough, on a clock the test moves (issue 20)."""

from __future__ import annotations

import base64
import html
import math
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import msgspec
import pytest

from telentir_box.config import default_plans, load_config
from tests.auth_support import FAST_ENV, PASSWORD, Inbox, smtp_server
from tests.call_fakes import (
    FakeElevenLabsCalls,
    FakeTwilioCalls,
    PlacedCall,
    post_call_audio,
    recording_audio,
    transcription,
)
from tests.call_support import (
    CONTACT,
    VOICE,
    User,
    finish_call,
    give_the_team_a_plan,
    make_user,
    place,
    read_events,
)
from tests.conftest import demo_connector, free_port
from tests.inprocess_box import InProcessBox
from tests.integration_fakes import PROVIDERS, FakeProviders
from tests.integration_support import browser, connect, settled_deliveries
from tests.report_support import clear_of_boundaries, figure, html_figure, next_slot, parts
from tests.telephony_support import PUBLIC_URL, agent, box_env, configuration_body
from tests.test_connect_routes import leads_body

ADA, BEN = "ada@example.com", "ben@example.com"  # Ada, an admin, connects integrations; Ben does not
# Leads in the plan; past them the prepaid balance pays, one credit (10 cents) a lead.
# No minutes in the plan: each second of a call costs a cent of the balance, each call
# a whole number of credits.
INCLUDED_LEADS, LEADS, BALANCE, LEAD_PRICE_CENTS = 10, 15, 100, 10
SUMMARY = "Bob agreed to a demo of the <premium> plan & a call back"
MEETING = {
    "meeting_start": {"value": "2031-03-04T10:30:00+01:00"},
    "meeting_attendee_email": {"value": "bob.buyer@example.com"},
    "meeting_duration_minutes": {"value": 45},
}
CALLER = {"name": "Carol Caller", "phone": "+15551230000", "tags": [], "status": "lead"}
ELEVENLABS_AUDIO = recording_audio("elevenlabs-first-call", 60_000)


@dataclass(frozen=True)
class Made:
    """A call the test made, as the reports count it."""

    direction: str
    status: str  # the Call model's final status
    seconds: int
    verdict: str | None  # ElevenLabs' call_successful; None with no transcription


@dataclass
class World:
    harness: InProcessBox
    twilio: FakeTwilioCalls
    elevenlabs: FakeElevenLabsCalls
    fake: FakeProviders
    inbox: Inbox
    ada: User
    ben: User
    real_clock: Callable[[], datetime]
    made: list[Made] = field(default_factory=list)
    # Call record ids of the calls later tests look back at.
    records: dict[str, str] = field(default_factory=dict)

    def api(self, user: User) -> httpx.Client:
        headers = {"authorization": f"Bearer {user.caller.key}"}
        return httpx.Client(base_url=self.harness.base_url, headers=headers, timeout=30)

    def deliveries(self, user: User) -> list[dict[str, Any]]:
        with self.api(user) as api:
            return settled_deliveries(api)

    def objects(self) -> dict[str, int]:
        """How many objects each provider's API holds, by provider and kind."""
        return {
            f"{prefix}.{kind}": len(items)
            for prefix, provider in self.fake.providers.items()
            for kind, items in provider.objects.items()
        }

    def cron(self, job: str, method: str = "GET") -> dict[str, Any]:
        secret = self.harness.box.jobs.cron_secret
        with httpx.Client(base_url=self.harness.base_url, timeout=60) as client:
            answer = client.request(method, f"/api/cron/{job}", headers={"authorization": f"Bearer {secret}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def at(self, moment: datetime | None) -> None:
        """Stop the box's clock at `moment`; None lets it run again."""
        self.harness.box.clock = self.real_clock if moment is None else lambda: moment

    def talk(
        self,
        call: PlacedCall,
        direction: str,
        *,
        seconds: int,
        verdict: str = "success",
        summary: str = SUMMARY,
        collected: dict[str, Any] | None = None,
        audio: Literal["twilio", "elevenlabs"] | None = "twilio",
        status: str = "completed",
        **answered: str,
    ) -> dict[str, Any]:
        """An answered call to its end: Twilio hands it to the agent and reports it
        answered and over, ElevenLabs sends its transcription, and the recording comes
        from Twilio, from ElevenLabs or (None) not yet. Returns the transcription sent;
        `status` is what the test expects the call to end as."""
        assert self.twilio.voice(call).status_code == 200
        finish_call(self.twilio, call, seconds, **answered)
        conversation = "conv_" + secrets.token_hex(8)
        sent = transcription(
            conversation,
            call.sid,
            summary=summary,
            successful=verdict,
            collected=collected,
            direction=direction,
        )
        assert self.elevenlabs.send(sent).status_code == 200
        if audio == "elevenlabs":
            assert self.elevenlabs.send(post_call_audio(conversation, ELEVENLABS_AUDIO)).status_code == 200
        elif audio == "twilio":
            assert self.twilio.recording(call)[1].status_code == 204
        self.made.append(Made(direction, status, seconds, verdict))
        return sent


def starter_plan() -> dict[str, Any]:
    """The built-in Starter plan, including fewer leads than the test ingests and no
    minutes: calls are charged to the prepaid balance."""
    starter = msgspec.structs.replace(
        default_plans()["starter"],
        included_leads=INCLUDED_LEADS,
        included_minutes=0,
        overage_usd_per_minute=0.6,
    )
    return msgspec.to_builtins(starter)


def expected_figures(made: list[Made]) -> dict[str, str]:
    """The call figures of the reports, from the calls the test made."""
    answered = [call for call in made if call.status == "completed"]
    analysed = [call for call in made if call.verdict in ("success", "failure")]
    successful = sum(call.verdict == "success" for call in analysed)
    return {
        "Calls in": str(sum(call.direction == "inbound" for call in made)),
        "Calls out": str(sum(call.direction == "outbound" for call in made)),
        "Answered": str(len(answered)),
        "Voicemail": str(sum(call.status == "voicemail" for call in made)),
        "Missed": str(sum(call.status == "missed" for call in made)),
        "Minutes": f"{round(sum(call.seconds for call in answered) / 60, 1):g}",
        "Success rate": f"{round(100 * successful / len(analysed), 1):g}%",
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # The calls are counted in the daily window ending at 18:00 UTC and on today's line.
    clear_of_boundaries((18, 0), margin=timedelta(minutes=2))
    root = tmp_path_factory.mktemp("after-calls")
    smtp_port, box_port = free_port(), free_port()
    with ExitStack() as stack:
        twilio = stack.enter_context(FakeTwilioCalls())
        elevenlabs = stack.enter_context(FakeElevenLabsCalls())
        fake = stack.enter_context(FakeProviders())
        inbox = stack.enter_context(smtp_server(smtp_port))
        env = box_env(
            root / "data",
            twilio,
            **FAST_ENV,
            **elevenlabs.env(),
            TELENTIR_BOX_SMTP__HOST="127.0.0.1",
            TELENTIR_BOX_SMTP__PORT=str(smtp_port),
            TELENTIR_BOX_SMTP__STARTTLS="false",
        )
        env["TELENTIR_BOX_CONNECT__BASE_URL"] = stack.enter_context(demo_connector(env))
        # The providers send the browser back to the box's public URL.
        fake.redirect_uris = {f"{PUBLIC_URL}/api/integrations/{p}/callback" for p in PROVIDERS}
        overrides = {"integrations": fake.config(), "billing": {"plans": {"starter": starter_plan()}}}
        harness = stack.enter_context(InProcessBox(load_config(environ=env, overrides=overrides), box_port))
        # The catch-up at start is over before any test moves the clock.
        harness.run(harness.box.jobs.caught_up.wait())
        twilio.box_url = elevenlabs.box_url = harness.base_url
        http = stack.enter_context(httpx.Client(base_url=harness.base_url, timeout=30))
        ada = make_user(http, env, ADA, "--role", "admin", password=PASSWORD)
        ben = make_user(http, env, BEN)
        give_the_team_a_plan(env, ADA)
        granted = ada.caller.request("POST", "/credits/grants", json={"credits": BALANCE})
        assert granted.status_code == 201, granted.text
        yield World(harness, twilio, elevenlabs, fake, inbox, ada, ben, harness.box.clock)


@pytest.fixture(autouse=True)
def real_clock(world: World) -> Iterator[None]:
    yield
    world.at(None)


def test_after_calls_a_call_delivers_once_to_each_connected_integration(world: World) -> None:
    with browser(PUBLIC_URL, ADA, box_url=world.harness.base_url) as ada_browser:
        for provider in PROVIDERS:
            assert connect(ada_browser, provider) == {"integration": provider, "status": "connected"}

    answer, placed = place(world.ada, world.twilio)
    world.records["first"] = answer["recordId"]
    sent = world.talk(placed, "outbound", seconds=125, collected=MEETING, audio="elevenlabs")
    record = world.ada.store.get("calls", answer["recordId"])
    assert record["status"] == "completed" and record["notes"] == SUMMARY

    items = world.deliveries(world.ada)
    assert sorted(item["provider"] for item in items) == sorted(PROVIDERS)
    assert all(item["status"] == "delivered" and item["attempts"] == 1 for item in items)
    objects = {prefix: provider.objects for prefix, provider in world.fake.providers.items()}
    [contact] = objects["hubspot"]["contacts"]
    assert contact["properties"] == {"phone": CONTACT["phone"], "firstname": "Bob", "lastname": "Buyer"}
    [logged] = objects["hubspot"]["calls"]
    assert logged["properties"]["hs_call_direction"] == "OUTBOUND"
    assert logged["properties"]["hs_call_duration"] == "125000"
    assert logged["properties"]["hs_call_body"] == SUMMARY
    assert logged["properties"]["hs_call_to_number"] == CONTACT["phone"]
    assert logged["associations"][0]["to"]["id"] == contact["id"]
    [lead] = objects["salesforce"]["Lead"]
    assert (lead["FirstName"], lead["LastName"], lead["Phone"]) == ("Bob", "Buyer", CONTACT["phone"])
    [task] = objects["salesforce"]["Task"]
    assert task["WhoId"] == lead["Id"] and task["CallType"] == "Outbound" and task["Description"] == SUMMARY
    assert task["CallDurationInSeconds"] == 125
    [event] = objects["google"]["events"]
    assert event["start"] == {"dateTime": "2031-03-04T10:30:00+01:00"}
    assert event["end"] == {"dateTime": "2031-03-04T11:15:00+01:00"}
    assert event["attendees"] == [{"email": "bob.buyer@example.com"}]
    [message] = objects["microsoft"]["messages"]
    assert message["body"]["contentType"] == "html"
    assert "Outbound call with Bob Buyer" in message["body"]["content"]
    assert html.escape(SUMMARY) in message["body"]["content"] and SUMMARY not in message["body"]["content"]

    # Providers retry: the same transcription, final status and audio again deliver nothing more.
    before = world.objects()
    assert world.elevenlabs.send(sent).status_code == 200
    assert world.twilio.status(placed, "completed", 3, CallDuration="125").status_code == 204
    conversation = sent["data"]["conversation_id"]
    assert world.elevenlabs.send(post_call_audio(conversation, ELEVENLABS_AUDIO)).status_code == 200
    assert world.deliveries(world.ada) == items
    assert world.objects() == before


def test_after_calls_an_inbound_call_delivers_too(world: World) -> None:
    ada = world.ada
    contact = ada.store.create("contacts", CALLER)
    ada.store.publish("contacts", contact["id"])
    body = configuration_body(agent=agent(persona=VOICE))
    config_id = ada.caller.ok("PUT", "/inbound-configurations", json=body)["id"]
    attach = {"action": "attach", "phone_number_id": ada.number_id}
    ada.caller.ok("POST", f"/inbound-configurations/{config_id}", json=attach)
    hubspot, salesforce = world.fake.providers["hubspot"].objects, world.fake.providers["salesforce"].objects
    before = world.objects()

    call = world.twilio.inbound(CALLER["phone"], ada.number)
    world.talk(call, "inbound", seconds=64, summary="Carol wants a quote")

    items = world.deliveries(ada)
    assert len(items) == 4 + 3 and all(item["status"] == "delivered" for item in items)
    # No meeting agreed: nothing for the calendar.
    assert world.objects() == {
        **before,
        "hubspot.contacts": 2,
        "hubspot.calls": 2,
        "salesforce.Lead": 2,
        "salesforce.Task": 2,
        "microsoft.messages": 2,
    }
    assert hubspot["contacts"][-1]["properties"]["phone"] == CALLER["phone"]
    logged = hubspot["calls"][-1]["properties"]
    assert (logged["hs_call_direction"], logged["hs_call_duration"]) == ("INBOUND", "64000")
    assert (
        logged["hs_call_from_number"] == CALLER["phone"] and logged["hs_call_body"] == "Carol wants a quote"
    )
    assert (salesforce["Lead"][-1]["FirstName"], salesforce["Lead"][-1]["LastName"]) == ("Carol", "Caller")
    assert salesforce["Task"][-1]["CallType"] == "Inbound"
    message = world.fake.providers["microsoft"].objects["messages"][-1]["body"]["content"]
    assert "Inbound call with Carol Caller" in message


def test_after_calls_calls_of_a_user_without_integrations_deliver_nothing(world: World) -> None:
    ben, twilio = world.ben, world.twilio
    before, ada_items = world.objects(), world.deliveries(world.ada)

    answer, placed = place(ben, twilio)
    world.records["ben"] = answer["recordId"]
    world.talk(placed, "outbound", seconds=45, verdict="failure", summary="Not interested")
    answer, placed = place(ben, twilio)
    assert twilio.status(placed, "ringing", 1).status_code == 204
    assert twilio.status(placed, "no-answer", 2).status_code == 204
    world.made.append(Made("outbound", "missed", 0, None))
    missed = answer["recordId"]
    # Answering-machine detection said a machine took it.
    answer, placed = place(ben, twilio)
    world.talk(
        placed, "outbound", seconds=20, verdict="unknown", status="voicemail", AnsweredBy="machine_end_beep"
    )

    statuses = {record["id"]: record["status"] for record in ben.calls()}
    assert statuses == {world.records["ben"]: "completed", missed: "missed", answer["recordId"]: "voicemail"}
    with world.api(ben) as api:
        assert api.get("/api/integrations/deliveries").json()["items"] == []
    assert world.deliveries(world.ada) == ada_items
    assert world.objects() == before


def test_after_calls_daily_summary_mails_the_figures_of_the_calls_leads_and_deliveries(world: World) -> None:
    # A call whose Teams message Microsoft refuses for good: one dead delivery.
    teams = world.fake.providers["microsoft"]
    teams.fail_next = [(400, {})]
    _, placed = place(world.ada, world.twilio)
    world.talk(placed, "outbound", seconds=50, verdict="failure", summary="Call again in spring")
    dead = [item for item in world.deliveries(world.ada) if item["status"] != "delivered"]
    assert [(item["provider"], item["status"]) for item in dead] == [("microsoft_teams", "dead")]
    # Leads from the demo connector: the plan's, then prepaid credits.
    ingested = world.ben.caller.request("POST", "/connect", json=leads_body(LEADS))
    assert ingested.status_code == 204, ingested.text
    assert ingested.headers["x-telentir-records-stored"] == str(LEADS)
    prepaid = LEADS - INCLUDED_LEADS + sum(math.ceil(call.seconds / 10) for call in world.made)
    expected = expected_figures(world.made) | {
        "Leads ingested": str(LEADS),
        "Plan credits used": str(INCLUDED_LEADS),
        "Prepaid credits used": str(prepaid),
        "Balance used": f"{prepaid * LEAD_PRICE_CENTS / 100:.2f}",
        "Failed integration deliveries": "1",
    }

    slot = next_slot(18)
    world.at(slot + timedelta(minutes=3))
    mailed = len(world.inbox.messages)
    answer = world.cron("daily-summary")
    assert (answer["status"], answer["run"]["counts"]) == ("ran", {"recipients": 1, "sent": 1, "failed": 0})
    [mail] = world.inbox.messages[mailed:]
    assert mail["To"] == ADA and mail["Subject"].startswith("Daily summary")
    text, page = parts(mail)
    assert {name: figure(text, name) for name in expected} == expected
    assert {name: html_figure(page, name) for name in expected} == expected
    # The chart: a bar per hour, the calls all on the bars.
    bars = [line for line in text.splitlines() if " |" in line]
    assert len(bars) == 24 and sum(int(bar.split()[-1]) for bar in bars) == len(world.made)
    assert "#" * 30 + " " in max(bars, key=lambda bar: int(bar.split()[-1]))
    assert page.count('bgcolor="#2f6fde"') == 24
    assert "<img" not in page and "http" not in page.replace("http-equiv", "")
    # Figures only: no caller, number or summary.
    for secret in (CONTACT["phone"], CALLER["phone"], world.ada.number, world.ben.number, "Bob", "Carol"):
        assert secret not in text and secret not in page
    for summary in (SUMMARY, html.escape(SUMMARY), "Carol wants a quote", "Not interested", "spring"):
        assert summary not in text and summary not in page

    again = world.cron("daily-summary", "POST")
    assert (again["status"], again["run"]["id"]) == ("already_done", answer["run"]["id"])
    assert "already done" in again["message"]
    assert len(world.inbox.messages) == mailed + 1


def test_after_calls_weekly_report_shows_the_calls_on_their_day(world: World) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today + timedelta(days=7 - today.weekday())  # the next one: this week's report holds today
    world.at(monday + timedelta(hours=10))
    mailed = len(world.inbox.messages)
    assert world.cron("weekly-report", "POST")["status"] == "ran"
    [mail] = world.inbox.messages[mailed:]
    text, _ = parts(mail)
    figures = expected_figures(world.made)
    day = next(line for line in text.splitlines() if line.startswith(f"{today:%a %d %b}") and "|" not in line)
    columns = ("Calls in", "Calls out", "Answered", "Minutes")
    assert day.split()[3:] == [figures[name] for name in columns] + [str(LEADS)]
    assert {name: figure(text, name) for name in columns} == {name: figures[name] for name in columns}


def test_after_calls_cleanup_deletes_exactly_the_recording_past_retention(world: World) -> None:
    ben, twilio = world.ben, world.twilio
    answer, placed = place(ben, twilio)
    world.talk(placed, "outbound", seconds=33, audio=None)
    # The recording arrives, and is stored, five days ago on the box's clock.
    now = datetime.now(UTC)
    world.at(now - timedelta(days=5))
    assert twilio.recording(placed)[1].status_code == 204
    world.at(None)
    record = ben.store.get("calls", answer["recordId"])
    assert record["status"] == "completed"
    old = record["relations"]["audio"]

    # Past the retention for that recording only: every other one is younger than two days.
    retention = world.harness.box.config.jobs.recording_retention_days
    world.at(now + timedelta(days=retention - 2))
    run = world.cron("cleanup-recordings", "POST")["run"]
    assert run["counts"] == {"deleted_objects": 1, "expired_recordings": 1, "kept_store_objects": 0}
    world.at(None)

    # The client learns it from the event and the 404; the Call record stays and names it.
    [deleted] = read_events(ben, "object_deleted", f"objectId={old}", 1)
    assert deleted["object_id"] == old
    gone = ben.caller.http.get(f"/api/objects/{old}", headers=ben.store.headers)
    assert gone.status_code == 404
    assert ben.store.get("calls", answer["recordId"]) == record
    first = world.ada.store.get("calls", world.records["first"])
    assert base64.b64decode(world.ada.child(first["relations"]["audio"])["content"]) == ELEVENLABS_AUDIO
    kept = ben.store.get("calls", world.records["ben"])["relations"]["audio"]
    assert ben.child(kept)["mimeType"] == "audio/mpeg"
