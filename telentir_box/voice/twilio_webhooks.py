"""Twilio's voice, status and recording webhooks: X-Twilio-Signature checked with the
twilio library against the URL Twilio signed (`public_url` + path + query, not what
the box sees behind a proxy), then the call found (by the box's own id in the query,
by CallSid, or for a new inbound call by the number called) and the callback folded."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from telentir_box.config import CallsConfig
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as repo
from telentir_box.db import keys as keys_repo
from telentir_box.db import telephony as numbers_repo
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import AppError, Forbidden
from telentir_box.telephony.elevenlabs import ElevenLabs
from telentir_box.telephony.twilio_client import TwilioClient
from telentir_box.voice.calls import TERMINAL, CallLedger, Change, Live, iso_before
from telentir_box.voice.personalize import inbound_live, initiation_data, published_contact
from telentir_box.voice.records import Sealed, calls_store_id, default_server, seal_parts

log = logging.getLogger("telentir_box.calls")
SORRY = "Sorry, nobody can take your call right now. Please try again later. Goodbye."
# A recording of several hours of MP3 stays under this.
MAX_RECORDING_BYTES = 512 * 1024 * 1024


class TwilioSignatureInvalid(Forbidden):
    code, default_message = "TWILIO_SIGNATURE_INVALID", "The request is not signed by Twilio"


class Params:
    """A form body as the validator wants it: every value of a repeated name."""

    def __init__(self, body: bytes) -> None:
        self.pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        self.first = {}
        for name, value in self.pairs:
            self.first.setdefault(name, value)

    def getlist(self, name: str) -> list[str]:
        return [v for n, v in self.pairs if n == name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n for n, _ in self.pairs))

    def get(self, name: str) -> str | None:
        return self.first.get(name)


def verify_twilio(
    auth_token: str, public_url: str, path: str, query: str, body: bytes, signature: str | None
) -> Params:
    """The form parameters, once the signature over the URL Twilio called and every
    parameter is Twilio's (403 otherwise)."""
    if not auth_token or not public_url or not signature:
        raise TwilioSignatureInvalid()
    url = public_url.rstrip("/") + path + (f"?{query}" if query else "")
    params = Params(body)
    if not RequestValidator(auth_token).validate(url, params, signature):
        raise TwilioSignatureInvalid()
    return params


def with_recording(twiml: str, callback_url: str) -> str:
    """ElevenLabs' TwiML with a recording started first: an outbound call is recorded by
    calls.create, an inbound one (the number's webhook asks for nothing) this way."""
    start = twiml.find("<Response")
    end = twiml.find(">", start)
    if start < 0 or end < 0 or twiml[end - 1] == "/":
        return twiml
    recording = (
        f'<Start><Recording recordingStatusCallback="{escape(callback_url, {chr(34): "&quot;"})}"'
        ' recordingStatusCallbackEvent="completed absent" recordingStatusCallbackMethod="POST"/></Start>'
    )
    return twiml[: end + 1] + recording + twiml[end + 1 :]


def hang_up_twiml() -> str:
    response = VoiceResponse()
    response.say(SORRY)
    response.hangup()
    return str(response)


