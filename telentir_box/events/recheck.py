"""Open event streams outlive the request that opened them, so their credentials are
rechecked while they stay open: a stream whose session was logged out or expired,
whose API key was deleted, or whose user was removed or lost phone verification, is
ended with an `event: error` frame. At once after such a change made through this
process, and within RECHECK_SECONDS of one made by another (the admin CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from telentir_box.db.database import Database
from telentir_box.events.bus import CLOSED_REVOKED, Bus
from telentir_box.events.credentials import stream_principal

log = logging.getLogger("telentir_box.events")

RECHECK_SECONDS = 30.0


async def close_revoked_streams(bus: Bus, db: Database, now: datetime) -> int:
    """End every stream whose credential may no longer stream; how many were ended."""
    allowed: dict[str, bool] = {}
    closed = 0
    for subscription in bus.subscriptions():
        credential = subscription.credential
        if not isinstance(credential, str):
            continue
        if credential not in allowed:
            allowed[credential] = await stream_principal(db, credential, now) is not None
        if not allowed[credential]:
            bus.close(subscription, CLOSED_REVOKED)
            closed += 1
    if closed:
        log.info("closed event streams whose credentials were revoked", extra={"streams": closed})
    return closed


async def recheck_streams_periodically(
    bus: Bus, db: Database, clock: Callable[[], datetime], auth_changed: asyncio.Event
) -> None:
    while True:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
        # that races with the event being set, and stop() would then wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RECHECK_SECONDS):
                await auth_changed.wait()
        auth_changed.clear()
        if not bus.subscriber_count:
            continue
        try:
            await close_revoked_streams(bus, db, clock())
        except Exception:
            log.exception("could not recheck event stream credentials")
