"""Ingestion: records read from a connector stream are stored in batches while the
stream keeps being read, so a fast connector is not held to one commit per record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from telentir_box.config import ConnectConfig
from telentir_box.connect.connector import ConnectorUnavailable, FrameCounts, stream_records
from telentir_box.connect.credits import Credits, record_leads_stored
from telentir_box.crypto.keyring import Keyring
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import ServiceUnavailable, UpstreamFailed, ValidationFailed
from telentir_box.store.models import STORES
from telentir_box.store.writer import write_for_user

Record = dict[str, Any]
StoreBatch = Callable[[list[Record]], Awaitable[None]]

log = logging.getLogger("telentir_box.connect")
MAX_BATCH = 500
MAX_CREDITS = 1_000_000
_END = object()


async def ingest_records(
    records: AsyncGenerator[Record, None],
    store_batch: StoreBatch,
    *,
    limit: int | None = None,
    max_batch: int = MAX_BATCH,
) -> tuple[int, Exception | None]:
    """Store every record (at most `limit`) through `store_batch`; return how many were
    stored and what the stream raised, if it broke (the records before it are stored).
    A batch is whatever arrived while the previous one committed, so batches grow with
    the commit cost and a trickle of records is stored at once."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_batch * 4)

    async def read() -> None:
        taken = 0
        try:
            async with contextlib.aclosing(records):
                if limit is not None and limit <= 0:
                    return
                async for record in records:
                    await queue.put(record)
                    taken += 1
                    if limit is not None and taken >= limit:
                        return
        except Exception as exc:
            await queue.put(exc)
        finally:
            await queue.put(_END)

    reader = asyncio.create_task(read(), name="connector-reader")
    stored = 0
    failure: Exception | None = None
    try:
        ended = False
        while not ended:
            batch: list[Record] = []
            item = await queue.get()
            while True:
                if item is _END:
                    ended = True
                    break
                if isinstance(item, Exception):
                    failure = item
                else:
                    batch.append(item)
                if len(batch) >= max_batch or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                await store_batch(batch)
                stored += len(batch)
    finally:
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return stored, failure


@dataclass(frozen=True, slots=True)
class ConnectOutcome:
    """What a finished connect request did. `granted` is None off a metered path."""

    granted: int | None
    stored: int
    skipped: int
    connector_called: bool
    interrupted: bool


def validate_target(repository: str, path: str, allowed_paths: list[str]) -> None:
    """Only the operator's paths, exactly as configured: any other spelling of a route
    (a trailing dot or slash, another case, an extra segment) could reach the connector
    beside its metering, so it is refused before the connector is called."""
    if repository not in STORES:
        raise ValidationFailed(f"`repository` must be one of: {', '.join(STORES)}")
    if path not in allowed_paths:
        raise ValidationFailed(
            f"`path` must be one of the connector paths allowed here: {', '.join(allowed_paths)}"
        )


def requested_credits(params: dict[str, Any]) -> int:
    value = params.get("credits")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CREDITS:
        raise ValidationFailed(f"`params.credits` must be a whole number from 0 to {MAX_CREDITS}")
    return value


@dataclass(frozen=True, slots=True)
class Ingestion:
    """What a connect request uses: where records are stored, the connector, the ledger."""

    db: Database
    keyring: Keyring
    http: httpx.AsyncClient
    credits: Credits
    connect: ConnectConfig


async def run_connect(
    parts: Ingestion, user_id: str, repository: str, path: str, params: dict[str, Any]
) -> ConnectOutcome:
    """Stream the connector's records into `repository`; for a metered path (/get-leads),
    within the credits it can be granted, settled whatever happens."""
    connect = parts.connect
    validate_target(repository, path, connect.paths)
    if not connect.base_url:
        raise ServiceUnavailable("no connector service is configured ([connect] base_url)")
    reservation = None
    if path in connect.metered_paths:
        requested = requested_credits(params)
        reservation = await parts.credits.reserve(user_id, requested)
        if reservation is None:
            return ConnectOutcome(granted=0, stored=0, skipped=0, connector_called=False, interrupted=False)
        params = {**params, "credits": reservation.granted}
    counts = FrameCounts()
    limits = httpx.Timeout(connect.timeout_seconds, connect=connect.connect_timeout_seconds)
    records = stream_records(parts.http, connect.base_url.rstrip("/") + path, params, counts, limits)
    reservation_id = reservation.id if reservation is not None else None

    async def store_batch(batch: list[Record]) -> None:
        async def count(tx: Transaction) -> None:
            if reservation_id is not None:
                await record_leads_stored(tx, reservation_id, len(batch))

        await write_for_user(parts.db, parts.keyring, user_id, repository, batch, in_transaction=count)

    try:
        stored, failure = await ingest_records(
            records, store_batch, limit=reservation.granted if reservation is not None else None
        )
    finally:
        if reservation is not None:
            await asyncio.shield(parts.credits.settle_quietly(reservation.id))
    if isinstance(failure, ConnectorUnavailable) or (failure is not None and stored == 0):
        raise UpstreamFailed(f"{failure}; nothing was stored") from failure
    if failure is not None:
        log.warning("connector stream ended early", extra={"stored": stored, "reason": str(failure)})
    return ConnectOutcome(
        granted=reservation.granted if reservation is not None else None,
        stored=stored,
        skipped=counts.skipped,
        connector_called=True,
        interrupted=failure is not None,
    )
