"""Personas: the catalog of voices the box can speak with (ElevenLabs' voices of the
account and OpenAI's built-in TTS voices) in the client's Persona shape, kept for
[personas] cache_seconds; and a preview of one, spoken by its provider and encrypted
for the caller's own user server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import msgspec

from telentir_box.crypto.chunk import EncryptedChunk, encrypt_chunk
from telentir_box.crypto.user_jwt import verify_user_jwt
from telentir_box.db.database import Database
from telentir_box.errors import NotFound, UpstreamFailed
from telentir_box.store.servers import user_server_key
from telentir_box.telephony.elevenlabs import ElevenLabs, ElevenLabsNotConfigured, Voice
from telentir_box.telephony.openai_tts import VOICES, OpenAI, OpenAINotConfigured

log = logging.getLogger("telentir_box.personas")
ELEVENLABS_PREFIX = "elevenlabs-"
OPENAI_PREFIX = "openai-"
ANY_COUNTRY = "🌐"
# ElevenLabs' `accent` label, as its voice library words it, to a flag.
_ACCENT_FLAGS = {
    "american": "🇺🇸",
    "british": "🇬🇧",
    "english": "🇬🇧",
    "australian": "🇦🇺",
    "irish": "🇮🇪",
    "canadian": "🇨🇦",
    "indian": "🇮🇳",
    "german": "🇩🇪",
    "french": "🇫🇷",
    "spanish": "🇪🇸",
    "italian": "🇮🇹",
    "swedish": "🇸🇪",
    "polish": "🇵🇱",
    "dutch": "🇳🇱",
    "brazilian": "🇧🇷",
    "mexican": "🇲🇽",
    "japanese": "🇯🇵",
}
# OpenAI publishes no metadata for its voices: how each one sounds, by ear.
_OPENAI_VOICES = {
    "alloy": ("neutral", "Balanced and even"),
    "ash": ("male", "Clear and confident"),
    "ballad": ("male", "Soft and expressive"),
    "coral": ("female", "Warm and friendly"),
    "echo": ("male", "Calm and steady"),
    "fable": ("male", "Bright storyteller"),
    "onyx": ("male", "Deep and assured"),
    "nova": ("female", "Lively and upbeat"),
    "sage": ("female", "Gentle and thoughtful"),
    "shimmer": ("female", "Light and clear"),
    "verse": ("male", "Versatile and expressive"),
    "marin": ("female", "Natural and conversational"),
    "cedar": ("male", "Natural and grounded"),
}
RETRY_AFTER_FAILURE_SECONDS = 30
# Spoken samples kept in memory, in all; the oldest go first.
SAMPLE_CACHE_BYTES = 32 * 1024 * 1024
OPENAI_INSTRUCTIONS = ["Speak naturally and warmly, at a relaxed pace, as on a phone call."]


class OpenAIVoiceSettings(msgspec.Struct, tag_field="type", tag="openai"):
    voice: str
    instructions: list[str]


class ElevenLabsVoiceSettings(msgspec.Struct, tag_field="type", tag="elevenlabs", omit_defaults=True):
    voiceId: str
    previewUrl: str | None = None


class Persona(msgspec.Struct):
    """A voice as the client's Persona type has it (telentir-wire.md 6). Neither
    provider rates voices, so `rating` is 0; neither has avatars, so `avatarUrl` is ""."""

    id: str
    name: str
    countryEmoji: str
    gender: str
    description: str
    rating: float
    tags: list[str]
    avatarUrl: str
    settings: OpenAIVoiceSettings | ElevenLabsVoiceSettings


def elevenlabs_persona(voice: Voice) -> Persona:
    labels = {key: value for key, value in (voice.labels or {}).items() if value}
    accent = labels.get("accent", "").lower()
    flag = next((emoji for word, emoji in _ACCENT_FLAGS.items() if word in accent), ANY_COUNTRY)
    tags = [value for key, value in sorted(labels.items()) if key not in ("gender", "description")]
    return Persona(
        id=ELEVENLABS_PREFIX + voice.voice_id,
        name=(voice.name or voice.voice_id)[:100],
        countryEmoji=flag,
        gender=labels.get("gender", ""),
        description=voice.description or labels.get("description", ""),
        rating=0,
        tags=list(dict.fromkeys(["elevenlabs", *([voice.category] if voice.category else []), *tags])),
        avatarUrl="",
        settings=ElevenLabsVoiceSettings(voiceId=voice.voice_id, previewUrl=voice.preview_url),
    )


def openai_persona(voice: str) -> Persona:
    gender, description = _OPENAI_VOICES.get(voice, ("", ""))
    return Persona(
        id=OPENAI_PREFIX + voice,
        name=voice.capitalize(),
        countryEmoji=ANY_COUNTRY,
        gender=gender,
        description=description,
        rating=0,
        tags=["openai", "multilingual"],
        avatarUrl="",
        settings=OpenAIVoiceSettings(voice=voice, instructions=list(OPENAI_INSTRUCTIONS)),
    )


class SampleCache:
    """Spoken samples by (persona, text) for `lifetime` seconds, within
    SAMPLE_CACHE_BYTES: replaying a preview costs no provider call."""

    def __init__(self, lifetime: int) -> None:
        self._lifetime = lifetime
        self._items: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str]) -> bytes | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            self._drop(key)
            return None
        return entry[1]

    def put(self, key: tuple[str, str], audio: bytes) -> None:
        if self._lifetime == 0 or len(audio) > SAMPLE_CACHE_BYTES // 4:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (time.monotonic() + self._lifetime, audio)
        self._bytes += len(audio)
        while self._bytes > SAMPLE_CACHE_BYTES:
            self._drop(next(iter(self._items)))

    def _drop(self, key: tuple[str, str]) -> None:
        self._bytes -= len(self._items.pop(key)[1])


class PersonaCatalog:
    """ElevenLabs' half of the catalog is fetched at most once per `cache_seconds`
    (each persona's spoken sample is kept as long); OpenAI's half is fixed. A provider
    without an API key contributes nothing. When a fetch fails, the last list fetched
    (if any) is served and ElevenLabs is not asked again for RETRY_AFTER_FAILURE_SECONDS
    (or `cache_seconds`, if shorter), so a provider that hangs does not hold up every
    list."""

    def __init__(self, elevenlabs: ElevenLabs, openai: OpenAI, cache_seconds: int) -> None:
        self.elevenlabs = elevenlabs
        self.openai = openai
        self._cache_seconds = cache_seconds
        self._voices: list[Persona] | None = None
        self._failure = ""
        self._fresh_until = 0.0
        # One fetch at a time: concurrent lists of a stale catalog share it.
        self._lock = asyncio.Lock()
        self._samples = SampleCache(cache_seconds)

    async def list_personas(self) -> list[Persona]:
        """Every persona available now: ElevenLabs failing leaves its voices out
        (logged) rather than failing the whole list."""
        try:
            voices = await self._elevenlabs_personas()
        except UpstreamFailed:
            voices = []
        return voices + self._openai_personas()

    async def get_persona(self, persona_id: str) -> Persona:
        """404 when no configured provider has it; 502 when ElevenLabs cannot say."""
        if persona_id.startswith(ELEVENLABS_PREFIX):
            candidates = await self._elevenlabs_personas()
        else:
            candidates = self._openai_personas()
        found = next((persona for persona in candidates if persona.id == persona_id), None)
        if found is None:
            raise NotFound("No such persona")
        return found

    def require_provider(self, persona_id: str) -> None:
        """503 naming what to configure when `persona_id`'s provider has no API key."""
        if persona_id.startswith(ELEVENLABS_PREFIX):
            if not self.elevenlabs.configured:
                raise ElevenLabsNotConfigured()
        elif persona_id.startswith(OPENAI_PREFIX):
            if not self.openai.configured:
                raise OpenAINotConfigured()
        else:
            raise NotFound("No such persona")

    async def speak_sample(self, persona: Persona) -> bytes:
        """The persona's sample sentence, spoken by its provider (or as it was
        spoken within `cache_seconds`)."""
        text = sample_text(persona)
        audio = self._samples.get((persona.id, text))
        if audio is None:
            settings = persona.settings
            if isinstance(settings, ElevenLabsVoiceSettings):
                audio = await self.elevenlabs.text_to_speech(settings.voiceId, text)
            else:
                audio = await self.openai.speak(settings.voice, text, " ".join(settings.instructions))
            self._samples.put((persona.id, text), audio)
        return audio

    async def _elevenlabs_personas(self) -> list[Persona]:
        if not self.elevenlabs.configured:
            return []
        async with self._lock:
            if time.monotonic() >= self._fresh_until:
                await self._fetch_elevenlabs()
            if self._voices is None:
                raise UpstreamFailed(self._failure)
            return self._voices

    async def _fetch_elevenlabs(self) -> None:
        try:
            voices = await self.elevenlabs.list_voices()
        except UpstreamFailed as exc:
            self._failure = exc.message
            retry_in = min(self._cache_seconds, RETRY_AFTER_FAILURE_SECONDS)
            self._fresh_until = time.monotonic() + retry_in
            log.warning(
                "ElevenLabs voices not fetched",
                extra={
                    "reason": exc.message,
                    "retry_in_seconds": retry_in,
                    "serving_last": self._voices is not None,
                },
            )
            return
        self._voices = [elevenlabs_persona(voice) for voice in voices]
        self._fresh_until = time.monotonic() + self._cache_seconds

    def _openai_personas(self) -> list[Persona]:
        return [openai_persona(voice) for voice in VOICES] if self.openai.configured else []


def sample_text(persona: Persona) -> str:
    return f"Hello, I'm {persona.name}. This is how I will sound when I call your contacts."


async def play_persona(
    catalog: PersonaCatalog,
    db: Database,
    user_id: str,
    persona_id: str,
    *,
    server: str,
    token: str,
    now: float,
) -> EncryptedChunk:
    """A sample of the persona's voice, encrypted for the caller's server `server`,
    once `token` proves the holder of that server's private key asked for it. Every
    check comes before any provider is asked anything."""
    catalog.require_provider(persona_id)
    public_key = await user_server_key(db, user_id, server)
    verify_user_jwt(token, public_key, now=now)
    persona = await catalog.get_persona(persona_id)
    return encrypt_chunk(public_key, await catalog.speak_sample(persona))
