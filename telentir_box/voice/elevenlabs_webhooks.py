"""ElevenLabs' post-call webhooks (providers.md 2.10-2.11): `ElevenLabs-Signature`
checked over the raw bytes, then post_call_transcription, post_call_audio and
call_initiation_failure folded into their call. A webhook for no call the box knows
yet is kept sealed and replayed once its call is known."""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from telentir_box.config import CallsConfig
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import AppError, ServiceUnavailable, ValidationFailed
from telentir_box.integrations.calls import AgreedMeeting
from telentir_box.voice.calls import CallLedger, Change, Live, iso_before
from telentir_box.voice.records import Sealed, seal_document, seal_parts
from telentir_box.voice.twilio_webhooks import server_public_key_read

log = logging.getLogger("telentir_box.calls")
TOLERANCE_SECONDS = 30 * 60
FUTURE_SKEW_SECONDS = 5 * 60
HANDLED = frozenset({"post_call_transcription", "post_call_audio", "call_initiation_failure"})
_B64_CHUNK = 256 * 1024


class WebhookSignatureInvalid(AppError):
    code, status, default_message = (
        "WEBHOOK_SIGNATURE_INVALID",
        401,
        "The webhook is not signed by ElevenLabs with the configured secret",
    )


class WebhookNotConfigured(ServiceUnavailable):
    code, default_message = (
        "ELEVENLABS_WEBHOOK_NOT_CONFIGURED",
        "ElevenLabs webhooks are not configured: set [elevenlabs] webhook_secret",
    )


def verify_elevenlabs(secret: str, header: str | None, body: bytes | bytearray, now: float) -> None:
    """`t=<unix>,v0=<hex HMAC-SHA256 of "t.body">`, at most 30 minutes old and not
    from the future beyond a small skew; compared in constant time."""
    if not secret:
        raise WebhookNotConfigured()
    if not header:
        raise WebhookSignatureInvalid()
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in fields if name == "t"]
    macs = [value for name, _, value in fields if name == "v0"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        raise WebhookSignatureInvalid()
    stamp = int(stamps[0])
    if stamp < now - TOLERANCE_SECONDS or stamp > now + FUTURE_SKEW_SECONDS:
        raise WebhookSignatureInvalid("The webhook's timestamp is outside the tolerance")
    mac = hmac.new(secret.encode(), f"{stamp}.".encode(), hashlib.sha256)
    mac.update(body)
    expected = mac.hexdigest().encode()
    if not any(hmac.compare_digest(expected, m.encode()) for m in macs):
        raise WebhookSignatureInvalid()


class _Envelope(msgspec.Struct):
    type: str
    data: msgspec.Raw = msgspec.Raw(b"{}")


class Transcription(msgspec.Struct):
    conversation_id: str
    transcript: list[dict[str, Any]] = []
    analysis: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    agent_id: str | None = None


class Audio(msgspec.Struct):
    conversation_id: str
    full_audio: msgspec.Raw


class InitiationFailure(msgspec.Struct):
    conversation_id: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] | None = None


Event = Transcription | Audio | InitiationFailure
_TYPES: dict[str, type] = {
    "post_call_transcription": Transcription,
    "post_call_audio": Audio,
    "call_initiation_failure": InitiationFailure,
}


