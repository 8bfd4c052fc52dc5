"""The outbox's front: `enqueue_call_deliveries`, the seam the calls webhooks call in
their own transaction when a call has finished (one delivery per connected integration
that has something to do, sealed, durable before the webhook is answered), and what a
user sees of their deliveries: the list and retrying a dead one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import msgspec

from telentir_box.crypto.sealing import Sealer
from telentir_box.db import integrations as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import NotFound
from telentir_box.ids import is_valid_id, new_id
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.providers import Provider


def seal_payload(sealer: Sealer, delivery_id: str, payload: dict[str, object]) -> bytes:
    return sealer.seal(msgspec.json.encode(payload), delivery_id.encode())


def open_payload(sealer: Sealer, delivery_id: str, sealed: bytes) -> dict[str, object]:
    return msgspec.json.decode(sealer.open(sealed, delivery_id.encode()))


class DeliveryQueue:
    """Writes deliveries and wakes the sender (outbox.Outbox) once they are committed."""

    def __init__(self, db: Database, sealer: Sealer, providers: Mapping[str, Provider]) -> None:
        self._db = db
        self._sealer = sealer
        self._providers = providers
        self.wake = asyncio.Event()

    async def enqueue_call_deliveries(
        self, tx: Transaction, user_id: str, finished_call: FinishedCall
    ) -> list[str]:
        """In the caller's transaction: one delivery per connected integration of the user
        with something to send for this call; returns their ids."""
        ids = []
        for integration in await repo.connected_integrations(tx.conn, user_id):
            provider = self._providers.get(integration.provider)
            delivery = provider.build(finished_call) if provider else None
            if delivery is None:
                continue
            delivery_id = new_id("dlv")
            await repo.insert_delivery(
                tx,
                repo.DeliveryRow(
                    id=delivery_id,
                    user_id=user_id,
                    provider=integration.provider,
                    kind=delivery.kind,
                    status="pending",
                    payload=seal_payload(self._sealer, delivery_id, delivery.payload),
                    # The delivery id is unique and stable across attempts and restarts.
                    idempotency_key=delivery_id,
                    attempts=0,
                    next_attempt_at=tx.now,
                    last_error="",
                    created_at=tx.now,
                    updated_at=tx.now,
                ),
            )
            ids.append(delivery_id)
        if ids:
            # The sender's claim is a later write on the one writer, so it sees these rows.
            self.wake.set()
        return ids

    async def retry(self, user_id: str, delivery_id: str) -> repo.DeliveryRow:
        """A dead delivery of the user back in the queue, due now; 404 for anything else
        but a pending one (already queued: answered as is)."""
        if not is_valid_id(delivery_id, "dlv"):
            raise NotFound("No such delivery")

        async def revive(tx: Transaction) -> repo.DeliveryRow | None:
            await repo.revive_delivery(tx, user_id, delivery_id)
            return await repo.get_delivery(tx.conn, user_id, delivery_id)

        row = await self._db.write(revive)
        if row is None or row.status == "delivered":
            raise NotFound("No such undelivered delivery")
        self.wake.set()
        return row


class DeliveryView(msgspec.Struct):
    id: str
    provider: str
    kind: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    created_at: str
    updated_at: str


def delivery_view(row: repo.DeliveryRow) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        provider=row.provider,
        kind=row.kind,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_error=row.last_error or None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def list_deliveries(
    db: Database, user_id: str, status: str | None, cursor: str | None, limit: int
) -> tuple[list[DeliveryView], str | None]:
    if cursor is not None and not is_valid_id(cursor, "dlv"):
        cursor = None
    async with db.reading() as conn:
        rows = await repo.page_deliveries(conn, user_id, status, cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [delivery_view(row) for row in rows], (rows[-1].id if more else None)
