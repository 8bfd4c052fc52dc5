"""HTTP face of the scheduled jobs: /api/cron/<job> (GET or POST, Bearer cron secret)
runs a job for its current period, /api/jobs/runs lists runs (admins), and
/api/jobs/preferences holds the caller's report opt-outs."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, post, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from telentir_box.auth.guards import header_token, requires_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.db.jobs import Preferences, RunRow
from telentir_box.errors import AppError, NotFound, ServiceUnavailable, Unauthorized
from telentir_box.jobs import preferences
from telentir_box.jobs.runs import TriggerResult, list_runs
from telentir_box.web.paging import Limit, page_size

DEFAULT_PAGE = 50
_MESSAGES = {
    "ran": "the run ended",
    "already_done": "already done: this period was done by the earlier run shown; nothing ran",
    "already_running": "already running: the run shown is doing this job; nothing more was started",
}


class JobFailed(AppError):
    code, status, default_message = "JOB_FAILED", 500, "The job failed"


class JobRun(msgspec.Struct):
    id: int
    job: str
    period: str
    period_start: str
    period_end: str
    trigger: str
    outcome: str
    started_at: str
    finished_at: str | None
    counts: dict[str, int]
    resumed_from: int | None
    error: str


class CronAnswer(msgspec.Struct):
    status: str  # ran | already_done | already_running
    message: str
    run: JobRun


class RunPage(msgspec.Struct):
    items: list[JobRun]
    next_cursor: str | None


class ReportPreferences(msgspec.Struct, forbid_unknown_fields=True):
    daily_summary: bool
    weekly_report: bool


def job_run(row: RunRow) -> JobRun:
    return JobRun(
        row.id, row.job, row.period, row.period_start, row.period_end, row.trigger, row.outcome,
        row.started_at, row.finished_at, row.counts, row.resumed_from, row.error,
    )  # fmt: skip


async def requires_cron_secret(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    token = header_token(connection.scope)
    if token is None or not connection.app.state.box.jobs.secret_matches(token):
        raise Unauthorized("A valid cron secret is required (Authorization: Bearer <cron secret>)")


async def run_job(box: Box, job: str) -> CronAnswer:
    if job not in box.jobs.names:
        raise NotFound(f"no job named {job!r}; the jobs are {', '.join(box.jobs.names)}")
    result: TriggerResult = await box.jobs.runner.trigger(job, "http", stopping=box.stopping)
    run = result.run
    if run.outcome == "running" and result.status == "ran":
        raise ServiceUnavailable(f"the box is stopping; run {run.id} is finished at its next start")
    if run.outcome == "failed" and result.status == "ran":
        raise JobFailed(f"{job} for {run.period} failed (run {run.id}, kept for the next run): {run.error}")
    return CronAnswer(result.status, _MESSAGES[result.status], job_run(run))


class CronController(Controller):
    path = "/cron"
    tags = ["jobs"]
    guards = [requires_cron_secret]

    @get("/{job:str}", summary="Run a scheduled job for its current period (for external schedulers)")
    async def run_by_get(self, box: NamedDependency[Box], job: FromPath[str]) -> CronAnswer:
        return await run_job(box, job)

    @post("/{job:str}", status_code=200, summary="Run a scheduled job for its current period")
    async def run_by_post(self, box: NamedDependency[Box], job: FromPath[str]) -> CronAnswer:
        return await run_job(box, job)


class JobsController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @get("/runs", guards=[requires_role("admin")], summary="Runs of the scheduled jobs, newest first")
    async def list_job_runs(
        self,
        box: NamedDependency[Box],
        job: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = None,
    ) -> RunPage:
        rows, next_cursor = await list_runs(box.db, job, cursor, page_size(limit, DEFAULT_PAGE))
        return RunPage([job_run(row) for row in rows], next_cursor)

    @get("/preferences", guards=[requires_auth], summary="Which report emails the caller receives")
    async def get_preferences(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> ReportPreferences:
        found = await preferences.get_preferences(box.db, principal.user_id)
        return ReportPreferences(found.daily_summary, found.weekly_report)

    @put("/preferences", guards=[requires_auth], summary="Turn the daily summary or weekly report on or off")
    async def set_preferences(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[ReportPreferences],
    ) -> ReportPreferences:
        chosen = Preferences(data.daily_summary, data.weekly_report)
        await preferences.set_preferences(box.db, principal.user_id, chosen)
        return data


job_routes = [CronController, JobsController]
