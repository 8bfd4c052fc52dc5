"""Repository for scheduled jobs: their runs (one row per run, claimed per period),
the report opt-outs, the recordings the retention job expires, and the figures the
reports read from the credit ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction

Trigger = Literal["schedule", "http", "startup"]
Outcome = Literal["running", "done", "failed", "interrupted"]
_RUN_COLUMNS = (
    "id, job, period, period_start, period_end, trigger, outcome, holder, resumed_from,"
    " started_at, finished_at, counts, checkpoint, error"
)


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    job: str
    period: str
    period_start: str
    period_end: str
    trigger: Trigger
    outcome: Outcome
    holder: str
    resumed_from: int | None
    started_at: str
    finished_at: str | None
    counts: dict[str, int]
    checkpoint: dict[str, Any]
    error: str


def _run(r: Row) -> RunRow:
    return RunRow(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
        json.loads(r[11]), json.loads(r[12]), r[13],
    )  # fmt: skip


async def runs_of_period(conn: Connection, job: str, period: str) -> list[RunRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE job = ? AND period = ? ORDER BY id", (job, period)
    )
    return [_run(r) for r in rows]


async def get_run(conn: Connection, run_id: int) -> RunRow | None:
    rows = await conn.execute_fetchall(f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE id = ?", (run_id,))
    return _run(rows[0]) if rows else None


async def insert_run(
    tx: Transaction,
    *,
    job: str,
    period: str,
    period_start: str,
    period_end: str,
    trigger: Trigger,
    holder: str,
    started_at: str,
    resumed: RunRow | None,
) -> RunRow:
    """A new running run; one resuming `resumed` starts from its counts and checkpoint."""
    counts = resumed.counts if resumed else {}
    checkpoint = resumed.checkpoint if resumed else {}
    async with tx.conn.execute(
        "INSERT INTO job_runs (job, period, period_start, period_end, trigger, holder, resumed_from,"
        " started_at, counts, checkpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        f" RETURNING {_RUN_COLUMNS}",
        (
            job,
            period,
            period_start,
            period_end,
            trigger,
            holder,
            resumed.id if resumed else None,
            started_at,
            json.dumps(counts),
            json.dumps(checkpoint),
        ),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return _run(row)


async def save_progress(
    tx: Transaction, run_id: int, counts: dict[str, int], checkpoint: dict[str, Any]
) -> None:
    await tx.conn.execute(
        "UPDATE job_runs SET counts = ?, checkpoint = ? WHERE id = ?",
        (json.dumps(counts), json.dumps(checkpoint), run_id),
    )


async def finish_run(
    tx: Transaction, run_id: int, outcome: Outcome, finished_at: str, error: str = ""
) -> RunRow | None:
    """End a running run; None if it was no longer running (taken over meanwhile)."""
    async with tx.conn.execute(
        "UPDATE job_runs SET outcome = ?, finished_at = ?, holder = '', error = ?"
        f" WHERE id = ? AND outcome = 'running' RETURNING {_RUN_COLUMNS}",
        (outcome, finished_at, error, run_id),
    ) as cursor:
        row = await cursor.fetchone()
    return _run(row) if row else None


async def has_run(conn: Connection, job: str, period: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM job_runs WHERE job = ? AND period = ? LIMIT 1", (job, period)
    )
    return bool(rows)


async def is_done(conn: Connection, job: str, period: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM job_runs WHERE job = ? AND period = ? AND outcome = 'done'", (job, period)
    )
    return bool(rows)


async def page_runs(conn: Connection, job: str | None, before: int | None, limit: int) -> list[RunRow]:
    """Newest first, below the id `before` when given."""
    clauses, params = ["1 = 1"], []
    if job is not None:
        clauses.append("job = ?")
        params.append(job)
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    rows = await conn.execute_fetchall(
        f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [_run(r) for r in rows]


async def jobs_began_at(conn: Connection) -> str | None:
    """When this box first had its jobs (migration 0012): no period before it is owed."""
    rows = await conn.execute_fetchall("SELECT applied_at FROM schema_version WHERE version = 12")
    return rows[0][0] if rows else None


# Report opt-outs


@dataclass(frozen=True, slots=True)
class Preferences:
    daily_summary: bool
    weekly_report: bool


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    email: str


async def get_preferences(conn: Connection, user_id: str) -> Preferences:
    rows = await conn.execute_fetchall(
        "SELECT daily_summary, weekly_report FROM job_preferences WHERE user_id = ?", (user_id,)
    )
    if not rows:
        return Preferences(daily_summary=True, weekly_report=True)
    return Preferences(bool(rows[0][0]), bool(rows[0][1]))


async def set_preferences(tx: Transaction, user_id: str, preferences: Preferences) -> None:
    await tx.conn.execute(
        "INSERT INTO job_preferences (user_id, daily_summary, weekly_report, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET daily_summary = excluded.daily_summary,"
        " weekly_report = excluded.weekly_report, updated_at = excluded.updated_at",
        (user_id, int(preferences.daily_summary), int(preferences.weekly_report), tx.now),
    )


async def report_recipients(
    conn: Connection, report: Literal["daily_summary", "weekly_report"]
) -> list[Recipient]:
    """Owners, admins and the super admin who have not turned `report` off, oldest first."""
    rows = await conn.execute_fetchall(
        "SELECT u.id, u.email FROM users u LEFT JOIN job_preferences p ON p.user_id = u.id"
        " WHERE (u.role IN ('owner', 'admin') OR u.super_admin = 1)"
        f" AND COALESCE(p.{report}, 1) = 1 ORDER BY u.created_at, u.id"
    )
    return [Recipient(r[0], r[1]) for r in rows]


# Recordings the retention job expires


@dataclass(frozen=True, slots=True)
class RecordingRow:
    call_id: str
    user_id: str
    object_id: str


async def remember_recording(
    tx: Transaction, call_id: str, user_id: str, object_id: str, created_at: str
) -> None:
    """A call's recording, for the retention job, made at `created_at` on the clock the
    job's cutoff comes from; storing a new version of the same object (a better
    recording arrived) keeps the first row and its age."""
    await tx.conn.execute(
        "INSERT INTO call_recordings (call_id, user_id, object_id, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (call_id, object_id) DO NOTHING",
        (call_id, user_id, object_id, created_at),
    )


async def recordings_older_than(conn: Connection, cutoff: str, limit: int) -> list[RecordingRow]:
    """Recordings made before `cutoff` and not yet expired, oldest first."""
    rows = await conn.execute_fetchall(
        "SELECT call_id, user_id, object_id FROM call_recordings"
        " WHERE expired_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
        (cutoff, limit),
    )
    return [RecordingRow(r[0], r[1], r[2]) for r in rows]


async def mark_expired(tx: Transaction, recording: RecordingRow) -> None:
    await tx.conn.execute(
        "UPDATE call_recordings SET expired_at = ? WHERE call_id = ? AND object_id = ?",
        (tx.now, recording.call_id, recording.object_id),
    )


# Figures from the credit ledger


@dataclass(frozen=True, slots=True)
class LeadFigures:
    leads: int  # leads stored, one credit each
    allowance_used: int
    prepaid_used: int  # by leads and by call charges past the plan


async def lead_figures(conn: Connection, start: str, end: str) -> LeadFigures:
    """Credits consumed in [start, end). A lead's credit is consumed by settling its
    reservation; a call's charge is consumed with no reservation, so it is no lead."""
    rows = await conn.fetchall_in_thread(
        "SELECT COALESCE(SUM(CASE WHEN reservation_id IS NOT NULL THEN amount END), 0),"
        " COALESCE(SUM(CASE source WHEN 'allowance' THEN amount END), 0),"
        " COALESCE(SUM(CASE source WHEN 'prepaid' THEN amount END), 0)"
        " FROM credit_ledger WHERE kind = 'consume' AND created_at >= ? AND created_at < ?",
        (start, end),
    )
    return LeadFigures(int(rows[0][0]), int(rows[0][1]), int(rows[0][2]))


