"""Where billing, integrations and jobs join a call's life, each at its one place: a
call about to be placed, a call made final, a recording stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from telentir_box.billing.state import Billing, CallEnded
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.calls import CallRow
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.deliveries import DeliveryQueue

if TYPE_CHECKING:
    from telentir_box.voice.calls import Live


class CallHooks:
    """`billing` and `deliveries` are None where a call neither costs nor is delivered
    (tests of the call flow alone). `clock` is the box's: the retention job measures a
    recording's age against a cutoff taken from it."""

    def __init__(
        self, billing: Billing | None, deliveries: DeliveryQueue | None, clock: Callable[[], datetime]
    ) -> None:
        self.billing = billing
        self.deliveries = deliveries
        self.clock = clock

    async def authorize_call(self, user_id: str, direction: str) -> None:
        """Before a call is placed or answered: 402 INSUFFICIENT_CREDITS when neither the
        plan's included minutes nor the balance cover it."""
        if self.billing is not None:
            await self.billing.authorize_call(user_id, direction)  # type: ignore[arg-type]

    async def call_final(self, tx: Transaction, row: CallRow, live: Live | None) -> None:
        """In the transaction that makes the call final: its usage counted and what the
        plan does not include charged, once per call (the Stripe-held balance is debited
        after commit by billing's periodic push); and one delivery queued for each of the
        user's connected integrations, built from what the box holds in clear until now."""
        if self.billing is not None:
            seconds = row.duration_seconds or 0
            await self.billing.settle_call(tx, CallEnded(row.id, row.user_id, row.direction, seconds))  # type: ignore[arg-type]
        if self.deliveries is not None and live is not None:
            await self.deliveries.enqueue_call_deliveries(tx, row.user_id, finished_call(row, live))

    async def recording_stored(self, tx: Transaction, row: CallRow, object_id: str) -> None:
        """Kept for the retention job, which deletes it once it is old enough."""
        await jobs_repo.remember_recording(tx, row.id, row.user_id, object_id, iso(self.clock()))


def finished_call(row: CallRow, live: Live) -> FinishedCall:
    """The call as integrations see it: its metadata, the analysis summary and the
    contact of its live details (which are deleted in the same transaction)."""
    ours = str(live.phone.get("number") or "")
    theirs = str(live.contact.get("phone") or "")
    outbound = row.direction == "outbound"
    return FinishedCall(
        call_id=row.id,
        direction="outbound" if outbound else "inbound",
        started_at=datetime.fromisoformat(row.started_at.replace("Z", "+00:00")),
        duration_seconds=row.duration_seconds or 0,
        outcome=row.status,
        summary=live.notes or "",
        from_number=ours if outbound else theirs,
        to_number=theirs if outbound else ours,
        contact_name=str(live.contact.get("name") or ""),
        contact_phone=theirs,
        contact_email=str(live.contact.get("email") or ""),
        meeting=live.meeting,
    )
