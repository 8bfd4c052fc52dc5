"""Real local stand-ins for Twilio and ElevenLabs in call tests: Twilio answers the
box's calls.create and serves and deletes recordings, then plays a call's life by
posting the box's voice, status and recording webhooks signed with the twilio
library's RequestValidator; ElevenLabs answers register-call with TwiML and sends the
post-call webhooks signed with its HMAC. Both reach the box at the public URL it gave
them, rewritten to the box's loopback address (as a reverse proxy would)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from tests.connect_fakes import Recorded
from tests.telephony_support import ACCOUNT, ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio, twilio_error
from tests.voice_fakes import FakeElevenLabs, _send, _send_json

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://el.example/s"/></Connect></Response>'
WEBHOOK_SECRET = "wsec_test_secret"
PERSONALIZE_SECRET = "personalize-test-secret"
AGENT_ID = "agent_test_1"


def recording_audio(sid: str, size: int = 40_000) -> bytes:
    """An MP3-looking payload tied to its recording."""
    seed = hashlib.sha256(sid.encode()).digest()
    return b"\xff\xfb\x90\x64" + (seed * (size // len(seed) + 1))[:size]


@dataclass
class PlacedCall:
    sid: str
    form: dict[str, str]


@dataclass
class FakeTwilioCalls(FakeTwilio):
    box_url: str = ""
    placed: list[PlacedCall] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)
    refuse_calls: bool = False

    def _route(self, method: str, path: str, request: Recorded) -> tuple[int, Any]:
        if method == "POST" and path == f"{ACCOUNT}/Calls.json":
            return self._create_call(request.form())
        if method == "DELETE" and (m := re.fullmatch(rf"{ACCOUNT}/Recordings/(RE\w+)\.json", path)):
            return (
                (204, None)
                if self.recordings.pop(m[1], None) is not None
                else (404, twilio_error(404, 20404, "x"))
            )
        return super()._route(method, path, request)

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        path = urlsplit(request.path).path
        if request.method == "GET" and (m := re.fullmatch(rf"{ACCOUNT}/Recordings/(RE\w+)\.mp3", path)):
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            audio = self.recordings.get(m[1])
            if request.headers.get("authorization") != expected or audio is None:
                _send_json(handler, 404 if audio is None else 401, {"code": 20404})
            else:
                _send(handler, 200, audio, "audio/mpeg")
            return
        super()._handle(handler, request)

    def _create_call(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.refuse_calls:
            return 400, twilio_error(400, 21211, "The 'To' number is not a valid phone number.")
        if not form.get("To") or not form.get("From") or not form.get("Url"):
            return 400, twilio_error(400, 21205, "Url parameter is required.")
        sid = "CA" + secrets.token_hex(16)
        self.placed.append(PlacedCall(sid, form))
        return 201, {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"]}

    # ---- Twilio calling the box ------------------------------------------------------

    def post(self, url: str, params: dict[str, str], *, signature: str | None = None) -> httpx.Response:
        """POST `params` to the box's webhook `url` (a public URL), signed as Twilio signs."""
        if signature is None:
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        local = self.box_url + url[len(PUBLIC_URL) :]
        return httpx.post(local, data=params, headers={"x-twilio-signature": signature}, timeout=30)

    def voice(self, call: PlacedCall, **extra: str) -> httpx.Response:
        return self.post(call.form["Url"], self.call_params(call, "in-progress") | extra)

    def status(self, call: PlacedCall, status: str, sequence: int, **extra: str) -> httpx.Response:
        params = self.call_params(call, status) | {"SequenceNumber": str(sequence), **extra}
        return self.post(call.form["StatusCallback"], params)

    def recording(self, call: PlacedCall, size: int = 40_000) -> tuple[str, httpx.Response]:
        recording_sid = "RE" + secrets.token_hex(16)
        self.recordings[recording_sid] = recording_audio(recording_sid, size)
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": f"https://api.twilio.com{ACCOUNT}/Recordings/{recording_sid}",
            "RecordingStatus": "completed",
            "RecordingDuration": "12",
            "RecordingChannels": "1",
            "RecordingSource": "OutboundAPI",
        }
        return recording_sid, self.post(call.form["RecordingStatusCallback"], params)

    @staticmethod
    def call_params(call: PlacedCall, status: str) -> dict[str, str]:
        return {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "Direction": call.form.get("Direction", "outbound-api"),
            "From": call.form["From"],
            "To": call.form["To"],
        }

    def inbound(self, caller: str, called: str) -> PlacedCall:
        """A call to one of the box's numbers: Twilio's side of it, to drive with voice()."""
        sid = "CA" + secrets.token_hex(16)
        base = PUBLIC_URL + "/api/webhooks/twilio"
        form = {
            "To": called,
            "From": caller,
            "Direction": "inbound",
            "Url": base + "/voice",
            "StatusCallback": base + "/status",
            "RecordingStatusCallback": base + "/recording",
        }
        return PlacedCall(sid, form)


