"""Real local HTTP servers that play ElevenLabs (voices, text-to-speech) and OpenAI
(text-to-speech) as providers.md 2 and 3 record them: they check the auth header and
the fields the real API requires, answer in its shapes, and record every request."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.connect_fakes import Recorded, _FakeService, _Server

OPENAI_VOICES = {
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
}


def audio_for(who: str, text: str) -> bytes:
    """The bytes a fake answers for `text` in `who`'s voice: an MP3 frame header and
    something that ties them to the request."""
    return b"\xff\xfb\x90\x64" + f"{who}:{text}".encode() + bytes(range(256)) * 4


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    _send(handler, status, json.dumps(payload).encode(), "application/json")


def elevenlabs_voice(voice_id: str, name: str, **labels: str) -> dict[str, Any]:
    return {
        "voice_id": voice_id,
        "name": name,
        "category": "premade",
        "labels": labels,
        "description": None,
        "preview_url": f"https://storage.example/{voice_id}/preview.mp3",
        "samples": None,
        "settings": None,
    }


@dataclass
class FakeElevenLabs(_FakeService):
    """`down` answers 503 to everything, as an outage would."""

    api_key: str = "xi-test-key"
    voices: list[dict[str, Any]] = field(
        default_factory=lambda: [
            elevenlabs_voice(
                "21m00Tcm4TlvDq8ikWAM", "Rachel", accent="american", gender="female", age="young"
            ),
            elevenlabs_voice("JBFqnCBsd6RMkjVDRZzb", "George", accent="british", gender="male"),
        ]
    )
    down: bool = False
    server: _Server | None = None

    def tts_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/v1/text-to-speech/")]

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        if self.down:
            _send_json(handler, 503, {"detail": {"status": "service_unavailable", "message": "down"}})
            return
        if request.headers.get("xi-api-key") != self.api_key:
            _send_json(handler, 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
            return
        url = urllib.parse.urlsplit(request.path)
        ids = {voice["voice_id"] for voice in self.voices}
        if request.method == "GET" and url.path == "/v1/voices":
            _send_json(handler, 200, {"voices": self.voices})
        elif request.method == "POST" and url.path.startswith("/v1/text-to-speech/"):
            voice_id = url.path.rsplit("/", 1)[1]
            body = request.json()
            if voice_id not in ids:
                _send_json(handler, 404, {"detail": {"status": "voice_not_found", "message": "no voice"}})
            elif not body.get("text") or "output_format" not in urllib.parse.parse_qs(url.query):
                _send_json(handler, 422, {"detail": [{"loc": ["body", "text"], "msg": "field required"}]})
            else:
                _send(handler, 200, audio_for(voice_id, body["text"]), "audio/mpeg")
        else:
            _send_json(handler, 404, {"detail": "Not Found"})


@dataclass
class FakeOpenAI(_FakeService):
    api_key: str = "sk-test-openai"
    server: _Server | None = None

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            _send_json(
                handler, 401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
            )
            return
        if request.method != "POST" or request.path != "/v1/audio/speech":
            _send_json(handler, 404, {"error": {"message": "Unknown URL", "type": "invalid_request_error"}})
            return
        body = request.json()
        if body.get("voice") not in OPENAI_VOICES or not body.get("input") or not body.get("model"):
            error = {"message": "Invalid voice", "type": "invalid_request_error", "param": "voice"}
            _send_json(handler, 400, {"error": error})
            return
        _send(handler, 200, audio_for(body["voice"], body["input"]), "audio/mpeg")
