"""Local stand-ins for Twilio and ElevenLabs (`telentir-box demo-telephony`), for
development like demo-connector: with the box's [twilio] api_base and [elevenlabs]
api_base pointed here, numbers can be bought, a session call placed, or an inbound
call simulated (POST /demo/inbound {"from", "to"}), and each call runs through every
webhook the box receives, signed as the real senders sign, to a finished call with a
transcript and a recording in the user's calls store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from twilio.request_validator import RequestValidator

from telentir_box.config import Config

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger("telentir_box.demo")
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://demo.invalid/agent"/></Connect></Response>'
VOICES = [{"voice_id": "demoVoice01", "name": "Demo", "category": "premade", "labels": {"gender": "female"}}]
_ACCOUNT = r"/2010-04-01/Accounts/(AC\w+)"


def demo_audio(seed: str, size: int = 32_000) -> bytes:
    """MP3-looking bytes (a frame header, then filler tied to `seed`)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return b"\xff\xfb\x90\x64" + (digest * (size // len(digest) + 1))[:size]


@dataclass
class DemoTelephony:
    """`box_url`: where the box listens (webhooks go there); `public_url`, `auth_token`
    and `webhook_secret`: what the box checks signatures against (its own config)."""

    box_url: str
    public_url: str
    auth_token: str
    webhook_secret: str
    step_seconds: float = 0.2
    numbers: dict[str, dict[str, str]] = field(default_factory=dict)
    recordings: dict[str, bytes] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, content_type = self.route(scope["method"], scope["path"], body)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
        )
        await send({"type": "http.response.body", "body": raw})

    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any, bytes]:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        json_type, audio_type, xml_type = b"application/json", b"audio/mpeg", b"text/xml"
        if m := re.fullmatch(_ACCOUNT + r"/Calls\.json", path):
            sid = "CA" + secrets.token_hex(16)
            self.spawn(self.outbound_life(sid, form))
            return 201, {"sid": sid, "account_sid": m[1], "status": "queued", "to": form.get("To")}, json_type
        if re.fullmatch(_ACCOUNT + r"/IncomingPhoneNumbers\.json", path) and method == "POST":
            sid = "PN" + secrets.token_hex(16)
            self.numbers[sid] = form
            capabilities = {"voice": True, "sms": True, "mms": False}
            number = form.get("PhoneNumber", "")
            return (
                201,
                {"sid": sid, "phone_number": number, "friendly_name": number, "capabilities": capabilities},
                json_type,
            )
        if re.fullmatch(_ACCOUNT + r"/IncomingPhoneNumbers/PN\w+\.json", path):
            return 204, b"", json_type
        if re.fullmatch(_ACCOUNT + r"/AvailablePhoneNumbers\.json", path):
            uris = {"local": "/local"}
            return (
                200,
                {"countries": [{"country_code": "US", "country": "United States", "subresource_uris": uris}]},
                json_type,
            )
        if re.fullmatch(_ACCOUNT + r"/AvailablePhoneNumbers/US/Local\.json", path):
            return 200, {"available_phone_numbers": self.available(), "next_page_uri": None}, json_type
        if path == "/v1/PhoneNumbers/Countries/US":
            prices = [{"number_type": "local", "base_price": "1.15", "current_price": "1.15"}]
            return (
                200,
                {
                    "country": "United States",
                    "iso_country": "US",
                    "price_unit": "USD",
                    "phone_number_prices": prices,
                },
                json_type,
            )
        if m := re.fullmatch(_ACCOUNT + r"/Recordings/(RE\w+)\.mp3", path):
            audio = self.recordings.get(m[2])
            return (200, audio, audio_type) if audio is not None else (404, {"code": 20404}, json_type)
        if m := re.fullmatch(_ACCOUNT + r"/Recordings/(RE\w+)\.json", path):
            return (
                (204, b"", json_type) if self.recordings.pop(m[2], None) is not None else (404, {}, json_type)
            )
        if path == "/v1/voices":
            return 200, {"voices": VOICES}, json_type
        if path.startswith("/v1/text-to-speech/"):
            return 200, demo_audio(path), audio_type
        if path == "/v1/convai/twilio/register-call":
            return 200, TWIML.encode(), xml_type
        if path == "/demo/inbound" and method == "POST":
            request = json.loads(body or b"{}")
            sid = "CA" + secrets.token_hex(16)
            self.spawn(
                self.inbound_life(sid, str(request.get("from", "+15550001234")), str(request.get("to", "")))
            )
            return 202, {"callSid": sid}, json_type
        if path == "/health":
            return 200, {"status": "ok"}, json_type
        return 404, {"code": 20404, "message": f"no route {path}"}, json_type

    def available(self) -> list[dict[str, Any]]:
        owned = {n.get("PhoneNumber") for n in self.numbers.values()}
        numbers = [f"+1555010{n:04d}" for n in range(50) if f"+1555010{n:04d}" not in owned][:5]
        capabilities = {"voice": True, "SMS": True, "MMS": False}
        return [
            {"friendly_name": n, "phone_number": n, "capabilities": capabilities, "iso_country": "US"}
            for n in numbers
        ]

    def spawn(self, life: Awaitable[None]) -> None:
        task = asyncio.ensure_future(life)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def outbound_life(self, sid: str, form: dict[str, str]) -> None:
        params = {
            "CallSid": sid,
            "From": form.get("From", ""),
            "To": form.get("To", ""),
            "Direction": "outbound-api",
        }
        await self.life(
            sid,
            params,
            form.get("Url", ""),
            form.get("StatusCallback", ""),
            form.get("RecordingStatusCallback", ""),
        )

    async def inbound_life(self, sid: str, caller: str, called: str) -> None:
        base = self.public_url.rstrip("/") + "/api/webhooks/twilio"
        params = {"CallSid": sid, "From": caller, "To": called, "Direction": "inbound"}
        await self.life(sid, params, base + "/voice", base + "/status", base + "/recording")

    async def life(self, sid: str, params: dict[str, str], voice: str, status: str, recording: str) -> None:
        """Twilio's and ElevenLabs' callbacks for one answered call, in a real order."""
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                await asyncio.sleep(self.step_seconds)
                await self.twilio(http, voice, params | {"CallStatus": "ringing"})
                for sequence, state in enumerate(["initiated", "ringing", "in-progress"]):
                    await self.twilio(
                        http, status, params | {"CallStatus": state, "SequenceNumber": str(sequence)}
                    )
                await asyncio.sleep(self.step_seconds)
                done = {"CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "42"}
                await self.twilio(http, status, params | done)
                conversation = "conv_" + secrets.token_hex(8)
                await self.elevenlabs(http, transcription(conversation, sid))
                await self.elevenlabs(http, audio_event(conversation, demo_audio(conversation)))
                recording_sid = "RE" + secrets.token_hex(16)
                self.recordings[recording_sid] = demo_audio(recording_sid)
                account = "/2010-04-01/Accounts/AC" + "0" * 32
                await self.twilio(
                    http,
                    recording,
                    {
                        "CallSid": sid,
                        "RecordingSid": recording_sid,
                        "RecordingUrl": f"https://api.twilio.com{account}/Recordings/{recording_sid}",
                        "RecordingStatus": "completed",
                        "RecordingDuration": "42",
                    },
                )
            self.finished.append(sid)
        except Exception:
            log.exception("demo call failed", extra={"call_sid": sid})

    async def twilio(self, http: httpx.AsyncClient, url: str, params: dict[str, str]) -> httpx.Response:
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        response = await http.post(self.local(url), data=params, headers={"x-twilio-signature": signature})
        log.info("twilio webhook", extra={"url": url, "status": response.status_code})
        return response

    async def elevenlabs(self, http: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        stamp = int(time.time())
        mac = hmac.new(self.webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json", "elevenlabs-signature": f"t={stamp},v0={mac}"}
        response = await http.post(
            self.box_url.rstrip("/") + "/api/webhooks/elevenlabs", content=body, headers=headers
        )
        log.info("elevenlabs webhook", extra={"type": payload["type"], "status": response.status_code})
        return response

    def local(self, public: str) -> str:
        """The box's loopback address for a URL it gave as public (as a proxy would)."""
        prefix = self.public_url.rstrip("/")
        return self.box_url.rstrip("/") + public[len(prefix) :] if public.startswith(prefix) else public


def transcription(conversation: str, sid: str) -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "demo-agent",
            "conversation_id": conversation,
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hello! This is the demo agent.", "time_in_call_secs": 0},
                {"role": "user", "message": "Hi, please call me back tomorrow.", "time_in_call_secs": 3},
            ],
            "metadata": {
                "start_time_unix_secs": int(time.time()) - 42,
                "call_duration_secs": 42,
                "phone_call": {"type": "twilio", "call_sid": sid},
            },
            "analysis": {
                "call_successful": "success",
                "transcript_summary": "The caller asked for a callback.",
            },
        },
    }


def audio_event(conversation: str, audio: bytes) -> dict[str, Any]:
    data = {
        "agent_id": "demo-agent",
        "conversation_id": conversation,
        "full_audio": base64.b64encode(audio).decode(),
    }
    return {"type": "post_call_audio", "event_timestamp": int(time.time()), "data": data}


def build_demo(config: Config, box_url: str) -> DemoTelephony:
    return DemoTelephony(
        box_url=box_url,
        public_url=config.server.public_url or box_url,
        auth_token=config.twilio.auth_token,
        webhook_secret=config.elevenlabs.webhook_secret,
    )


def run_demo_telephony(config: Config, host: str, port: int, box_url: str) -> int:
    uvicorn.run(build_demo(config, box_url), host=host, port=port, log_level="warning", lifespan="off")
    return 0