def parse_event(body: bytearray) -> Event | None:
    """The event, or None for a type the box does not handle. A body decoded from a
    bytearray keeps `full_audio` as a view into it, never a copy."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
        kind = _TYPES.get(envelope.type)
        return msgspec.json.decode(envelope.data, type=kind) if kind else None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"The webhook body is not valid: {exc}") from None


def call_sid_of(event: Event) -> str | None:
    if isinstance(event, Transcription):
        phone_call = (event.metadata or {}).get("phone_call") or {}
        sid = phone_call.get("call_sid")
    elif isinstance(event, InitiationFailure):
        body = (event.metadata or {}).get("body") or {}
        sid = body.get("CallSid") or body.get("call_sid")
    else:
        sid = None
    return sid if isinstance(sid, str) and sid else None


@dataclass(frozen=True, slots=True)
class ElevenLabsWebhooks:
    db: Database
    keyring: Keyring
    ledger: CallLedger
    limits: CallsConfig

    async def receive(self, pending: list[bytearray]) -> None:
        """Fold a verified webhook into its call, or keep it until the call is known.
        The body is taken out of `pending` so that, once a recording is sealed, nothing
        holds the webhook's copy of it any more."""
        body = pending.pop()
        event = parse_event(body)
        if event is None:
            return
        conversation_id, sid = event.conversation_id, call_sid_of(event)
        transcribed = isinstance(event, Transcription)
        async with self.db.reading() as conn:
            row = await _find(conn, conversation_id, sid)
        if row is None:
            await self._keep(conversation_id or "", sid, body)
            return
        holder: list[Event] = [event]
        del event, body
        await self._apply(row, holder)
        if transcribed:
            await self.replay(conversation_id, sid)

    async def replay(self, conversation_id: str | None, sid: str | None) -> None:
        """Webhooks kept for this conversation or CallSid, applied now that it is known."""
        async with self.db.reading() as conn:
            waiting = await repo.waiting_webhooks(conn, conversation_id, sid)
        sealer = self.keyring.sealer("call-webhook")
        for waiting_id, sealed in waiting:
            event = parse_event(bytearray(sealer.open(sealed)))
            if event is None:
                continue
            async with self.db.reading() as conn:
                row = await _find(conn, event.conversation_id, call_sid_of(event))
            if row is None:
                continue
            holder: list[Event] = [event]
            del event
            await self._apply(row, holder)
            await self.db.write(lambda tx, i=waiting_id: repo.drop_waiting_webhook(tx, i))

    async def _keep(self, conversation_id: str, sid: str | None, body: bytearray) -> None:
        sealed = await asyncio.to_thread(self.keyring.sealer("call-webhook").seal, body)
        await self.db.write(lambda tx: repo.keep_waiting_webhook(tx, conversation_id, sid, sealed))
        log.info("post-call webhook kept until its call is known", extra={"conversation_id": conversation_id})

    async def _apply(self, row: repo.CallRow, holder: list[Event]) -> None:
        if isinstance(holder[0], Audio):
            await self._apply_audio(row, holder)
            return
        event = holder.pop()

        async def find(tx: Transaction) -> repo.CallRow | None:
            return await repo.get_call(tx.conn, row.id)

        if isinstance(event, InitiationFailure):
            await self.ledger.fold(find, lambda r, _: fold_failure(r, event))
            return
        if not isinstance(event, Transcription) or row.transcription_object_id is not None:
            return
        async with self.db.reading() as conn:
            public = await server_public_key_read(conn, row.user_id, row.server)
        sealed = await asyncio.to_thread(seal_document, public, row.server, transcription_document(event))
        await self.ledger.fold(find, lambda r, live: fold_transcription(r, live, event, sealed))

    async def _apply_audio(self, row: repo.CallRow, holder: list[Event]) -> None:
        """The audio is sealed straight from the webhook body, which is let go before
        the sealed copy is written."""
        if row.audio_source == "elevenlabs":
            return
        async with self.db.reading() as conn:
            public = await server_public_key_read(conn, row.user_id, row.server)
        audio = holder.pop()
        assert isinstance(audio, Audio)
        sealed = await asyncio.to_thread(seal_elevenlabs_audio, public, row.server, audio.full_audio)
        del audio

        async def find(tx: Transaction) -> repo.CallRow | None:
            return await repo.get_call(tx.conn, row.id)

        await self.ledger.fold(find, lambda r, _: fold_audio(r, sealed))


async def _find(conn: Any, conversation_id: str | None, sid: str | None) -> repo.CallRow | None:
    row = await repo.get_call_by_conversation(conn, conversation_id) if conversation_id else None
    if row is None and sid:
        row = await repo.get_call_by_sid(conn, sid)
    return row


def transcription_document(event: Transcription) -> dict[str, Any]:
    """The transcription child object: the turns and ElevenLabs' analysis."""
    turns = [
        {k: turn.get(k) for k in ("role", "message", "time_in_call_secs") if k in turn}
        for turn in event.transcript
    ]
    metadata = event.metadata or {}
    return {
        "conversationId": event.conversation_id,
        "transcript": turns,
        "analysis": event.analysis or {},
        "duration": metadata.get("call_duration_secs"),
        "language": metadata.get("main_language"),
        "terminationReason": metadata.get("termination_reason"),
    }


# ElevenLabs' call_successful; "unknown" (or none) leaves the verdict unset.
ANALYSIS_VERDICTS = {"success": 1, "failure": 0}


