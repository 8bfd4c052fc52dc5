"""Retention of the event log: events older than `retention_days` or beyond the newest
`retention_count` are deleted in small batches, so writers never wait long."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from telentir_box.config import EventsConfig
from telentir_box.db import events as events_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso

log = logging.getLogger("telentir_box.events")
PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_BATCH = 2000


async def prune_event_log(db: Database, config: EventsConfig, now: datetime) -> int:
    """Delete what retention no longer covers; returns the number of events deleted.
    Statements run on the event loop, so every one is a primary-key range or lookup."""
    async with db.reading() as conn:
        by_age = await events_repo.first_event_since(conn, iso(now - timedelta(days=config.retention_days)))
        by_count = await events_repo.latest_event_id(conn) - config.retention_count + 1
    below_id = max(by_age, by_count)  # older than the window, or beyond the count
    total = 0
    while True:

        async def prune(tx: Transaction) -> int:
            return await events_repo.prune_events(tx, below_id, PRUNE_BATCH)

        deleted = await db.write(prune)
        total += deleted
        if deleted < PRUNE_BATCH:
            return total


async def prune_event_log_periodically(
    db: Database, config: EventsConfig, clock: Callable[[], datetime]
) -> None:
    while True:
        try:
            deleted = await prune_event_log(db, config, clock())
            if deleted:
                log.info("pruned the event log", extra={"deleted": deleted})
        except Exception:
            log.exception("could not prune the event log")
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)
