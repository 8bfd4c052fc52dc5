"""The one OpenAI client (providers.md 3): text-to-speech over POST /v1/audio/speech
with a Bearer key, over the box's shared httpx client, from the [openai] config
section; and the fixed set of voices that endpoint speaks with."""

from __future__ import annotations

import logging

import httpx

from telentir_box.config import OpenAIConfig
from telentir_box.errors import ServiceUnavailable, UpstreamFailed

log = logging.getLogger("telentir_box.openai")
# The built-in voices of /v1/audio/speech (openai 3.57); OpenAI lists no endpoint for them.
VOICES = (
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
)
# A preview is a sentence: past this the answer is not the audio asked for.
MAX_AUDIO_BYTES = 8 * 1024 * 1024


class OpenAINotConfigured(ServiceUnavailable):
    code, default_message = "OPENAI_NOT_CONFIGURED", "OpenAI is not configured: set [openai] api_key"


class OpenAI:
    def __init__(self, config: OpenAIConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._base = config.api_base.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self._config.api_key)

    async def speak(self, voice: str, text: str, instructions: str = "") -> bytes:
        """`text` spoken by the built-in `voice` as MP3, in the manner `instructions` ask."""
        if not self.configured:
            raise OpenAINotConfigured()
        body = {"model": self._config.tts_model, "input": text, "voice": voice, "response_format": "mp3"}
        if instructions:
            body["instructions"] = instructions
        try:
            response = await self._http.post(
                self._base + "/v1/audio/speech",
                json=body,
                headers={
                    "authorization": f"Bearer {self._config.api_key}",
                    "accept": "application/octet-stream",
                },
            )
        except httpx.HTTPError as exc:
            log.warning("OpenAI unreachable", extra={"error": type(exc).__name__})
            raise UpstreamFailed("OpenAI is unreachable") from None
        if response.status_code != 200:
            log.warning("OpenAI refused", extra={"status": response.status_code})
            raise UpstreamFailed(f"OpenAI answered {response.status_code}")
        if not response.content or len(response.content) > MAX_AUDIO_BYTES:
            raise UpstreamFailed("OpenAI answered without usable audio")
        return response.content
