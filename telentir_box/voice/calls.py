"""The call state machine: every provider callback is folded into one row of `calls`
inside one write transaction, so a callback answered 2xx is durable, and one applied
twice or out of order changes nothing more. The Call record in the user's store is
written when the call starts and rewritten when it becomes final; then the live
details sealed under the master key are deleted."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.ids import new_id
from telentir_box.integrations.calls import AgreedMeeting
from telentir_box.voice.records import Sealed, create_object, replace_object, seal_document, server_public_key
from telentir_box.voice.seams import CallHooks

log = logging.getLogger("telentir_box.calls")
TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MISSED_OUTCOMES = frozenset({"busy", "failed", "no-answer", "canceled", "no_answer", "unknown"})


class Live(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the box must hold about a call while it runs (sealed, never in clear)."""

    contact: dict[str, Any]
    phone: dict[str, Any]
    agents: list[dict[str, Any]]
    agent: dict[str, Any]
    source: dict[str, Any]
    knowledgeBase: Any = None
    notes: str | None = None
    # A meeting the analysis says was agreed (see elevenlabs_webhooks.agreed_meeting).
    meeting: AgreedMeeting | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What one callback does: the columns it sets, the live details it replaces, and a
    child object to write (relation name, sealed document) if any."""

    columns: dict[str, Any]
    live: Live | None = None
    child: tuple[str, Sealed] | None = None


Fold = Callable[[repo.CallRow, Live | None], Change | None]


class CallLedger:
    """Opens and closes calls, and folds callbacks into them."""

    def __init__(self, db: Database, keyring: Keyring, hooks: CallHooks) -> None:
        self.db = db
        self.hooks = hooks
        self._sealer = keyring.sealer("call-live")

    def seal_live(self, call_id: str, live: Live) -> bytes:
        return self._sealer.seal(msgspec.json.encode(live), call_id.encode())

    def open_live(self, row: repo.CallRow) -> Live | None:
        if row.live is None:
            return None
        return msgspec.json.decode(self._sealer.open(row.live, row.id.encode()), type=Live)

    async def open_call(
        self,
        tx: Transaction,
        *,
        user_id: str,
        server: str,
        direction: str,
        phone_number_id: str,
        calls_store: str,
        live: Live,
        call_sid: str | None = None,
    ) -> repo.CallRow:
        """A new call and its Call record (`ongoing`), in the caller's transaction."""
        call_id = new_id("call")
        row = repo.CallRow(
            id=call_id, user_id=user_id, direction=direction, phone_number_id=phone_number_id,
            server=server, call_sid=call_sid, conversation_id=None, status="ongoing",
            twilio_status=None, twilio_sequence=-1, answered_by=None, outcome=None,
            started_at=tx.now, answered_at=None, ended_at=None, duration_seconds=None,
            record_object_id=None, transcription_object_id=None, audio_object_id=None,
            audio_source=None, recording_sid=None, final=0, live=self.seal_live(call_id, live),
            created_at=tx.now, updated_at=tx.now,
        )  # fmt: skip
        public = await server_public_key(tx, user_id, server)
        record_id = await create_object(
            tx, user_id, calls_store, seal_document(public, server, call_document(row, live))
        )
        await repo.insert_call(tx, row)
        return await repo.update_call(tx, call_id, {"record_object_id": record_id})

    async def fold(
        self, find: Callable[[Transaction], Awaitable[repo.CallRow | None]], fold: Fold
    ) -> repo.CallRow | None:
        """Apply `fold` to the call `find` names, in one transaction; the call becomes
        final (record rewritten, live details deleted) once it has all it waits for.
        None when there is no such call."""

        async def write(tx: Transaction) -> repo.CallRow | None:
            row = await find(tx)
            if row is None:
                return None
            live = self.open_live(row)
            change = fold(row, live)
            if change is None:
                return row
            columns = dict(change.columns)
            if change.live is not None:
                live = change.live
                columns["live"] = self.seal_live(row.id, live)
            if change.child is not None:
                columns |= await _write_child(tx, row, *change.child)
            if columns:
                row = await repo.update_call(tx, row.id, columns)
            if change.child is not None and change.child[0] == "audio" and row.audio_object_id:
                await self.hooks.recording_stored(tx, row, row.audio_object_id)
            if not row.final and is_complete(row):
                row = await self._finalize(tx, row, live)
            return row

        return await self.db.write(write)

    async def finalize_now(self, call_id: str) -> None:
        """Make a call final with what the box has (its callbacks stopped coming)."""

        async def write(tx: Transaction) -> None:
            row = await repo.get_call(tx.conn, call_id)
            if row is not None and not row.final:
                if row.ended_at is None:
                    row = await repo.update_call(
                        tx, row.id, {"ended_at": tx.now, "outcome": row.outcome or "unknown"}
                    )
                await self._finalize(tx, row, self.open_live(row))

        await self.db.write(write)

    async def _finalize(self, tx: Transaction, row: repo.CallRow, live: Live | None) -> repo.CallRow:
        status = final_status(row)
        if live is not None and row.record_object_id is not None:
            final_row = dataclasses.replace(row, status=status, final=1)
            public = await server_public_key(tx, row.user_id, row.server)
            document = call_document(final_row, live)
            await replace_object(
                tx, row.user_id, row.record_object_id, seal_document(public, row.server, document)
            )
        row = await repo.update_call(tx, row.id, {"status": status, "final": 1, "live": None})
        await self.hooks.call_final(tx, row, live)
        return row


