"""Call usage per user and month (UTC), from the box's call metadata: how many calls
and how many seconds, inbound and outbound, for billing and reports."""

from __future__ import annotations

from datetime import datetime

import msgspec

from telentir_box.db import calls as repo
from telentir_box.db.database import Database


class DirectionUsage(msgspec.Struct):
    calls: int
    seconds: int


class CallUsage(msgspec.Struct):
    period: str
    start: str
    end: str
    inbound: DirectionUsage
    outbound: DirectionUsage


def period_bounds(period: str) -> tuple[str, str]:
    """[start, end) of the month `period` (YYYY-MM), in the database's time format."""
    year, month = (int(part) for part in period.split("-"))
    following = f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"
    return f"{period}-01T00:00:00.000Z", f"{following}-01T00:00:00.000Z"


async def call_usage(db: Database, user_id: str, period: str | None, now: datetime) -> CallUsage:
    period = period or now.strftime("%Y-%m")
    start, end = period_bounds(period)
    async with db.reading() as conn:
        rows = {row.direction: row for row in await repo.usage(conn, user_id, start, end)}

    def of(direction: str) -> DirectionUsage:
        row = rows.get(direction)
        return DirectionUsage(row.calls, row.seconds) if row else DirectionUsage(0, 0)

    return CallUsage(period, start, end, of("inbound"), of("outbound"))
