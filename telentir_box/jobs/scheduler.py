"""The scheduled jobs of a running server: APScheduler's asyncio scheduler fires each
job at its slot (UTC), one instance at a time, and at start runs once each job whose
latest period was missed; the same jobs answer /api/cron/<job> with the cron secret.
Admin commands build this too but never start it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from telentir_box.auth.mail import Mailer
from telentir_box.config import BillingConfig, JobsConfig
from telentir_box.db.database import Database
from telentir_box.jobs.cleanup import CleanupRecordings
from telentir_box.jobs.figures import FigureSources
from telentir_box.jobs.periods import Slot
from telentir_box.jobs.reports import ReportJob
from telentir_box.jobs.runs import Job, JobRunner

log = logging.getLogger("telentir_box.jobs")
CATCH_UP = "catch-up"


@dataclass
class Jobs:
    runner: JobRunner
    sources: FigureSources  # the reports' figures; the calls issue sets its CallUsage here
    cron_secret: str
    # Set once the catch-up at start has ended (tests wait for it before moving the clock).
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    _scheduler: AsyncIOScheduler | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        return list(self.runner.jobs)

    def start(self) -> None:
        """Start firing the jobs; needs the running event loop."""
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            # One run at a time per job; runs missed by a busy loop collapse into one,
            # however late (the run's period claim keeps it to once per period).
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for name, job in self.runner.jobs.items():
            scheduler.add_job(self._fire, job.slot.trigger(), args=[name], id=name, replace_existing=True)
        scheduler.add_job(self._catch_up, "date", id=CATCH_UP, run_date=datetime.now(UTC))
        scheduler.start()
        self._scheduler = scheduler

    async def _catch_up(self) -> None:
        try:
            await self.runner.catch_up()
        finally:
            self.caught_up.set()

    async def _fire(self, name: str) -> None:
        try:
            await self.runner.trigger(name, "schedule")
        except Exception:
            log.exception("scheduled job could not start", extra={"job": name})

    async def stop(self) -> None:
        """Stop firing and interrupt the runs in progress (each keeps its progress)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        await self.runner.stop()

    def next_run(self, name: str) -> datetime | None:
        job = self._scheduler.get_job(name) if self._scheduler else None
        return job.next_run_time if job else None

    def secret_matches(self, given: str) -> bool:
        # Digests first: compare_digest is constant-time only for inputs of equal length.
        return hmac.compare_digest(
            hashlib.sha256(given.encode()).digest(), hashlib.sha256(self.cron_secret.encode()).digest()
        )


def build_jobs(
    config: JobsConfig,
    billing: BillingConfig,
    db: Database,
    mailer: Mailer,
    cron_secret: str,
    clock: Callable[[], datetime],
) -> Jobs:
    sources = FigureSources(db, billing.lead_price_cents)
    jobs: list[Job] = [
        CleanupRecordings(db, Slot.parse(config.cleanup_recordings_at), config.recording_retention_days),
        ReportJob("daily-summary", "daily_summary", Slot.parse(config.daily_summary_at), db, mailer, sources,
                  billing.currency),
        ReportJob("weekly-report", "weekly_report", Slot.parse(config.weekly_report_at), db, mailer, sources,
                  billing.currency),
    ]  # fmt: skip
    runner = JobRunner(db, {job.name: job for job in jobs}, clock)
    return Jobs(runner, sources, config.cron_secret or cron_secret)