@dataclass(frozen=True, slots=True)
class TwilioWebhooks:
    db: Database
    keyring: Keyring
    ledger: CallLedger
    twilio: TwilioClient | None
    elevenlabs: ElevenLabs
    limits: CallsConfig
    recording_url: str

    async def voice(self, params: Params, call_id: str | None) -> str:
        """The TwiML for a call Twilio connects: the ElevenLabs agent, or a polite
        hang-up when nothing can answer it. Never an error to Twilio."""
        try:
            live, direction, ours, theirs = await self._voice_call(params, call_id)
        except AppError as exc:
            log.warning("call not handed to the agent", extra={"reason": exc.message})
            return hang_up_twiml()
        if live is None:
            return hang_up_twiml()
        try:
            twiml = await self.elevenlabs.register_call(
                from_number=theirs if direction == "inbound" else ours,
                to_number=ours if direction == "inbound" else theirs,
                direction=direction,
                client_data=initiation_data(live),
            )
            return with_recording(twiml, self.recording_url) if direction == "inbound" else twiml
        except AppError as exc:
            log.warning("ElevenLabs did not take the call", extra={"reason": exc.message})
            return hang_up_twiml()

    async def _voice_call(self, params: Params, call_id: str | None) -> tuple[Live | None, str, str, str]:
        sid = params.get("CallSid") or ""
        if call_id:
            row = await self.ledger.fold(
                lambda tx: repo.get_call(tx.conn, call_id), lambda r, _: _learn_answer(r, params)
            )
            if row is None or row.call_sid != sid or row.direction != "outbound":
                return None, "outbound", "", ""
            live = self.ledger.open_live(row)
            if live is None:
                return None, "outbound", "", ""
            return live, "outbound", live.phone["number"], live.contact["phone"]
        row = await self._inbound_call(sid, params.get("To") or "", params.get("From") or "")
        live = self.ledger.open_live(row) if row is not None else None
        return live, "inbound", params.get("To") or "", params.get("From") or ""

    async def _inbound_call(self, sid: str, called: str, caller: str) -> repo.CallRow | None:
        """The call for `sid`, opened (with its record) on its first voice webhook from
        the number's inbound configuration; None when the number answers nothing."""
        async with self.db.reading() as conn:
            existing = await repo.get_call_by_sid(conn, sid)
            if existing is not None:
                return existing if existing.direction == "inbound" else None
            found = await repo.find_number(conn, called)
            if found is None or found[2] is None:
                return None
            configuration = await numbers_repo.get_configuration(conn, found[1], found[2])
        if configuration is None:
            return None
        number_id, user_id, _ = found
        await self.ledger.hooks.authorize_call(user_id, "inbound")
        contact = await published_contact(self.db, self.keyring, user_id, caller)
        live = inbound_live(configuration, (number_id, called), caller, contact)
        store = await calls_store_id(self.db, self.keyring, user_id)
        async with self.db.reading() as conn:
            server = await default_server(conn, user_id)

        async def open_call(tx: Transaction) -> repo.CallRow:
            again = await repo.get_call_by_sid(tx.conn, sid)
            if again is not None:
                return again
            return await self.ledger.open_call(
                tx, user_id=user_id, server=server, direction="inbound",
                phone_number_id=number_id, calls_store=store, live=live, call_sid=sid,
            )  # fmt: skip

        return await self.db.write(open_call)

    async def status(self, params: Params, call_id: str | None) -> None:
        sid = params.get("CallSid") or ""
        await self.ledger.fold(self._finder(call_id, sid), lambda row, _: fold_status(row, params))

    async def recording(self, params: Params, call_id: str | None) -> None:
        sid = params.get("CallSid") or ""
        recording_sid = params.get("RecordingSid") or ""
        status = params.get("RecordingStatus") or ""
        find = self._finder(call_id, sid)
        async with self.db.reading() as conn:
            row = await find_in(conn, call_id, sid)
        if row is None or row.recording_sid == recording_sid or not recording_sid:
            return
        assert self.twilio is not None
        if status == "completed" and row.audio_source != "elevenlabs" and not row.final:
            audio = await self.twilio.fetch_recording(params.get("RecordingUrl") or "", MAX_RECORDING_BYTES)
            async with self.db.reading() as conn:
                public = await server_public_key_read(conn, row.user_id, row.server)
            sealed = await asyncio.to_thread(seal_audio, public, row.server, audio, "twilio")
            await self.ledger.fold(find, lambda r, _: _store_recording(r, recording_sid, sealed))
        else:
            await self.ledger.fold(find, lambda r, _: _note_recording(r, recording_sid))
        # The box holds what it keeps of the call; Twilio's copy goes (stored or not needed).
        if status == "completed" and not self.limits.keep_twilio_recordings:
            await self.twilio.delete_recording(recording_sid)

    @staticmethod
    def _finder(call_id: str | None, sid: str) -> Callable[[Transaction], Awaitable[repo.CallRow | None]]:
        async def find(tx: Transaction) -> repo.CallRow | None:
            return await find_in(tx.conn, call_id, sid)

        return find


async def find_in(conn: Connection, call_id: str | None, sid: str) -> repo.CallRow | None:
    row = await repo.get_call(conn, call_id) if call_id else None
    if row is None and sid:
        row = await repo.get_call_by_sid(conn, sid)
    return row if row is not None and (row.call_sid in (None, sid)) else None


async def server_public_key_read(conn: Connection, user_id: str, server: str) -> str:
    row = await keys_repo.get_server(conn, user_id, server)
    if row is None:
        raise AppError("the call's server is gone")
    return row.public_key


def _learn_answer(row: repo.CallRow, params: Params) -> Change | None:
    """What the voice webhook tells of a placed call: its sid, and who answered it
    (answering-machine detection reports a machine here, before any status callback)."""
    columns: dict[str, object] = {}
    if row.call_sid is None and params.get("CallSid"):
        columns["call_sid"] = params.get("CallSid")
    if row.answered_by is None and params.get("AnsweredBy"):
        columns["answered_by"] = params.get("AnsweredBy")
    return Change(columns) if columns else None


def _note_recording(row: repo.CallRow, recording_sid: str) -> Change | None:
    return Change({"recording_sid": recording_sid}) if row.recording_sid is None else None


def _store_recording(row: repo.CallRow, recording_sid: str, sealed: Sealed) -> Change | None:
    if row.audio_source == "elevenlabs" or row.recording_sid == recording_sid:
        return Change({"recording_sid": recording_sid}) if row.recording_sid is None else None
    return Change({"recording_sid": recording_sid, "audio_source": "twilio"}, child=("audio", sealed))


def seal_audio(public: str, server: str, audio: bytes, source: str) -> Sealed:
    encoded = base64.b64encode(audio)
    prefix = f'{{"mimeType":"audio/mpeg","source":"{source}","content":"'.encode()
    return seal_parts(public, server, [prefix, encoded, b'"}'])


def fold_status(row: repo.CallRow, params: Params) -> Change | None:
    """A status callback folded in order: a later SequenceNumber wins, a final status
    is never undone by a late one, a repeat changes nothing."""
    status = params.get("CallStatus") or ""
    terminal = status in TERMINAL
    sequence = _int(params.get("SequenceNumber"))
    if sequence is None:
        sequence = 1_000_000 if terminal else 0
    if row.ended_at is not None or sequence <= row.twilio_sequence:
        return None
    now = iso_before(datetime.now(UTC), 0)
    columns: dict[str, object] = {"twilio_status": status, "twilio_sequence": sequence}
    if row.call_sid is None and params.get("CallSid"):
        columns["call_sid"] = params.get("CallSid")
    if params.get("AnsweredBy"):
        columns["answered_by"] = params.get("AnsweredBy")
    if status == "in-progress" and row.answered_at is None:
        columns["answered_at"] = now
    if terminal:
        duration = _int(params.get("CallDuration")) or 0
        columns |= {"ended_at": now, "duration_seconds": duration}
        if row.outcome is None:
            columns["outcome"] = status
        if status == "completed" and duration > 0 and row.answered_at is None:
            columns["answered_at"] = now
    return Change(columns)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
