"""Retention of the event log: events older than `retention_days` or beyond the newest
`retention_count` are deleted in small batches, so writers never wait long."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from telentir_box.auth.principal import iso
from telentir_box.config import EventsConfig
from telentir_box.db import events as events_repo
from telentir_box.db.database import Database, Transaction

log = logging.getLogger("telentir_box.events")
PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_BATCH = 2000


async def prune_event_log(db: Database, config: EventsConfig, now: datetime) -> int:
    """Delete what retention no longer covers; returns the number of events deleted."""
    created_before = iso(now - timedelta(days=config.retention_days))
    total = 0
    while True:

        async def prune(tx: Transaction) -> int:
            return await events_repo.prune_events(tx, created_before, config.retention_count, PRUNE_BATCH)

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
