"""POST /api/session/call (telentir-wire.md 2.5-2.6, 8.1): the client's JWT checked
with its own server's key and spent once, the `data` envelope opened with the box's
platform key, the payload validated, and the call placed through Twilio from one of
the user's numbers, with its Call record written `ongoing` first."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telentir_box.config import CallsConfig
from telentir_box.crypto import rsa as rsa_keys
from telentir_box.crypto.keyring import Keyring
from telentir_box.crypto.user_jwt import CLOCK_SKEW_SECONDS, JwtInvalid, verify_user_jwt
from telentir_box.db import calls as repo
from telentir_box.db import telephony as numbers_repo
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import AppError, PublicUrlNotConfigured, ValidationFailed
from telentir_box.store.servers import user_server_key
from telentir_box.telephony.elevenlabs import ElevenLabs, ElevenLabsNotConfigured
from telentir_box.telephony.models import Agent, AiAgent, HumanAgents, Pathway
from telentir_box.telephony.twilio_client import TwilioClient, TwilioNotConfigured
from telentir_box.voice.calls import CallLedger, Change, Live, iso_before
from telentir_box.voice.records import calls_store_id

log = logging.getLogger("telentir_box.calls")
E164 = r"^\+[1-9][0-9]{6,14}$"
ELEVENLABS_PERSONA = "elevenlabs-"
WEBHOOK_PATHS = {
    "voice": "/api/webhooks/twilio/voice",
    "status": "/api/webhooks/twilio/status",
    "recording": "/api/webhooks/twilio/recording",
}


class JwtReused(AppError):
    code, status, default_message = "JWT_REUSED", 401, "This JWT has already placed a call: sign a new one"


class NoUsableNumber(AppError):
    code, status, default_message = (
        "NO_USABLE_NUMBER",
        409,
        "You have no phone number that can place calls: buy one first",
    )


class PersonaUnsupported(AppError):
    code, status, default_message = (
        "PERSONA_UNSUPPORTED",
        422,
        "The agent's persona cannot speak on calls: choose an ElevenLabs persona",
    )


class CallLimitReached(AppError):
    code, status, default_message = "CALL_LIMIT_REACHED", 429, "Too many calls in progress: try again later"


class SessionCallBody(msgspec.Struct, forbid_unknown_fields=True):
    """`server`: the caller's user server whose private key signed `jwt` (RS256)."""

    jwt: Annotated[str, msgspec.Meta(min_length=1, max_length=262_144)]
    server: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SessionCallAnswer(msgspec.Struct):
    """The call placed: the box's id for it, Twilio's, and its record in the calls store."""

    id: str
    status: str
    callSid: str
    recordId: str


class CallContact(msgspec.Struct, kw_only=True):
    """A Contact (telentir-wire.md 7); only the phone is required to call it."""

    phone: Annotated[str, msgspec.Meta(pattern=E164)]
    id: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    company: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    tags: list[str] = []
    email: str | None = None
    status: str | None = None
    notes: list[str] | None = None
    relations: dict[str, str] | None = None


class PromptText(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class _Payload(msgspec.Struct, kw_only=True, tag_field="type"):
    contact: CallContact
    agent: Agent
    humanAgents: HumanAgents = []
    knowledgeBase: Any = None


class PromptPayload(_Payload, tag="prompt"):
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)] | PromptText


class PathwayPayload(_Payload, tag="pathway"):
    pathway: Pathway


SessionPayload = PromptPayload | PathwayPayload