async def dead_deliveries(conn: Connection, start: str, end: str) -> int:
    """Integration deliveries given up on (dead) in [start, end)."""
    rows = await conn.execute_fetchall(
        "SELECT COUNT(*) FROM integration_deliveries"
        " WHERE status = 'dead' AND updated_at >= ? AND updated_at < ?",
        (start, end),
    )
    return int(rows[0][0])


async def call_sums(conn: Connection, start: str, end: str) -> tuple[int, ...]:
    """calls in, calls out, answered, voicemail, missed, seconds answered, analysed,
    successful: of the final calls started in [start, end). Answered is the Call
    model's completed or callback. In a thread: a week is thousands of rows."""
    rows = await conn.fetchall_in_thread(
        "SELECT COALESCE(SUM(direction = 'inbound'), 0), COALESCE(SUM(direction = 'outbound'), 0),"
        " COALESCE(SUM(status IN ('completed', 'callback')), 0), COALESCE(SUM(status = 'voicemail'), 0),"
        " COALESCE(SUM(status = 'missed'), 0),"
        " COALESCE(SUM(CASE WHEN status IN ('completed', 'callback') THEN duration_seconds END), 0),"
        " COALESCE(SUM(successful IS NOT NULL), 0), COALESCE(SUM(successful = 1), 0)"
        " FROM calls WHERE final = 1 AND started_at >= ? AND started_at < ?",
        (start, end),
    )
    return tuple(int(value) for value in rows[0])
