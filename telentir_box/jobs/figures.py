"""The figures the report emails carry, for a time window: calls (from the box's call
metadata), integration deliveries that went dead, and leads and credits from the
credit ledger. Figures only: nothing here knows a caller, a transcript or a summary."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Protocol

from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Database
from telentir_box.db.jobs import LeadFigures
from telentir_box.db.timestamps import iso


@dataclass(frozen=True, slots=True)
class CallFigures:
    """Calls that started in a window."""

    calls_in: int = 0
    calls_out: int = 0
    answered: int = 0
    voicemail: int = 0
    missed: int = 0
    seconds: int = 0  # talk time of the answered calls
    analysed: int = 0  # calls with a post-call analysis
    successful: int = 0  # of those, the ones the analysis judged successful

    def __add__(self, other: CallFigures) -> CallFigures:
        return CallFigures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def calls(self) -> int:
        return self.calls_in + self.calls_out

    @property
    def minutes(self) -> float:
        return round(self.seconds / 60, 1)

    @property
    def success_rate(self) -> float | None:
        """Percent of the analysed calls judged successful; None with nothing analysed."""
        return round(100 * self.successful / self.analysed, 1) if self.analysed else None


class CallUsage(Protocol):
    """Where the reports read calls from; the calls issue provides the real one."""

    async def call_figures(self, start: datetime, end: datetime) -> CallFigures: ...


class DeliveryFailures(Protocol):
    """Where the reports read failed integration deliveries from."""

    async def failed_deliveries(self, start: datetime, end: datetime) -> int: ...


@dataclass
class CallTable:
    """Calls from the box's own call metadata (the `calls` table)."""

    db: Database

    async def call_figures(self, start: datetime, end: datetime) -> CallFigures:
        async with self.db.reading() as conn:
            return CallFigures(*await jobs_repo.call_sums(conn, iso(start), iso(end)))


@dataclass
class DeliveryTable:
    """Integration deliveries that went dead (gave up) in the window."""

    db: Database

    async def failed_deliveries(self, start: datetime, end: datetime) -> int:
        async with self.db.reading() as conn:
            return await jobs_repo.dead_deliveries(conn, iso(start), iso(end))


@dataclass(frozen=True, slots=True)
class WindowFigures:
    start: datetime
    end: datetime
    calls: CallFigures
    leads: LeadFigures
    failed_deliveries: int
    balance_used_cents: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar of a chart: the calls of an hour or a day."""

    label: str
    calls: CallFigures


@dataclass
class FigureSources:
    db: Database
    lead_price_cents: int
    calls: CallUsage = field(init=False)
    deliveries: DeliveryFailures = field(init=False)

    def __post_init__(self) -> None:
        self.calls = CallTable(self.db)
        self.deliveries = DeliveryTable(self.db)

    async def window(self, start: datetime, end: datetime) -> WindowFigures:
        async with self.db.reading() as conn:
            leads = await jobs_repo.lead_figures(conn, iso(start), iso(end))
        return WindowFigures(
            start,
            end,
            await self.calls.call_figures(start, end),
            leads,
            await self.deliveries.failed_deliveries(start, end),
            leads.prepaid_used * self.lead_price_cents,
        )

    async def buckets(self, start: datetime, end: datetime, step: timedelta, label: str) -> list[Bucket]:
        """The window cut in `step`s, each labelled with strftime(`label`) of its start."""
        found = []
        at = start
        while at < end:
            found.append(Bucket(at.strftime(label), await self.calls.call_figures(at, at + step)))
            at += step
        return found