def elevenlabs_signature(body: bytes, secret: str = WEBHOOK_SECRET, stamp: int | None = None) -> str:
    stamp = int(time.time()) if stamp is None else stamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v0={mac}"


@dataclass
class FakeElevenLabsCalls(FakeElevenLabs):
    box_url: str = ""
    registered: list[dict[str, Any]] = field(default_factory=list)

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        if request.method == "POST" and urlsplit(request.path).path == "/v1/convai/twilio/register-call":
            if self.down or request.headers.get("xi-api-key") != self.api_key:
                _send_json(handler, 503 if self.down else 401, {"detail": "no"})
                return
            body = request.json()
            if not body.get("agent_id") or not body.get("from_number") or not body.get("to_number"):
                _send_json(handler, 422, {"detail": [{"loc": ["body", "agent_id"], "msg": "field required"}]})
                return
            self.registered.append(body)
            _send(handler, 200, TWIML.encode(), "text/xml")
            return
        super()._handle(handler, request)

    def env(self) -> dict[str, str]:
        """The box's [elevenlabs] settings pointing at this fake, as the environment gives them."""
        return {
            "TELENTIR_BOX_ELEVENLABS__API_KEY": self.api_key,
            "TELENTIR_BOX_ELEVENLABS__API_BASE": self.url,
            "TELENTIR_BOX_ELEVENLABS__AGENT_ID": AGENT_ID,
            "TELENTIR_BOX_ELEVENLABS__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELENTIR_BOX_ELEVENLABS__PERSONALIZE_SECRET": PERSONALIZE_SECRET,
        }

    # ---- ElevenLabs calling the box --------------------------------------------------

    def send(self, payload: Any, *, signature: str | None = None, raw: bytes | None = None) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        headers["elevenlabs-signature"] = signature if signature is not None else elevenlabs_signature(body)
        return httpx.post(
            self.box_url + "/api/webhooks/elevenlabs", content=body, headers=headers, timeout=60
        )

    def personalize(self, body: dict[str, Any], secret: str = PERSONALIZE_SECRET) -> httpx.Response:
        return httpx.post(
            self.box_url + "/api/webhooks/elevenlabs/personalize",
            json=body,
            headers={"x-webhook-secret": secret},
            timeout=30,
        )


def transcription(
    conversation_id: str,
    call_sid: str,
    *,
    summary: str = "Booked a demo",
    successful: str = "success",
    collected: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """ElevenLabs' post_call_transcription: `successful` is the analysis' verdict,
    `collected` its data collection results, `meta` goes into metadata.phone_call."""
    analysis: dict[str, Any] = {"call_successful": successful, "transcript_summary": summary}
    if collected is not None:
        analysis["data_collection_results"] = collected
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": AGENT_ID,
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hello, this is Ada.", "time_in_call_secs": 0},
                {"role": "user", "message": "Hi Ada!", "time_in_call_secs": 2},
            ],
            "metadata": {
                "start_time_unix_secs": int(time.time()) - 30,
                "call_duration_secs": 30,
                "termination_reason": "end_call tool",
                "phone_call": {"type": "twilio", "direction": "outbound", "call_sid": call_sid, **meta},
            },
            "analysis": analysis,
        },
    }


def post_call_audio(conversation_id: str, audio: bytes) -> dict[str, Any]:
    return {
        "type": "post_call_audio",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": AGENT_ID,
            "conversation_id": conversation_id,
            "full_audio": base64.b64encode(audio).decode(),
        },
    }


def form_values(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.body.decode(), keep_blank_values=True)
