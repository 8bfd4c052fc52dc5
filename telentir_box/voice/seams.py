"""Where billing, integrations and jobs join the call's life: each is called at its
one place (a call about to be placed, a call made final, a recording stored)."""

from __future__ import annotations

from telentir_box.db.calls import CallRow
from telentir_box.db.database import Database, Transaction


async def authorize_call(db: Database, user_id: str, direction: str) -> None:
    return None


async def settle_call(tx: Transaction, row: CallRow) -> None:
    return None


async def record_call_usage(tx: Transaction, row: CallRow) -> None:
    return None


async def enqueue_call_deliveries(tx: Transaction, user_id: str, row: CallRow) -> None:
    return None


async def remember_recording(tx: Transaction, row: CallRow, object_id: str) -> None:
    return None
