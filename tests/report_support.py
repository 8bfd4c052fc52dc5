"""What the report-email tests share: the next slot of a job after now, the two parts
of a report email, and a figure as each part shows it."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.message import Message


def next_slot(hour: int, weekday: int | None = None) -> datetime:
    """The first slot after now: the window of the report it starts holds this moment."""
    at = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    while at <= datetime.now(UTC) or (weekday is not None and at.weekday() != weekday):
        at += timedelta(days=1)
    return at


def clear_of_boundaries(hours: tuple[int, ...], margin: timedelta) -> None:
    """Wait, when an hour in `hours` (UTC) is less than `margin` away, until it is past:
    calls are stamped on the wall clock, so a module that makes calls and then counts them
    in the report window of that hour must not straddle it (a wait seen on a run in a
    thousand or so, never longer than `margin`)."""
    now = datetime.now(UTC)
    for hour in hours:
        boundary = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        if boundary <= now:
            boundary += timedelta(days=1)
        if boundary - now < margin:
            time.sleep((boundary - now).total_seconds() + 1)


def parts(message: Message) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()  # type: ignore[misc]
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    return text.get_payload(decode=True).decode(), html.get_payload(decode=True).decode()


def figure(text: str, name: str) -> str:
    """The value on the plain-text line of `name`."""
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return line[len(name) :].split()[0]


def html_figure(html: str, name: str) -> str:
    """The value in the HTML row of `name` (its first word, as `figure`)."""
    row = re.search(rf'<td style="[^"]*">{re.escape(name)}</td>\s*<td align="right"[^>]*>([^<]*)</td>', html)
    assert row, name
    return row[1].split()[0]