async def _write_child(tx: Transaction, row: repo.CallRow, relation: str, sealed: Sealed) -> dict[str, Any]:
    """Create the call's `relation` child object, or give the existing one a new version."""
    column = f"{relation}_object_id"
    existing = getattr(row, column)
    if existing is not None:
        await replace_object(tx, row.user_id, existing, sealed)
        return {}
    assert row.record_object_id is not None
    return {column: await create_object(tx, row.user_id, row.record_object_id, sealed)}


def answered(row: repo.CallRow) -> bool:
    return row.answered_at is not None or row.transcription_object_id is not None


def is_complete(row: repo.CallRow) -> bool:
    """Final once ended, and, for a call that was answered, once its transcript and
    its audio (or Twilio's word that there is no recording) are in."""
    if row.ended_at is None:
        return False
    if not answered(row):
        return True
    return row.transcription_object_id is not None and (
        row.audio_object_id is not None or row.recording_sid is not None
    )


def final_status(row: repo.CallRow) -> str:
    """The Call model's status from Twilio's outcome and ElevenLabs' analysis."""
    if row.outcome in ("voicemail", "callback"):
        return row.outcome
    if (row.answered_by or "").startswith("machine"):
        return "voicemail"
    if not answered(row) or row.outcome in MISSED_OUTCOMES:
        return "missed"
    return "completed"


def call_document(row: repo.CallRow, live: Live) -> dict[str, Any]:
    """The Call model (telentir-wire.md 7) as the client decrypts it."""
    relations = {}
    if row.transcription_object_id:
        relations["transcription"] = row.transcription_object_id
    if row.audio_object_id:
        relations["audio"] = row.audio_object_id
    document: dict[str, Any] = {
        "startDate": row.started_at,
        "contact": live.contact,
        "phone": live.phone,
        "stage": row.twilio_status or "initiated",
        "direction": row.direction,
        "status": row.status if row.final else "ongoing",
        "agents": live.agents,
        "relations": relations,
    }
    if row.answered_at:
        document["conversationStartDate"] = row.answered_at
    if row.ended_at:
        document["endDate"] = row.ended_at
    if live.notes:
        document["notes"] = live.notes
    if live.knowledgeBase is not None:
        document["knowledgeBase"] = live.knowledgeBase
    return document


def iso_before(now: datetime, seconds: int) -> str:
    """The database's time format (as `tx.now`), `seconds` before `now`."""
    moment = (now - timedelta(seconds=seconds)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