@dataclass(frozen=True, slots=True)
class CallPlacer:
    db: Database
    keyring: Keyring
    ledger: CallLedger
    twilio: TwilioClient | None
    elevenlabs: ElevenLabs
    limits: CallsConfig
    public_url: str

    async def place(self, user_id: str, body: SessionCallBody, now: float) -> SessionCallAnswer:
        """Every check comes before Twilio is asked anything; the JWT is spent and the
        record written in one transaction before the call is placed."""
        self._require_configured()
        server = body.server.lower()
        claims = verify_user_jwt(body.jwt, await user_server_key(self.db, user_id, server), now=now)
        payload = await asyncio.to_thread(open_payload, self.keyring, claims.get("data"))
        voice_id = persona_voice(payload.agent)
        number = await self._outbound_number(user_id)
        await self._check_limits(user_id)
        await self.ledger.hooks.authorize_call(user_id, "outbound")
        live = live_details(payload, number, voice_id)
        store = await calls_store_id(self.db, self.keyring, user_id)
        digest = hashlib.sha256(body.jwt.encode()).hexdigest()
        expires = iso_before(datetime.fromtimestamp(float(claims["exp"]), UTC), -CLOCK_SKEW_SECONDS)

        async def open_call(tx: Transaction) -> repo.CallRow:
            # Counted again where the call is opened, so two requests at once cannot
            # both take the last place.
            await self._check_limits(user_id, tx.conn)
            if not await repo.spend_session_token(tx, digest, user_id, expires):
                raise JwtReused()
            return await self.ledger.open_call(
                tx, user_id=user_id, server=server, direction="outbound",
                phone_number_id=number.id, calls_store=store, live=live,
            )  # fmt: skip

        row = await self.db.write(open_call)
        assert self.twilio is not None
        try:
            sid = await self.twilio.place_call(
                to=payload.contact.phone,
                from_=number.phone_number,
                **{f"{name}_url": self._webhook(name, row.id) for name in WEBHOOK_PATHS},
            )
        except AppError:
            await self.ledger.fold(lambda tx: repo.get_call(tx.conn, row.id), lambda r, _: _failed_to_place())
            raise
        await self.ledger.fold(lambda tx: repo.get_call(tx.conn, row.id), lambda r, _: _placed(r, sid))
        assert row.record_object_id is not None
        return SessionCallAnswer(id=row.id, status="ongoing", callSid=sid, recordId=row.record_object_id)

    def _require_configured(self) -> None:
        if self.twilio is None:
            raise TwilioNotConfigured()
        if not self.elevenlabs.configured or not self.elevenlabs.agent_id:
            raise ElevenLabsNotConfigured(
                "ElevenLabs is not configured: set [elevenlabs] api_key and agent_id"
            )
        if not self.public_url:
            raise PublicUrlNotConfigured()

    def _webhook(self, name: str, call_id: str) -> str:
        return f"{self.public_url.rstrip('/')}{WEBHOOK_PATHS[name]}?call={call_id}"

    async def _outbound_number(self, user_id: str) -> numbers_repo.PhoneNumberRow:
        async with self.db.reading() as conn:
            numbers = await numbers_repo.list_phone_numbers(conn, user_id)
        for number in numbers:
            if json.loads(number.capabilities or "{}").get("voice", False):
                return number
        raise NoUsableNumber()

    async def _check_limits(self, user_id: str, conn: Connection | None = None) -> None:
        if conn is None:
            async with self.db.reading() as reader:
                return await self._check_limits(user_id, reader)
        mine = await repo.count_open_calls(conn, user_id)
        everyone = await repo.count_open_calls(conn)
        if mine >= self.limits.max_concurrent_per_user or everyone >= self.limits.max_concurrent:
            raise CallLimitReached()
        return None


def _placed(row: repo.CallRow, sid: str) -> Change | None:
    return Change({"call_sid": sid}) if row.call_sid is None else None


def _failed_to_place() -> Change:
    return Change({"outcome": "failed", "ended_at": _now_iso()})


def _now_iso() -> str:
    return iso_before(datetime.now(UTC), 0)


def open_payload(keyring: Keyring, data: Any) -> SessionPayload:
    """The `data` envelope (telentir-wire.md 2.5) opened with one of the box's platform
    keys and validated. RSA work: run in a thread."""
    if not isinstance(data, str) or not data:
        raise JwtInvalid("The JWT carries no `data` envelope")
    try:
        inner = json.loads(base64.b64decode(data, validate=True))
        parts = {k: base64.b64decode(inner[k], validate=True) for k in ("key", "iv", "content", "authTag")}
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationFailed("`data` is not an encrypted envelope") from None
    plaintext = None
    for platform in keyring.platform_keys.values():
        try:
            aes = rsa_keys.unwrap(platform.private, parts["key"])
            plaintext = AESGCM(aes).decrypt(parts["iv"], parts["content"] + parts["authTag"], None)
            break
        except (ValueError, InvalidTag):
            continue
    if plaintext is None:
        raise ValidationFailed("`data` is not encrypted for this box's server")
    try:
        return msgspec.json.decode(plaintext, type=SessionPayload)  # type: ignore[arg-type]
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"The call payload is not valid: {exc}") from None
    except msgspec.DecodeError:
        raise ValidationFailed("The call payload is not JSON") from None


def persona_voice(agent: Agent) -> str:
    """The ElevenLabs voice of an AI agent's persona; other personas cannot be spoken
    by the ElevenLabs agent on a call."""
    if not isinstance(agent, AiAgent) or not agent.persona.startswith(ELEVENLABS_PERSONA):
        raise PersonaUnsupported()
    voice = agent.persona[len(ELEVENLABS_PERSONA) :]
    if not voice:
        raise PersonaUnsupported()
    return voice


def agent_name(agent: Agent) -> str:
    return f"{agent.firstName} {agent.lastName}".strip()


def live_details(payload: SessionPayload, number: numbers_repo.PhoneNumberRow, voice_id: str) -> Live:
    contact = {"phone": payload.contact.phone}
    if payload.contact.id is not None:
        contact["id"] = payload.contact.id
    if payload.contact.name is not None:
        contact["name"] = payload.contact.name
    agent = msgspec.to_builtins(payload.agent)
    if isinstance(payload, PromptPayload):
        text = payload.prompt if isinstance(payload.prompt, str) else payload.prompt.text
        source: dict[str, Any] = {"type": "prompt", "prompt": {"text": text}}
    else:
        source = {"type": "pathway", "pathway": msgspec.to_builtins(payload.pathway)}
    return Live(
        contact=contact,
        phone={"id": number.id, "number": number.phone_number},
        agents=[{"id": a.id, "name": agent_name(a)} for a in [payload.agent, *payload.humanAgents]],
        agent=agent | {"voiceId": voice_id},
        source=source,
        knowledgeBase=payload.knowledgeBase,
    )