def fold_transcription(
    row: repo.CallRow, live: Live | None, event: Transcription, sealed: Sealed
) -> Change | None:
    if row.transcription_object_id is not None:
        return None
    metadata = event.metadata or {}
    analysis = event.analysis or {}
    columns: dict[str, Any] = {}
    if row.conversation_id is None:
        columns["conversation_id"] = event.conversation_id
    outcome = transcript_outcome(metadata, analysis)
    if outcome is not None:
        columns["outcome"] = outcome
    verdict = analysis.get("call_successful")
    if verdict in ANALYSIS_VERDICTS:
        columns["successful"] = ANALYSIS_VERDICTS[verdict]
    start = metadata.get("start_time_unix_secs")
    if row.answered_at is None and isinstance(start, int | float):
        columns["answered_at"] = iso_before(datetime.fromtimestamp(start, UTC), 0)
    duration = metadata.get("call_duration_secs")
    if row.duration_seconds in (None, 0) and isinstance(duration, int | float):
        columns["duration_seconds"] = int(duration)
    summary = analysis.get("transcript_summary")
    notes = summary if isinstance(summary, str) and summary else None
    meeting = agreed_meeting(analysis)
    new_live = None
    if live is not None and (notes or meeting):
        new_live = msgspec.structs.replace(live, notes=notes or live.notes, meeting=meeting)
    return Change(columns, live=new_live, child=("transcription", sealed))


def agreed_meeting(analysis: dict[str, Any]) -> AgreedMeeting | None:
    """The meeting the agent's data collection says was agreed: items `meeting_start`
    (ISO 8601 with its offset) and `meeting_attendee_email`, and optionally
    `meeting_duration_minutes` (default 30) and `meeting_attendee_name`. None unless
    the start and the email are both there and well formed."""
    collected = analysis.get("data_collection_results")
    if not isinstance(collected, dict):
        return None

    def value(key: str) -> Any:
        item = collected.get(key)
        return item.get("value") if isinstance(item, dict) else None

    start, email = value("meeting_start"), value("meeting_attendee_email")
    try:
        moment = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not isinstance(email, str) or "@" not in email:
        return None
    minutes, name = value("meeting_duration_minutes"), value("meeting_attendee_name")
    return AgreedMeeting(
        start=moment,
        duration_minutes=minutes if isinstance(minutes, int) and 5 <= minutes <= 480 else 30,
        attendee_email=email,
        attendee_name=name if isinstance(name, str) else "",
    )


def transcript_outcome(metadata: dict[str, Any], analysis: dict[str, Any]) -> str | None:
    """voicemail or callback when ElevenLabs' analysis says so, a missed outcome when
    the call never reached a person."""
    collected = analysis.get("data_collection_results") or {}
    callback = collected.get("callback") if isinstance(collected, dict) else None
    if isinstance(callback, dict) and callback.get("value") in (True, "true", "yes"):
        return "callback"
    result = ((metadata.get("phone_call") or {}).get("call_result")) or None
    if result == "voicemail":
        return "voicemail"
    if result in ("busy", "no_answer", "failed"):
        return result
    return None


def fold_audio(row: repo.CallRow, sealed: Sealed) -> Change | None:
    if row.audio_source == "elevenlabs":
        return None
    return Change({"audio_source": "elevenlabs"}, child=("audio", sealed))


def fold_failure(row: repo.CallRow, event: InitiationFailure) -> Change | None:
    if row.ended_at is not None and row.final:
        return None
    columns: dict[str, Any] = {"outcome": (event.failure_reason or "failed").replace("_", "-")}
    if row.ended_at is None:
        columns["ended_at"] = iso_before(datetime.now(UTC), 0)
    if row.conversation_id is None and event.conversation_id:
        columns["conversation_id"] = event.conversation_id
    return Change(columns)


def seal_elevenlabs_audio(public: str, server: str, full_audio: msgspec.Raw) -> Sealed:
    """The audio child object ({mimeType, source, content: base64 MP3}) sealed straight
    from the webhook's own base64 text, checked piece by piece, never copied whole."""
    view = memoryview(full_audio)
    if len(view) < 2 or view[0] != ord('"') or view[-1] != ord('"'):
        raise ValidationFailed("`full_audio` must be a base64 string")
    content = view[1:-1]
    for start in range(0, len(content), _B64_CHUNK):
        try:
            binascii.a2b_base64(content[start : start + _B64_CHUNK], strict_mode=True)
        except binascii.Error:
            raise ValidationFailed("`full_audio` is not base64") from None
    prefix = b'{"mimeType":"audio/mpeg","source":"elevenlabs","content":"'
    return seal_parts(public, server, [prefix, content, b'"}'])
