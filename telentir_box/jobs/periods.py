"""When each job runs and which period a run does: a job's slot is its configured time
(UTC), and a run at any moment does the period of the latest slot at or before it, so
the schedule, an HTTP call and a catch-up at start all name the same period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Slot:
    """A daily ("HH:MM") or weekly ("ddd HH:MM") time of day in UTC."""

    hour: int
    minute: int
    weekday: int | None = None  # 0 = Monday, as datetime.weekday()

    @classmethod
    def parse(cls, text: str) -> Slot:
        day, _, time = text.rpartition(" ")
        hour, minute = (int(part) for part in time.split(":"))
        return cls(hour, minute, _WEEKDAYS.index(day) if day else None)

    def trigger(self) -> CronTrigger:
        # Day names, never numbers: APScheduler counts weekdays from Monday = 0, cron from Sunday.
        day_of_week = _WEEKDAYS[self.weekday] if self.weekday is not None else "*"
        return CronTrigger(day_of_week=day_of_week, hour=self.hour, minute=self.minute, timezone=UTC)

    def latest(self, now: datetime) -> datetime:
        """The latest slot at or before `now`."""
        at = now.astimezone(UTC).replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.weekday is None:
            return at if at <= now else at - DAY
        at -= timedelta(days=(at.weekday() - self.weekday) % 7)
        return at if at <= now else at - WEEK


@dataclass(frozen=True, slots=True)
class Period:
    """What one run does: `key` names it in the runs table; [start, end) is its window."""

    key: str
    slot: datetime
    start: datetime
    end: datetime


def day_period(slot: datetime) -> Period:
    """The 24 hours before the slot, named by the slot's date."""
    return Period(slot.date().isoformat(), slot, slot - DAY, slot)


def week_period(slot: datetime) -> Period:
    """The seven whole UTC days before the slot's day, named by their ISO week."""
    end = slot.replace(hour=0, minute=0)
    start = end - WEEK
    year, week, _ = start.isocalendar()
    return Period(f"{year}-W{week:02d}", slot, start, end)
