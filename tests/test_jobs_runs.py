"""Job runs, in process with a clock the test sets: each period is done once whatever
triggers it, one run of a job at a time, a dead or stopped run is finished by the next
one from its checkpoint, and the start catches up a period missed while the box was down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from telentir_box.box import Box
from telentir_box.config import Config, ConfigError, load_config
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.jobs import RunRow
from telentir_box.jobs.periods import Period, Slot, day_period, week_period
from telentir_box.jobs.runs import JobRunner, RunContext

# A Tuesday noon well after the jobs began (the migration is applied now), so every
# slot is owed, and two days on is still the same week.
_LATER = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=10)
SOON = _LATER - timedelta(days=_LATER.weekday() - 1)


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@dataclass
class GatedJob:
    """A job given to the runner through its interface: it records a step, then waits
    for the test to open its gate (or fails there)."""

    db: Database
    name: str = "gated"
    slot: Slot = field(default_factory=lambda: Slot(6, 0))
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False
    seen: list[dict[str, object]] = field(default_factory=list)

    def period(self, slot: datetime) -> Period:
        return day_period(slot)

    async def run(self, context: RunContext) -> None:
        self.seen.append(dict(context.checkpoint))
        context.add("steps")
        context.checkpoint["step"] = context.counts["steps"]
        await self._save(context)
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the gate said no")

    async def _save(self, context: RunContext) -> None:
        await self.db.write(context.save)


@pytest.fixture
async def box(config: Config) -> AsyncIterator[Box]:
    started = await Box.start(config, clock=Clock(SOON))
    try:
        yield started
    finally:
        await started.stop()


def runner_with(box: Box, job: GatedJob, clock: Callable[[], datetime]) -> JobRunner:
    return JobRunner(box.db, {job.name: job}, clock)


async def runs(box: Box, job: str) -> list[RunRow]:
    async with box.db.reading() as conn:
        return (await jobs_repo.page_runs(conn, job, None, 100))[::-1]


def test_jobs_slots_name_the_latest_moment_and_match_the_scheduler() -> None:
    monday = Slot.parse("mon 09:00")
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert monday.latest(saturday) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    # The trigger fires on Monday (day names, not APScheduler's weekday numbers).
    fire = monday.trigger().get_next_fire_time(None, saturday)
    assert fire == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert monday.latest(fire) == fire
    daily = Slot.parse("18:00")
    assert daily.latest(datetime(2026, 12, 1, 17, 59, tzinfo=UTC)) == datetime(
        2026, 11, 30, 18, 0, tzinfo=UTC
    )
    assert daily.trigger().get_next_fire_time(None, saturday) == datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
    week = week_period(fire)
    assert (week.key, week.start, week.end) == (
        "2026-W49",
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2026, 12, 7, tzinfo=UTC),
    )
    day = day_period(daily.latest(saturday))
    assert (day.key, day.end - day.start) == ("2026-12-04", timedelta(days=1))


async def test_jobs_a_period_is_done_once_and_the_next_period_runs(box: Box) -> None:
    clock = Clock(SOON)
    job = GatedJob(box.db)
    job.gate.set()
    runner = runner_with(box, job, clock)
    first = await runner.trigger("gated", "schedule")
    assert (first.status, first.run.outcome, first.run.counts) == ("ran", "done", {"steps": 1})
    for trigger in ("http", "schedule", "startup"):
        again = await runner.trigger("gated", trigger)  # type: ignore[arg-type]
        assert (again.status, again.run.id) == ("already_done", first.run.id)
    clock.moment += timedelta(days=1)
    assert (await runner.trigger("gated", "http")).status == "ran"
    assert [run.outcome for run in await runs(box, "gated")] == ["done", "done"]
    assert len(job.seen) == 2


async def test_jobs_never_run_twice_at_once(box: Box) -> None:
    job = GatedJob(box.db)
    runner = runner_with(box, job, Clock(SOON))
    first = asyncio.create_task(runner.trigger("gated", "schedule"))
    await job.started.wait()
    second = await runner.trigger("gated", "http")
    assert second.status == "already_running"
    # Another process (the same database, its own runner) sees the live run too.
    other = runner_with(box, job, Clock(SOON))
    other.holder = f"{other.holder}-other"
    assert (await other.trigger("gated", "http")).status == "already_running"
    job.gate.set()
    assert (await first).run.outcome == "done"
    assert len(await runs(box, "gated")) == 1


async def test_jobs_a_dead_run_is_finished_from_its_checkpoint(box: Box) -> None:
    job = GatedJob(box.db)
    job.gate.set()
    period = job.period(job.slot.latest(SOON))

    async def dead_run(tx: Transaction) -> RunRow:
        run = await jobs_repo.insert_run(
            tx, job="gated", period=period.key, period_start="", period_end="", trigger="schedule",
            holder="999999999:1", started_at="2030-01-01T00:00:00.000Z", resumed=None,
        )  # fmt: skip
        await jobs_repo.save_progress(tx, run.id, {"steps": 3}, {"step": 3})
        return run

    dead = await box.db.write(dead_run)
    result = await runner_with(box, job, Clock(SOON)).trigger("gated", "http")
    assert result.status == "ran"
    assert result.run.resumed_from == dead.id
    assert job.seen == [{"step": 3}]
    assert result.run.counts == {"steps": 4}
    assert [(run.id, run.outcome) for run in await runs(box, "gated")] == [
        (dead.id, "interrupted"),
        (result.run.id, "done"),
    ]


async def test_jobs_a_failed_or_stopped_run_is_resumed_by_the_next(box: Box) -> None:
    job = GatedJob(box.db, fail=True)
    job.gate.set()
    runner = runner_with(box, job, Clock(SOON))
    failed = await runner.trigger("gated", "schedule")
    assert (failed.run.outcome, failed.run.error) == ("failed", "RuntimeError: the gate said no")
    job.fail, job.gate, job.started = False, asyncio.Event(), asyncio.Event()
    pending = asyncio.create_task(runner.trigger("gated", "http"))
    await job.started.wait()
    await runner.stop()  # the box stopping: the run is interrupted with its progress
    await asyncio.gather(pending, return_exceptions=True)
    job.gate.set()
    done = await runner.trigger("gated", "startup")
    found = await runs(box, "gated")
    assert [(run.outcome, run.resumed_from, run.counts) for run in found] == [
        ("failed", None, {"steps": 1}),
        ("interrupted", failed.run.id, {"steps": 2}),
        ("done", found[1].id, {"steps": 3}),
    ]
    assert done.run.id == found[2].id
    assert job.seen == [{}, {"step": 1}, {"step": 2}]


async def _wait_for_runs(box: Box, count: int) -> list[RunRow]:
    for _ in range(400):
        async with box.db.reading() as conn:
            found = [
                row for row in await jobs_repo.page_runs(conn, None, None, 100) if row.outcome != "running"
            ]
        if len(found) >= count:
            return found[::-1]
        await asyncio.sleep(0.025)
    raise AssertionError(f"expected {count} finished runs, found {found}")


async def test_jobs_the_start_runs_each_missed_period_once(config: Config) -> None:
    clock = Clock(SOON)
    box = await Box.start(config, clock=clock)
    try:
        box.jobs.start()
        first = await _wait_for_runs(box, 3)
        assert sorted((run.job, run.trigger, run.outcome) for run in first) == [
            ("cleanup-recordings", "startup", "done"),
            ("daily-summary", "startup", "done"),
            ("weekly-report", "startup", "done"),
        ]
        # The schedule takes over from the catch-up: the next fire is the next slot.
        assert box.jobs.next_run("daily-summary") > datetime.now(UTC)
    finally:
        await box.stop()
    # Down for two days: at the next start each daily job runs once, for its latest
    # period only; the weekly one was done for its period and stays done.
    clock.moment += timedelta(days=2)
    box = await Box.start(config, clock=clock)
    try:
        box.jobs.start()
        second = await _wait_for_runs(box, 5)
        assert sorted((run.job, run.period) for run in second[3:]) == [
            ("cleanup-recordings", (SOON + timedelta(days=2)).date().isoformat()),
            ("daily-summary", box.jobs.runner.period_now("daily-summary").key),
        ]
        await asyncio.sleep(0.2)
        assert len(await runs(box, "weekly-report")) == 1
    finally:
        await box.stop()


async def test_jobs_the_scheduler_fires_a_job_at_its_slot(box: Box) -> None:
    box.jobs.start()
    await _wait_for_runs(box, 3)  # the catch-up at start
    box.clock = Clock(SOON + timedelta(days=1))
    scheduled = box.jobs._scheduler.get_job("cleanup-recordings")  # type: ignore[union-attr]
    scheduled.modify(next_run_time=datetime.now(UTC))
    found = await _wait_for_runs(box, 4)
    assert (found[-1].job, found[-1].trigger, found[-1].outcome) == ("cleanup-recordings", "schedule", "done")
    assert box.jobs.next_run("cleanup-recordings").hour == 3  # back on its slot


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("DAILY_SUMMARY_AT", "24:00", "jobs.daily_summary_at"),
        ("CLEANUP_RECORDINGS_AT", "3:00", "jobs.cleanup_recordings_at"),
        ("WEEKLY_REPORT_AT", "1 09:00", "jobs.weekly_report_at"),
        ("WEEKLY_REPORT_AT", "09:00", "jobs.weekly_report_at"),
        ("RECORDING_RETENTION_DAYS", "-1", "jobs.recording_retention_days"),
        ("CRON_SECRET", "short", "jobs.cron_secret"),
    ],
)
def test_jobs_config_refuses_bad_schedules(key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(environ={f"TELENTIR_BOX_JOBS__{key}": value})
