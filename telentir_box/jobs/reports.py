"""daily-summary and weekly-report: one email (plain text and HTML, with a bar chart
made of table cells, so it shows in mail clients that load no images) to each owner
and admin who has not turned the report off. The recipients already mailed are the
run's checkpoint, so a run finished by the next one mails only the others."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from importlib import resources
from typing import Any, Literal

import jinja2

from telentir_box.auth.mail import Mailer
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Database
from telentir_box.jobs.figures import Bucket, FigureSources, WindowFigures
from telentir_box.jobs.periods import DAY, Period, Slot, day_period, week_period
from telentir_box.jobs.runs import RunContext, RunFailed

Kind = Literal["daily_summary", "weekly_report"]
BAR_CHARS = 30
_DAY_COLUMNS = ("calls in", "calls out", "answered", "minutes", "leads")


def _templates() -> jinja2.Environment:
    # Read through importlib so they load from a wheel and from the zipapp alike.
    folder = resources.files("telentir_box.jobs") / "templates"
    sources = {name: (folder / name).read_text(encoding="utf-8") for name in ("report.html", "report.txt")}
    return jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True, slots=True)
class Email:
    subject: str
    text: str
    html: str


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency.upper()}"


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:g}%"


def _metrics(figures: WindowFigures, currency: str) -> list[tuple[str, Any]]:
    calls, leads = figures.calls, figures.leads
    return [
        ("Calls in", calls.calls_in),
        ("Calls out", calls.calls_out),
        ("Answered", calls.answered),
        ("Voicemail", calls.voicemail),
        ("Missed", calls.missed),
        ("Minutes", f"{calls.minutes:g}"),
        ("Success rate", _rate(calls.success_rate)),
        ("Leads ingested", leads.leads),
        ("Plan credits used", leads.allowance_used),
        ("Prepaid credits used", leads.prepaid_used),
        ("Balance used", _money(figures.balance_used_cents, currency)),
        ("Failed integration deliveries", figures.failed_deliveries),
    ]


def _change(now: Any, before: Any) -> str:
    if not isinstance(now, int) or not isinstance(before, int):
        return ""
    difference = now - before
    if before == 0:
        return f"{difference:+d}"
    return f"{difference:+d}, {100 * difference / before:+.0f}%"


def _bars(buckets: list[Bucket]) -> list[dict[str, Any]]:
    top = max((bucket.calls.calls for bucket in buckets), default=0) or 1
    return [
        {
            "label": bucket.label,
            "value": bucket.calls.calls,
            # At least 1% so a zero still draws a cell the width attribute can hold.
            "width": max(1, round(100 * bucket.calls.calls / top)),
            "text_bar": "#" * round(BAR_CHARS * bucket.calls.calls / top),
        }
        for bucket in buckets
    ]


def render(context: dict[str, Any]) -> tuple[str, str]:
    environment = _templates()
    return environment.get_template("report.txt").render(context), environment.get_template(
        "report.html"
    ).render(context)


@dataclass
class ReportJob:
    """The daily summary (the 24 hours before its slot, hour by hour) or the weekly
    report (the seven days before its slot's day, day by day, against the week before)."""

    name: str
    kind: Kind
    slot: Slot
    db: Database
    mailer: Mailer
    sources: FigureSources
    currency: str

    def period(self, slot: datetime) -> Period:
        return day_period(slot) if self.kind == "daily_summary" else week_period(slot)

    async def compose(self, period: Period) -> Email:
        figures = await self.sources.window(period.start, period.end)
        metrics = [
            {"name": name, "value": value, "change": "", "previous": ""}
            for name, value in _metrics(figures, self.currency)
        ]
        context: dict[str, Any] = {
            "metrics": metrics,
            "days": [],
            "day_columns": _DAY_COLUMNS,
            "has_changes": False,
            "setting": self.kind,
        }
        if self.kind == "daily_summary":
            buckets = await self.sources.buckets(period.start, period.end, timedelta(hours=1), "%H:00")
            label = f"24 hours to {period.end:%a %d %b %Y %H:%M} UTC"
            context |= {"title": "Daily summary", "chart_title": "Calls per hour (UTC)"}
        else:
            before = await self.sources.window(period.start - (period.end - period.start), period.start)
            for metric, (_, previous) in zip(metrics, _metrics(before, self.currency), strict=True):
                metric["change"], metric["previous"] = _change(metric["value"], previous), previous
            buckets = await self.sources.buckets(period.start, period.end, DAY, "%a %d %b")
            context["days"] = [await self._day(bucket, period, index) for index, bucket in enumerate(buckets)]
            label = f"Week {period.key}: {period.start:%a %d %b} to {period.end - DAY:%a %d %b %Y} (UTC)"
            context |= {"title": "Weekly report", "chart_title": "Calls per day", "has_changes": True}
        context |= {"period_label": label, "bars": _bars(buckets)}
        text, html = render(context)
        return Email(f"{context['title']}: {label}", text, html)

    async def _day(self, bucket: Bucket, period: Period, index: int) -> dict[str, Any]:
        start = period.start + index * DAY
        leads = (await self.sources.window(start, start + DAY)).leads.leads
        calls = bucket.calls
        values = [calls.calls_in, calls.calls_out, calls.answered, f"{calls.minutes:g}", leads]
        return {"label": bucket.label, "cells": values}

    async def run(self, context: RunContext) -> None:
        email = await self.compose(context.period)
        async with self.db.reading() as conn:
            recipients = await jobs_repo.report_recipients(conn, self.kind)
        sent = set(context.checkpoint.get("sent", []))
        context.counts["recipients"] = len(recipients)
        context.counts.setdefault("sent", 0)
        failed = 0
        for recipient in recipients:
            if recipient.user_id in sent:
                continue
            if not await self.mailer.send_message(self._message(recipient.email, email)):
                failed += 1
                continue
            sent.add(recipient.user_id)
            context.checkpoint["sent"] = sorted(sent)
            context.add("sent")
            await self.db.write(context.save)
        context.counts["failed"] = failed
        if failed:
            raise RunFailed(f"{failed} of {len(recipients)} emails were not sent; the next run sends them")

    def _message(self, to: str, email: Email) -> EmailMessage:
        message = EmailMessage()
        message["To"] = to
        message["Subject"] = email.subject
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message
