"""Where billing and jobs join a call's life, each at its one place: a call about to be
placed, a call made final, a recording stored."""

from __future__ import annotations

from telentir_box.billing.state import Billing, CallEnded
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.calls import CallRow
from telentir_box.db.database import Transaction


class CallHooks:
    """`billing` is None where a call costs nothing (tests of the call flow alone)."""

    def __init__(self, billing: Billing | None) -> None:
        self.billing = billing

    async def authorize_call(self, user_id: str, direction: str) -> None:
        """Before a call is placed or answered: 402 INSUFFICIENT_CREDITS when neither the
        plan's included minutes nor the balance cover it."""
        if self.billing is not None:
            await self.billing.authorize_call(user_id, direction)  # type: ignore[arg-type]

    async def call_final(self, tx: Transaction, row: CallRow) -> None:
        """In the transaction that makes the call final: its usage counted and what the
        plan does not include charged, once per call (the Stripe-held balance is debited
        after commit by billing's periodic push)."""
        if self.billing is not None:
            seconds = row.duration_seconds or 0
            await self.billing.settle_call(tx, CallEnded(row.id, row.user_id, row.direction, seconds))  # type: ignore[arg-type]

    async def recording_stored(self, tx: Transaction, row: CallRow, object_id: str) -> None:
        """Kept for the retention job, which deletes it once it is old enough."""
        await jobs_repo.remember_recording(tx, row.id, row.user_id, object_id)
