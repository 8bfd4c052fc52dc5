"""Calls end to end over the real server: the client's session call (JWT and envelope
as telentir-wire.md 2.5-2.6 make them) placed through a fake Twilio, which then plays
the call's webhooks signed as Twilio signs; a fake ElevenLabs that answers
register-call and sends the post-call webhooks with its HMAC; and the client reading
the Call record, its transcript and its recording from its calls store."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.testing import TestClient
from twilio.request_validator import RequestValidator

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.call_fakes import (
    AGENT_ID,
    PERSONALIZE_SECRET,
    TWIML,
    WEBHOOK_SECRET,
    FakeElevenLabsCalls,
    FakeTwilioCalls,
    elevenlabs_signature,
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
    prompt_payload,
    read_events,
)
from tests.conftest import LiveServer, create_user
from tests.store_client import StoreClient
from tests.telephony_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    Caller,
    agent,
    assert_error,
    box_env,
    configuration_body,
)
from tests.test_personas import envelope, sign


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilioCalls]:
    with FakeTwilioCalls() as fake:
        yield fake


@pytest.fixture(scope="module")
def elevenlabs() -> Iterator[FakeElevenLabsCalls]:
    with FakeElevenLabsCalls() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> Iterator[LiveServer]:
    root: Path = tmp_path_factory.mktemp("calls")
    env = box_env(
        root / "data",
        twilio,
        **elevenlabs.env(),
        TELENTIR_BOX_CALLS__MAX_CONCURRENT_PER_USER="3",
    )
    live = LiveServer(env=env, log_path=root / "server.log")
    live.start()
    create_user(env, "owner@example.com", "--super-admin")
    give_the_team_a_plan(env, "owner@example.com")
    twilio.box_url = elevenlabs.box_url = live.base_url
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def alice(http: httpx.Client, server: LiveServer) -> User:
    return make_user(http, server.env, "alice@example.com")


@pytest.fixture(scope="module")
def bob(http: httpx.Client, server: LiveServer) -> User:
    return make_user(http, server.env, "bob@example.com")


def test_calls_outbound_end_to_end_one_record_with_transcript_and_recording(
    alice: User, bob: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    answer, placed = place(alice, twilio)
    assert answer["status"] == "ongoing" and answer["callSid"] == placed.sid
    form = placed.form
    assert form["To"] == CONTACT["phone"] and form["From"] == alice.number and form["Record"] == "true"
    assert form["Url"] == f"https://box.example.com/api/webhooks/twilio/voice?call={answer['id']}"
    assert form["StatusCallback"].startswith("https://box.example.com/api/webhooks/twilio/status?call=")

    [ongoing] = alice.calls()
    assert ongoing["id"] == answer["recordId"]
    assert ongoing["status"] == "ongoing" and ongoing["direction"] == "outbound"
    assert ongoing["contact"] == {"id": "contact-1", "name": "Bob Buyer", "phone": CONTACT["phone"]}
    assert ongoing["phone"]["number"] == alice.number and ongoing["relations"] == {}

    voice = twilio.voice(placed)
    assert voice.status_code == 200 and voice.headers["content-type"].startswith("text/xml")
    assert voice.text == TWIML
    registered = elevenlabs.registered[-1]
    assert registered["agent_id"] == AGENT_ID and registered["direction"] == "outbound"
    assert (registered["from_number"], registered["to_number"]) == (alice.number, CONTACT["phone"])
    initiation = registered["conversation_initiation_client_data"]
    assert initiation["dynamic_variables"]["contact_name"] == "Bob Buyer"
    assert (
        initiation["conversation_config_override"]["agent"]["prompt"]["prompt"]
        == "Offer a demo of the product."
    )
    assert initiation["conversation_config_override"]["tts"] == {"voice_id": VOICE.split("-", 1)[1]}

    finish_call(twilio, placed)
    # Late and repeated callbacks change nothing.
    assert twilio.status(placed, "ringing", 1).status_code == 204
    assert twilio.status(placed, "completed", 3, CallDuration="30").status_code == 204
    recording_sid, recorded = twilio.recording(placed)
    assert recorded.status_code == 204
    assert recording_sid not in twilio.recordings  # deleted at Twilio once stored

    conversation = "conv_" + secrets.token_hex(8)
    el_audio = recording_audio("elevenlabs", 90_000)
    # Audio before the transcription that names its CallSid: kept, matched later.
    assert elevenlabs.send(post_call_audio(conversation, el_audio)).status_code == 200
    assert alice.calls()[0]["status"] == "ongoing"
    assert elevenlabs.send(transcription(conversation, placed.sid)).status_code == 200
    for payload in (transcription(conversation, placed.sid), post_call_audio(conversation, el_audio)):
        assert elevenlabs.send(payload).status_code == 200
    late_sid, late = twilio.recording(placed)
    assert late.status_code == 204 and late_sid not in twilio.recordings  # not needed, still deleted

    [final] = alice.calls()
    assert final["id"] == ongoing["id"]
    assert final["status"] == "completed" and final["notes"] == "Booked a demo"
    assert final["endDate"] >= final["conversationStartDate"] >= final["startDate"]
    transcript = alice.child(final["relations"]["transcription"])
    assert [turn["message"] for turn in transcript["transcript"]] == ["Hello, this is Ada.", "Hi Ada!"]
    assert transcript["analysis"]["transcript_summary"] == "Booked a demo"
    audio = alice.child(final["relations"]["audio"])
    assert audio["mimeType"] == "audio/mpeg" and base64.b64decode(audio["content"]) == el_audio
    related = alice.store.call("GET", f"/objects/{final['id']}/related")
    assert {r["id"] for r in related} == set(final["relations"].values())
    assert bob.calls() == []

    created = read_events(alice, "object_created", f"relatedId={final['id']}", 2)
    assert {e["id"] for e in created} == set(final["relations"].values())
    [updated] = read_events(alice, "object_updated", f"objectId={final['id']}", 1)
    assert updated["key_id"] == alice.store.call("GET", f"/objects/{final['id']}")["key_id"]


def test_calls_recording_larger_than_a_client_may_write_is_stored_and_returned(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    answer, placed = place(alice, twilio)
    assert twilio.voice(placed).status_code == 200
    finish_call(twilio, placed)
    assert elevenlabs.send(transcription("conv_" + secrets.token_hex(8), placed.sid)).status_code == 200
    recording_sid, response = twilio.recording(placed, size=3_000_000)
    assert response.status_code == 204
    record = alice.store.get("calls", answer["recordId"])
    assert record["status"] == "completed"
    audio = alice.child(record["relations"]["audio"])
    assert base64.b64decode(audio["content"]) == recording_audio(recording_sid, 3_000_000)


def test_calls_inbound_with_personalization_from_a_published_contact(
    alice: User, bob: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    caller_phone = "+15551230000"
    contact = bob.store.create(
        "contacts", {"name": "Carol Caller", "phone": caller_phone, "tags": [], "status": "x"}
    )
    bob.store.publish("contacts", contact["id"])
    body = configuration_body(agent=agent(persona=VOICE, firstName="Grace"))
    config_id = bob.caller.ok("PUT", "/inbound-configurations", json=body)["id"]
    bob.caller.ok(
        "POST",
        f"/inbound-configurations/{config_id}",
        json={"action": "attach", "phone_number_id": bob.number_id},
    )
    before_alice = len(alice.calls())

    call = twilio.inbound(caller_phone, bob.number)
    voice = twilio.voice(call)
    recording = (
        '<Start><Recording recordingStatusCallback="https://box.example.com/api/webhooks/twilio/recording"'
        ' recordingStatusCallbackEvent="completed absent" recordingStatusCallbackMethod="POST"/></Start>'
    )
    assert voice.status_code == 200 and voice.text == TWIML.replace("<Response>", "<Response>" + recording)
    registered = elevenlabs.registered[-1]
    assert registered["direction"] == "inbound" and registered["from_number"] == caller_phone
    assert (
        registered["conversation_initiation_client_data"]["dynamic_variables"]["contact_name"]
        == "Carol Caller"
    )
    assert twilio.voice(call).status_code == 200  # a retried voice webhook opens no second call

    personalized = elevenlabs.personalize(
        {"caller_id": caller_phone, "agent_id": AGENT_ID, "called_number": bob.number, "call_sid": call.sid}
    )
    assert personalized.status_code == 200
    assert personalized.json()["type"] == "conversation_initiation_client_data"
    assert personalized.json()["dynamic_variables"]["contact_name"] == "Carol Caller"
    assert personalized.json()["dynamic_variables"]["agent_name"] == "Grace Lovelace"

    finish_call(twilio, call)
    conversation = "conv_" + secrets.token_hex(8)
    assert (
        elevenlabs.send(transcription(conversation, call.sid, summary="Wants a callback")).status_code == 200
    )
    recording_sid, _ = twilio.recording(call)
    [record] = [c for c in bob.calls() if c["direction"] == "inbound"]
    assert record["status"] == "completed" and record["notes"] == "Wants a callback"
    assert record["contact"] == {"id": contact["id"], "name": "Carol Caller", "phone": caller_phone}
    audio = bob.child(record["relations"]["audio"])
    assert base64.b64decode(audio["content"]) == recording_audio(recording_sid, 40_000)
    assert len(alice.calls()) == before_alice


def test_calls_inbound_to_a_number_with_no_configuration_hangs_up_politely(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    registered = len(elevenlabs.registered)
    response = twilio.voice(twilio.inbound("+15550009999", alice.number))
    assert response.status_code == 200 and "<Hangup" in response.text and "<Say" in response.text
    unknown = twilio.voice(twilio.inbound("+15550009999", "+15559999999"))
    assert unknown.status_code == 200 and "<Hangup" in unknown.text
    assert len(elevenlabs.registered) == registered


def test_calls_refuse_forged_and_stale_webhooks(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls, http: httpx.Client
) -> None:
    _, placed = place(alice, twilio)
    before = alice.calls()
    url = placed.form["StatusCallback"]
    params = twilio.call_params(placed, "completed") | {"SequenceNumber": "9"}
    assert_error(twilio.post(url, params, signature="AAAA"), 403, "TWILIO_SIGNATURE_INVALID")
    assert_error(http.post("/api/webhooks/twilio/status", data=params), 403, "TWILIO_SIGNATURE_INVALID")
    wrong_url = url.replace("https://", "http://")
    forged = RequestValidator("not-the-token").compute_signature(url, params)
    assert_error(twilio.post(url, params, signature=forged), 403, "TWILIO_SIGNATURE_INVALID")
    other_url = RequestValidator("twilio-test-token").compute_signature(wrong_url, params)
    assert_error(twilio.post(url, params, signature=other_url), 403, "TWILIO_SIGNATURE_INVALID")

    body = json.dumps(transcription("conv_forged", placed.sid)).encode()
    assert_error(elevenlabs.send(None, raw=body, signature="t=1,v0=00"), 401, "WEBHOOK_SIGNATURE_INVALID")
    wrong = elevenlabs_signature(body, secret="wsec_other")
    assert_error(elevenlabs.send(None, raw=body, signature=wrong), 401, "WEBHOOK_SIGNATURE_INVALID")
    stale = elevenlabs_signature(body, stamp=int(time.time()) - 31 * 60)
    assert_error(elevenlabs.send(None, raw=body, signature=stale), 401, "WEBHOOK_SIGNATURE_INVALID")
    future = elevenlabs_signature(body, stamp=int(time.time()) + 3600)
    assert_error(elevenlabs.send(None, raw=body, signature=future), 401, "WEBHOOK_SIGNATURE_INVALID")
    tampered = elevenlabs_signature(body)
    assert_error(elevenlabs.send(None, raw=body + b" ", signature=tampered), 401, "WEBHOOK_SIGNATURE_INVALID")
    assert_error(http.post("/api/webhooks/elevenlabs", content=body), 401, "WEBHOOK_SIGNATURE_INVALID")
    assert elevenlabs.send({"type": "something_new", "data": {}}).status_code == 200
    assert_error(elevenlabs.send(None, raw=b"{"), 400, "VALIDATION_ERROR")
    conversation = "conv_" + secrets.token_hex(8)
    assert elevenlabs.send(transcription(conversation, placed.sid)).status_code == 200
    bad_audio = {
        "type": "post_call_audio",
        "data": {"conversation_id": conversation, "full_audio": "!!notb64"},
    }
    assert_error(elevenlabs.send(bad_audio), 400, "VALIDATION_ERROR")
    no_sid = {"CallStatus": "completed", "SequenceNumber": "50"}
    assert twilio.post(f"{PUBLIC_URL}/api/webhooks/twilio/status", no_sid).status_code == 204
    before = alice.calls()

    assert_error(
        elevenlabs.personalize({"call_sid": placed.sid}, secret="wrong"), 401, "WEBHOOK_UNAUTHORIZED"
    )
    assert_error(http.post("/api/webhooks/elevenlabs/personalize", json={}), 401, "WEBHOOK_UNAUTHORIZED")
    malformed = http.post(
        "/api/webhooks/elevenlabs/personalize",
        content=b'{"call_sid": 5}',
        headers={"authorization": f"Bearer {PERSONALIZE_SECRET}", "content-type": "application/json"},
    )
    assert_error(malformed, 400, "VALIDATION_ERROR")
    assert alice.calls() == before


def test_calls_session_call_refusals_place_nothing(
    alice: User, bob: User, twilio: FakeTwilioCalls, http: httpx.Client, server: LiveServer
) -> None:
    placed = len(twilio.placed)
    token = alice.jwt(prompt_payload())
    assert alice.call(token).status_code == 201
    assert_error(alice.call(token), 401, "JWT_REUSED")
    placed += 1
    # Signed by another user's key, or claimed for another user.
    assert_error(alice.call(bob.jwt(prompt_payload())), 401, "JWT_INVALID")
    assert_error(bob.call(alice.jwt(prompt_payload())), 401, "JWT_INVALID")
    assert_error(alice.call(alice.jwt(prompt_payload(), lifetime=-1000)), 401, "JWT_INVALID")
    now = int(time.time())
    expired = sign(
        alice.store.private["default"],
        {
            "data": envelope(alice.store.remote[alice.store.current], prompt_payload()),
            "iat": now - 900,
            "exp": now - 300,
        },
    )
    assert_error(alice.call(expired), 401, "JWT_EXPIRED")
    # An envelope sealed for another server than the box's.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sealed_elsewhere = sign(
        alice.store.private["default"],
        {"data": envelope(other.public_key(), prompt_payload()), "iat": now, "exp": now + 600},
    )
    assert_error(alice.call(sealed_elsewhere), 400, "VALIDATION_ERROR")
    assert_error(alice.call(alice.jwt(prompt_payload(contact={"phone": "555"}))), 400, "VALIDATION_ERROR")
    assert_error(alice.call(alice.jwt(prompt_payload(prompt=""))), 400, "VALIDATION_ERROR")
    assert_error(alice.call(alice.jwt(prompt_payload(agent=agent()))), 422, "PERSONA_UNSUPPORTED")
    assert_error(alice.call(alice.jwt(prompt_payload()), server="nosuch"), 404, "NOT_FOUND")
    assert_error(
        alice.caller.request("POST", "/session/call", json={"jwt": "x", "server": "default", "extra": 1}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        alice.caller.request(
            "POST", "/session/call", content=b"{", headers={"content-type": "application/json"}
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(http.post("/api/session/call", json={"jwt": "x", "server": "default"}), 401, "UNAUTHORIZED")
    huge = {"jwt": "x" * 2_000_000, "server": "default"}
    assert_error(alice.caller.request("POST", "/session/call", json=huge), 413, "PAYLOAD_TOO_LARGE")
    assert_error(
        alice.caller.request("POST", "/session/call", json={"jwt": 1, "server": "default"}),
        400,
        "VALIDATION_ERROR",
    )
    carol = make_user(http, server.env, "carol@example.com", buy=False)
    assert_error(carol.call(carol.jwt(prompt_payload())), 409, "NO_USABLE_NUMBER")
    assert len(twilio.placed) == placed


def test_calls_kill_mid_call_then_restart_ends_final(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls, server: LiveServer
) -> None:
    answer, placed = place(alice, twilio)
    assert twilio.voice(placed).status_code == 200
    assert twilio.status(placed, "in-progress", 2).status_code == 204
    server.kill()
    server.start()
    assert twilio.status(placed, "completed", 3, CallDuration="41").status_code == 204
    assert elevenlabs.send(transcription("conv_" + secrets.token_hex(8), placed.sid)).status_code == 200
    server.kill()
    server.start()
    twilio.recording(placed)
    record = alice.store.get("calls", answer["recordId"])
    assert record["status"] == "completed" and set(record["relations"]) == {"transcription", "audio"}
    usage = alice.caller.ok("GET", "/calls/usage")
    assert usage["outbound"]["calls"] >= 1 and usage["outbound"]["seconds"] >= 41


def test_calls_callbacks_out_of_order_and_unanswered_calls_end_missed(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    answer, placed = place(alice, twilio)
    personalized = elevenlabs.personalize({"call_sid": placed.sid, "caller_id": alice.number})
    assert personalized.json()["dynamic_variables"]["contact_name"] == "Bob Buyer"
    assert twilio.status(placed, "no-answer", 2).status_code == 204
    assert twilio.status(placed, "ringing", 1).status_code == 204
    assert twilio.status(placed, "initiated", 0).status_code == 204
    record = alice.store.get("calls", answer["recordId"])
    assert record["status"] == "missed" and record["stage"] == "no-answer" and record["relations"] == {}
    # Final: what the box held about the call is gone, so personalization knows nothing.
    assert elevenlabs.personalize({"call_sid": placed.sid}).json()["dynamic_variables"] == {}

    answer, placed = place(alice, twilio)
    failure = {
        "type": "call_initiation_failure",
        "data": {
            "agent_id": AGENT_ID,
            "conversation_id": "conv_" + secrets.token_hex(8),
            "failure_reason": "busy",
            "metadata": {"type": "twilio", "body": {"CallSid": placed.sid, "CallStatus": "busy"}},
        },
    }
    for _ in range(2):
        assert elevenlabs.send(failure).status_code == 200
    assert alice.store.get("calls", answer["recordId"])["status"] == "missed"
    assert twilio.status(placed, "busy", 5).status_code == 204
    assert alice.store.get("calls", answer["recordId"])["status"] == "missed"


def test_calls_a_machine_reported_on_the_voice_webhook_ends_as_voicemail(
    alice: User, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    # Synchronous answering-machine detection says who answered on the request for TwiML;
    # the status callbacks need not repeat it.
    answer, placed = place(alice, twilio)
    assert twilio.voice(placed, AnsweredBy="machine_end_beep").status_code == 200
    finish_call(twilio, placed, 20)
    conversation = "conv_" + secrets.token_hex(8)
    assert elevenlabs.send(transcription(conversation, placed.sid)).status_code == 200
    assert twilio.recording(placed)[1].status_code == 204
    assert alice.store.get("calls", answer["recordId"])["status"] == "voicemail"

    answer, placed = place(alice, twilio)
    assert twilio.voice(placed, AnsweredBy="human").status_code == 200
    finish_call(twilio, placed, 20)
    conversation = "conv_" + secrets.token_hex(8)
    assert elevenlabs.send(transcription(conversation, placed.sid)).status_code == 200
    assert twilio.recording(placed)[1].status_code == 204
    assert alice.store.get("calls", answer["recordId"])["status"] == "completed"


def test_calls_concurrency_limit_places_nothing(
    http: httpx.Client, server: LiveServer, twilio: FakeTwilioCalls
) -> None:
    dave = make_user(http, server.env, "dave@example.com")
    for _ in range(3):
        place(dave, twilio)
    placed = len(twilio.placed)
    assert_error(dave.call(dave.jwt(prompt_payload())), 429, "CALL_LIMIT_REACHED")
    assert len(twilio.placed) == placed
    assert len(dave.calls()) == 3


def test_calls_usage_counts_per_period(alice: User, bob: User) -> None:
    usage = alice.caller.ok("GET", "/calls/usage")
    assert usage["outbound"]["calls"] >= 1 and usage["outbound"]["seconds"] >= 30
    assert set(usage) == {"period", "start", "end", "inbound", "outbound"}
    empty = alice.caller.ok("GET", "/calls/usage", params={"period": "2001-01"})
    assert empty["outbound"] == {"calls": 0, "seconds": 0} and empty["start"].startswith("2001-01-01")
    assert bob.caller.ok("GET", "/calls/usage")["inbound"]["calls"] >= 1
    assert_error(
        alice.caller.request("GET", "/calls/usage", params={"period": "2001-13"}), 400, "VALIDATION_ERROR"
    )


def test_calls_count_against_the_plan_and_are_refused_without_plan_or_balance(
    server: LiveServer, twilio: FakeTwilioCalls, alice: User
) -> None:
    # The calls finished above are the team's usage in the billing state.
    state = alice.caller.ok("GET", "/billing/state")
    assert state["plan"]["key"] == "starter"
    assert state["usage"]["calls_outbound"] >= 1 and state["usage"]["seconds_outbound"] >= 30
    assert state["usage"]["calls_inbound"] >= 1
    give_the_team_a_plan(server.env, "owner@example.com", "none")
    try:
        placed = len(twilio.placed)
        calls = len(alice.calls())
        assert_error(alice.call(alice.jwt(prompt_payload())), 402, "INSUFFICIENT_CREDITS")
        assert len(twilio.placed) == placed and len(alice.calls()) == calls
    finally:
        give_the_team_a_plan(server.env, "owner@example.com")


def test_calls_routes_are_in_the_openapi_schema(http: httpx.Client) -> None:
    paths = http.get("/api/schema/openapi.json").json()["paths"]
    expected = {
        "/api/session/call": {"post"},
        "/api/calls/usage": {"get"},
        "/api/webhooks/twilio/voice": {"post"},
        "/api/webhooks/twilio/status": {"post"},
        "/api/webhooks/twilio/recording": {"post"},
        "/api/webhooks/elevenlabs": {"post"},
        "/api/webhooks/elevenlabs/personalize": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        assert all(paths[path][m]["summary"] for m in methods)


def in_process_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {"TELENTIR_BOX_DATA__DIR": str(tmp_path / "data"), "TELENTIR_BOX_LOG__FORMAT": "text"}
    return env | {f"TELENTIR_BOX_{name.upper()}": value for name, value in settings.items()}


def test_calls_unconfigured_providers_answer_503_and_webhooks_are_refused(tmp_path: Path) -> None:
    env = in_process_env(tmp_path)
    with TestClient(create_app(load_config(environ=env))) as app:
        user = Caller(
            app, create_user(env, "eve@example.com", "--phone-verified", "--api-key", "k")["api_key"], ""
        )
        body = {"jwt": "x", "server": "default"}
        assert_error(user.request("POST", "/session/call", json=body), 503, "TWILIO_NOT_CONFIGURED")
        signed = {"x-twilio-signature": "AAAA"}
        response = app.post("/api/webhooks/twilio/voice", data={"CallSid": "CA1"}, headers=signed)
        assert_error(response, 403, "TWILIO_SIGNATURE_INVALID")
        response = app.post(
            "/api/webhooks/elevenlabs", content=b"{}", headers={"elevenlabs-signature": "t=1,v0=0"}
        )
        assert_error(response, 503, "ELEVENLABS_WEBHOOK_NOT_CONFIGURED")
        response = app.post(
            "/api/webhooks/elevenlabs/personalize", json={}, headers={"x-webhook-secret": "x"}
        )
        assert_error(response, 503, "PERSONALIZE_NOT_CONFIGURED")


def test_calls_sweep_makes_stale_calls_final_and_drops_unmatched_webhooks(
    tmp_path: Path, twilio: FakeTwilioCalls, elevenlabs: FakeElevenLabsCalls
) -> None:
    env = in_process_env(
        tmp_path,
        server__public_url="https://box.example.com",
        twilio__account_sid=ACCOUNT_SID,
        twilio__auth_token=AUTH_TOKEN,
        twilio__api_base=twilio.url,
        elevenlabs__api_key=elevenlabs.api_key,
        elevenlabs__api_base=elevenlabs.url,
        elevenlabs__agent_id=AGENT_ID,
        elevenlabs__webhook_secret=WEBHOOK_SECRET,
        elevenlabs__max_webhook_bytes="2048",
    )
    with TestClient(create_app(load_config(environ=env))) as app:
        large = json.dumps(post_call_audio("conv_large", b"\xff" * 4096)).encode()
        response = app.post(
            "/api/webhooks/elevenlabs",
            content=large,
            headers={"elevenlabs-signature": elevenlabs_signature(large)},
        )
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        caller = Caller(
            app, create_user(env, "sweep@example.com", "--phone-verified", "--api-key", "k")["api_key"], ""
        )
        give_the_team_a_plan(env, "sweep@example.com")
        store = StoreClient(app, caller.key)
        store.connect()
        user = User(caller, store)
        caller.buy()
        answer = user.call(user.jwt(prompt_payload())).json()
        audio = json.dumps(post_call_audio("conv_never_matched", b"\xff\xfb" * 10)).encode()
        response = app.post(
            "/api/webhooks/elevenlabs",
            content=audio,
            headers={"elevenlabs-signature": elevenlabs_signature(audio)},
        )
        assert response.status_code == 200
        box = app.app.state.box
        app.blocking_portal.call(box.voice.sweep, datetime.now(UTC))
        assert store.get("calls", answer["recordId"])["status"] == "ongoing"
        app.blocking_portal.call(box.voice.sweep, datetime.now(UTC) + timedelta(days=1))
        record = store.get("calls", answer["recordId"])
        assert record["status"] == "missed" and "endDate" in record

        async def waiting() -> int:
            async with box.db.reading() as conn:
                return len(await conn.execute_fetchall("SELECT 1 FROM call_webhooks_waiting"))

        assert app.blocking_portal.call(waiting) == 0
