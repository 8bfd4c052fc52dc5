"""Runs of the scheduled jobs, each done once per period: a trigger (the schedule, an
HTTP call, the catch-up at start) claims the period in the runs table, in one write,
before any work. A period already done is not done again; a run still going (in this
process, or in another live one) is not started twice; a run whose process died, or
that failed, is taken over by the next trigger, which carries on from the checkpoint
the dead run saved with its work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from telentir_box.connect.credits import holder_alive, process_holder
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.jobs import Outcome, RunRow, Trigger
from telentir_box.db.timestamps import iso
from telentir_box.digits import parse_digits
from telentir_box.errors import ValidationFailed
from telentir_box.jobs.periods import Period, Slot

log = logging.getLogger("telentir_box.jobs")
Status = Literal["ran", "already_done", "already_running"]
MAX_ERROR = 500


@dataclass
class RunContext:
    """What a job's run sees: its period and the progress it carries on from. A job
    changes `counts` and `checkpoint` and saves them with `save(tx)` inside the very
    transaction that does the work they record: a run cut short keeps what it last
    saved, and the run that finishes the period starts from there."""

    job: str
    run_id: int
    period: Period
    counts: dict[str, int]
    checkpoint: dict[str, Any]

    async def save(self, tx: Transaction) -> None:
        await jobs_repo.save_progress(tx, self.run_id, self.counts, self.checkpoint)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount


class Job(Protocol):
    name: str
    slot: Slot

    def period(self, slot: datetime) -> Period: ...

    async def run(self, context: RunContext) -> None: ...


class RunFailed(Exception):
    """A run that did part of its work (kept in its checkpoint) and must be retried."""


@dataclass(frozen=True, slots=True)
class TriggerResult:
    status: Status
    run: RunRow


@dataclass
class _Claim:
    status: Status | Literal["claimed"]
    run: RunRow


@dataclass
class JobRunner:
    db: Database
    jobs: dict[str, Job]
    clock: Callable[[], datetime]
    holder: str = field(default_factory=process_holder)
    _running: dict[str, tuple[RunRow, asyncio.Task[RunRow]]] = field(default_factory=dict)
    _claiming: asyncio.Lock = field(default_factory=asyncio.Lock)

    def period_now(self, name: str) -> Period:
        job = self.jobs[name]
        return job.period(job.slot.latest(self.clock()))

    async def trigger(
        self, name: str, trigger: Trigger, stopping: asyncio.Event | None = None
    ) -> TriggerResult:
        """Run `name` for the current period and wait for its end (or for `stopping`:
        then the run goes on, and the box's stop interrupts it with its progress kept)."""
        result, task = await self.begin(name, trigger)
        if task is None:
            return result
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.shield(task))}
        if stopping is not None:
            waits.add(asyncio.ensure_future(stopping.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if task.done() and not task.cancelled():
            return TriggerResult("ran", task.result())
        return result

    async def begin(self, name: str, trigger: Trigger) -> tuple[TriggerResult, asyncio.Task[RunRow] | None]:
        """Claim the current period and start the run in its own task (a caller that
        goes away does not stop it); the task is None when nothing was started."""
        job = self.jobs[name]
        period = self.period_now(name)
        async with self._claiming:
            if name in self._running:
                return TriggerResult("already_running", self._running[name][0]), None
            claim = await self.db.write(lambda tx: self._claim(tx, job, period, trigger))
            if claim.status != "claimed":
                return TriggerResult(claim.status, claim.run), None  # type: ignore[arg-type]
            run = claim.run
            context = RunContext(name, run.id, period, dict(run.counts), dict(run.checkpoint))
            task = asyncio.create_task(self._execute(job, context), name=f"job-{name}")
            self._running[name] = (run, task)
        log.info(
            "job started",
            extra={"job": name, "period": period.key, "run": run.id, "trigger": trigger},
        )
        return TriggerResult("ran", run), task

    async def _claim(self, tx: Transaction, job: Job, period: Period, trigger: Trigger) -> _Claim:
        earlier = await jobs_repo.runs_of_period(tx.conn, job.name, period.key)
        for run in earlier:
            if run.outcome == "done":
                return _Claim("already_done", run)
        resumed = earlier[-1] if earlier else None
        now = iso(self.clock())
        if resumed is not None and resumed.outcome == "running":
            if self._alive(resumed.holder):
                return _Claim("already_running", resumed)
            await jobs_repo.finish_run(tx, resumed.id, "interrupted", now, "its process stopped")
        run = await jobs_repo.insert_run(
            tx,
            job=job.name,
            period=period.key,
            period_start=iso(period.start),
            period_end=iso(period.end),
            trigger=trigger,
            holder=self.holder,
            started_at=now,
            resumed=resumed,
        )
        return _Claim("claimed", run)

    def _alive(self, holder: str) -> bool:
        # Claims are made under _claiming, so a run of this process that is not in
        # _running has ended without finishing its row (its task was cancelled).
        if holder == self.holder:
            return False
        return holder_alive(holder)

    async def _execute(self, job: Job, context: RunContext) -> RunRow:
        # Off the running list only once its row is finished: until then a trigger must
        # see it as running, not as a dead run to take over.
        try:
            outcome: Outcome = "done"
            error = ""
            try:
                await job.run(context)
            except asyncio.CancelledError:
                await self._finish(context, "interrupted", "the box stopped")
                raise
            except Exception as exc:
                log.exception("job failed", extra={"job": job.name, "run": context.run_id})
                outcome, error = (
                    "failed",
                    (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__),
                )
            run = await self._finish(context, outcome, error[:MAX_ERROR])
        finally:
            self._running.pop(job.name, None)
        log.info(
            "job ended",
            extra={"job": job.name, "run": run.id, "outcome": run.outcome, "counts": context.counts},
        )
        return run

    async def _finish(self, context: RunContext, outcome: Outcome, error: str = "") -> RunRow:
        async def write(tx: Transaction) -> RunRow | None:
            # An interrupted run's context may lag behind its last committed step (the
            # write its cancellation cut short still committed, with its progress).
            if outcome != "interrupted":
                await context.save(tx)
            return await jobs_repo.finish_run(tx, context.run_id, outcome, iso(self.clock()), error)

        finished = await self.db.write(write)
        if finished is None:  # taken over meanwhile: say what the row holds now
            async with self.db.reading() as conn:
                finished = await jobs_repo.get_run(conn, context.run_id)
        assert finished is not None
        return finished

    async def catch_up(self) -> None:
        """At start: run once each job whose latest period, since the jobs began, is not
        done (missed while the box was down, or failed, or cut short)."""
        async with self.db.reading() as conn:
            began = await jobs_repo.jobs_began_at(conn)
        for name in self.jobs:
            period = self.period_now(name)
            if began is None or iso(period.slot) < began:
                continue
            async with self.db.reading() as conn:
                owed = not await jobs_repo.is_done(conn, name, period.key)
            if owed:
                try:
                    await self.trigger(name, "startup")
                except Exception:
                    log.exception("job catch-up failed", extra={"job": name})

    async def stop(self) -> None:
        """Interrupt the runs in progress; each records how far it got."""
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled before it began never ran the code that ends its row.
        for name, (run, _) in list(self._running.items()):
            del self._running[name]
            stopped_at = iso(self.clock())
            await self.db.write(
                lambda tx, run=run, at=stopped_at: jobs_repo.finish_run(
                    tx, run.id, "interrupted", at, "the box stopped"
                )
            )


async def list_runs(
    db: Database, job: str | None, cursor: str | None, size: int
) -> tuple[list[RunRow], str | None]:
    """One page of runs, newest first, and the cursor of the next page (None at the end)."""
    before = None
    if cursor:
        before = parse_digits(cursor, 18)
        if before is None:
            raise ValidationFailed("`cursor` is not a cursor this listing returned")
    async with db.reading() as conn:
        rows = await jobs_repo.page_runs(conn, job, before, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return rows, (str(rows[-1].id) if more else None)
