"""The one ElevenLabs client (providers.md 2): its URLs, `xi-api-key` auth and JSON,
over the box's shared httpx client, from the [elevenlabs] config section."""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
import msgspec

from telentir_box.config import ElevenLabsConfig
from telentir_box.errors import ServiceUnavailable, UpstreamFailed

log = logging.getLogger("telentir_box.elevenlabs")
VOICE_ID = r"^[A-Za-z0-9_-]{1,64}$"
# The catalog should not wait long for a list; speech takes longer to make.
VOICE_LIST_TIMEOUT_SECONDS = 10.0
TTS_TIMEOUT_SECONDS = 30.0
# Twilio waits about 15 s for the voice webhook's TwiML; answer it before then.
REGISTER_CALL_TIMEOUT_SECONDS = 8.0
# A preview is a sentence: past this the answer is not the audio asked for.
MAX_AUDIO_BYTES = 8 * 1024 * 1024


class ElevenLabsNotConfigured(ServiceUnavailable):
    code, default_message = (
        "ELEVENLABS_NOT_CONFIGURED",
        "ElevenLabs is not configured: set [elevenlabs] api_key",
    )


class Voice(msgspec.Struct, frozen=True):
    """A voice as GET /v1/voices lists it; only `voice_id` is sure to be there."""

    voice_id: Annotated[str, msgspec.Meta(pattern=VOICE_ID)]
    name: str | None = None
    category: str | None = None
    description: str | None = None
    labels: dict[str, str | None] | None = None
    preview_url: str | None = None


class _VoiceList(msgspec.Struct):
    voices: list[msgspec.Raw]


class ElevenLabs:
    def __init__(self, config: ElevenLabsConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._base = config.api_base.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self._config.api_key)

    @property
    def agent_id(self) -> str:
        return self._config.agent_id

    async def list_voices(self) -> list[Voice]:
        """Every voice of the account; a voice the box cannot use (an id unfit for a
        path, a malformed entry) is left out rather than failing the list."""
        response = await self._send("GET", "/v1/voices", timeout_seconds=VOICE_LIST_TIMEOUT_SECONDS)
        try:
            listed = msgspec.json.decode(response.content, type=_VoiceList)
        except msgspec.DecodeError:
            raise UpstreamFailed("ElevenLabs answered the voice list with something else") from None
        voices = []
        for raw in listed.voices:
            try:
                voices.append(msgspec.json.decode(raw, type=Voice))
            except msgspec.DecodeError:
                continue
        return voices

    async def text_to_speech(self, voice_id: str, text: str) -> bytes:
        """`text` spoken by `voice_id`, as audio in [elevenlabs] tts_output_format."""
        response = await self._send(
            "POST",
            f"/v1/text-to-speech/{voice_id}",
            params={"output_format": self._config.tts_output_format},
            json={"text": text, "model_id": self._config.tts_model},
        )
        if not response.content or len(response.content) > MAX_AUDIO_BYTES:
            raise UpstreamFailed("ElevenLabs answered without usable audio")
        return response.content

    async def register_call(
        self,
        *,
        from_number: str,
        to_number: str,
        direction: str,
        client_data: dict[str, object],
    ) -> str:
        """Hand a Twilio call to the [elevenlabs] agent (providers.md 2.3): answers the
        TwiML to give Twilio, as ElevenLabs wrote it."""
        if not self._config.agent_id:
            raise ElevenLabsNotConfigured("ElevenLabs is not configured: set [elevenlabs] agent_id")
        response = await self._send(
            "POST",
            "/v1/convai/twilio/register-call",
            json={
                "agent_id": self._config.agent_id,
                "from_number": from_number,
                "to_number": to_number,
                "direction": direction,
                "conversation_initiation_client_data": client_data,
            },
            timeout_seconds=REGISTER_CALL_TIMEOUT_SECONDS,
        )
        if "<Response" not in response.text:
            raise UpstreamFailed("ElevenLabs answered register-call without TwiML")
        return response.text

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: object = None,
        timeout_seconds: float = TTS_TIMEOUT_SECONDS,
    ) -> httpx.Response:
        if not self.configured:
            raise ElevenLabsNotConfigured()
        try:
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                json=json,
                timeout=timeout_seconds,
                headers={"xi-api-key": self._config.api_key},
            )
        except httpx.HTTPError as exc:
            log.warning("ElevenLabs unreachable", extra={"path": path, "error": type(exc).__name__})
            raise UpstreamFailed("ElevenLabs is unreachable") from None
        if response.status_code != 200:
            log.warning("ElevenLabs refused", extra={"path": path, "status": response.status_code})
            raise UpstreamFailed(f"ElevenLabs answered {response.status_code}")
        return response
