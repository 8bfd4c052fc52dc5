"""The one timestamp format of every table: ISO 8601 UTC with milliseconds, exactly as
SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes the column defaults, so rows
stamped in Python and rows stamped by SQLite compare and sort as text."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_now() -> str:
    return iso(datetime.now(UTC))
