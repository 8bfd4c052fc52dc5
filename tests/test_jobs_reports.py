"""The report emails over the app, mail going to a real local SMTP server: each owner
and admin who has not opted out gets them once per period, whatever triggers it; the
weekly report compares call figures the test places in time (the calls source stood
in for) with the week before. The figures of real calls, leads and deliveries in both
parts of the mail: test_after_calls.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Transaction
from telentir_box.jobs.figures import CallFigures, CallTable, DeliveryTable
from tests.auth_support import FAST_ENV, Inbox, call, setup_owner, smtp_server
from tests.conftest import free_port
from tests.report_support import next_slot, parts
from tests.test_connect_routes import add_user


@dataclass
class Calls:
    """The reports' calls source stood in for: the figures of calls the test places in
    time, so a week can be set against the week before."""

    placed: list[tuple[datetime, CallFigures]] = field(default_factory=list)

    async def call_figures(self, start: datetime, end: datetime) -> CallFigures:
        total = CallFigures()
        for moment, figures in self.placed:
            if start <= moment < end:
                total += figures
        return total


@dataclass
class Setup:
    app: TestClient
    inbox: Inbox
    secret: str
    tokens: dict[str, str]
    ids: dict[str, str]
    calls: Calls

    def cron(self, job: str, method: str = "GET", secret: str | None = None) -> Any:
        return call(self.app, method, f"/api/cron/{job}", secret if secret is not None else self.secret)

    def at(self, moment: datetime) -> None:
        self.app.app.state.box.clock = lambda: moment


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    data_dir = tmp_path_factory.mktemp("reports") / "data"
    port = free_port()
    with smtp_server(port) as inbox:
        environ = {
            **FAST_ENV,
            "TELENTIR_BOX_DATA__DIR": str(data_dir),
            "TELENTIR_BOX_LOG__FORMAT": "text",
            "TELENTIR_BOX_SMTP__HOST": "127.0.0.1",
            "TELENTIR_BOX_SMTP__PORT": str(port),
            "TELENTIR_BOX_SMTP__STARTTLS": "false",
        }
        with TestClient(create_app(load_config(environ=environ))) as app:
            box = app.app.state.box
            owner = setup_owner(app, data_dir)
            admin, member = add_user(app, "admin@example.com", "admin"), add_user(app, "member@example.com")
            assert app.blocking_portal is not None
            owner_id = app.blocking_portal.call(box.authenticator.resolve, owner).user_id
            # The catch-up at start is over before any test moves the clock.
            app.blocking_portal.call(box.jobs.caught_up.wait)
            calls = Calls()
            box.jobs.sources.calls = calls
            yield Setup(
                app,
                inbox,
                box.jobs.cron_secret,
                {"owner": owner, "admin": admin["api_key"], "member": member["api_key"]},
                {"owner": owner_id, "admin": admin["id"], "member": member["id"]},
                calls,
            )


def test_jobs_weekly_report_goes_day_by_day_against_the_week_before(setup: Setup) -> None:
    slot = next_slot(9, weekday=0)
    setup.at(slot + timedelta(hours=1))
    week_start = slot.replace(hour=0) - timedelta(days=7)
    setup.calls.placed[:] = [
        (week_start + timedelta(days=1, hours=10), CallFigures(calls_in=6, answered=6, seconds=600)),
        (week_start - timedelta(days=2), CallFigures(calls_in=2, answered=2, seconds=60)),
    ]
    before = len(setup.inbox.messages)
    response = setup.cron("weekly-report", "POST")
    assert response.status_code == 200, response.text
    mails = setup.inbox.messages[before:]
    assert len(mails) == 2
    text, html = parts(mails[0])
    assert "Weekly report" in mails[0]["Subject"]
    label = f"{week_start + timedelta(days=1):%a %d %b}"
    day_line = next(line for line in text.splitlines() if line.startswith(label) and "|" not in line)
    assert day_line.split()[3:7] == ["6", "0", "6", "10"]  # in, out, answered, minutes
    calls_in = next(line for line in text.splitlines() if line.startswith("Calls in "))
    assert "(+4, +200% on the week before: 2)" in calls_in
    assert "+4, +200% (was 2)" in html
    assert "Day by day" in html and html.count('bgcolor="#2f6fde"') == 7


def test_jobs_an_opted_out_user_gets_nothing(setup: Setup) -> None:
    app = setup.app
    assert call(app, "GET", "/api/jobs/preferences", setup.tokens["admin"]).json() == {
        "daily_summary": True,
        "weekly_report": True,
    }
    off = {"daily_summary": False, "weekly_report": True}
    response = call(app, "PUT", "/api/jobs/preferences", setup.tokens["admin"], json=off)
    assert (response.status_code, response.json()) == (200, off)
    assert call(app, "GET", "/api/jobs/preferences", setup.tokens["admin"]).json() == off
    setup.at(next_slot(18) + timedelta(days=1, minutes=3))
    before = len(setup.inbox.messages)
    answer = setup.cron("daily-summary").json()
    assert answer["run"]["counts"] == {"recipients": 1, "sent": 1, "failed": 0}
    assert [mail["To"] for mail in setup.inbox.messages[before:]] == ["owner@example.com"]


@pytest.mark.parametrize(
    "body",
    [
        {"daily_summary": False},
        {"daily_summary": False, "weekly_report": True, "extra": 1},
        {"daily_summary": "no", "weekly_report": True},
        [],
    ],
)
def test_jobs_preferences_refuse_bad_bodies(setup: Setup, body: Any) -> None:
    before = call(setup.app, "GET", "/api/jobs/preferences", setup.tokens["member"]).json()
    response = call(setup.app, "PUT", "/api/jobs/preferences", setup.tokens["member"], json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code", "message"}
    assert call(setup.app, "GET", "/api/jobs/preferences", setup.tokens["member"]).json() == before


def test_jobs_preferences_need_a_caller_and_a_small_body(setup: Setup) -> None:
    assert call(setup.app, "GET", "/api/jobs/preferences").status_code == 401
    body = {"daily_summary": False, "weekly_report": False}
    assert call(setup.app, "PUT", "/api/jobs/preferences", json=body).status_code == 401
    huge = b'{"daily_summary": false, "weekly_report": false, "x": "' + b"a" * 2_000_000 + b'"}'
    response = call(
        setup.app, "PUT", "/api/jobs/preferences", setup.tokens["member"], content=huge,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413


def test_jobs_a_forged_or_missing_cron_secret_runs_nothing(setup: Setup) -> None:
    setup.at(next_slot(3) + timedelta(days=40))
    runs_before = call(setup.app, "GET", "/api/jobs/runs", setup.tokens["owner"]).json()["items"]
    for secret in (
        "",
        "x",
        setup.secret[:-1],
        setup.secret + "x",
        setup.secret.upper(),
        setup.tokens["owner"],
    ):
        for method in ("GET", "POST"):
            response = setup.cron("cleanup-recordings", method, secret)
            assert response.status_code == 401, (secret, response.text)
            assert response.json()["code"] == "UNAUTHORIZED"
    assert call(setup.app, "GET", "/api/cron/cleanup-recordings").status_code == 401
    assert setup.cron("no-such-job").status_code == 404
    assert call(setup.app, "GET", "/api/jobs/runs", setup.tokens["owner"]).json()["items"] == runs_before


def test_jobs_runs_are_listed_for_admins(setup: Setup) -> None:
    page = call(setup.app, "GET", "/api/jobs/runs?limit=1", setup.tokens["admin"])
    assert page.status_code == 200
    first = page.json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = call(
        setup.app, "GET", f"/api/jobs/runs?cursor={first['next_cursor']}", setup.tokens["admin"]
    ).json()
    assert all(item["id"] < first["items"][0]["id"] for item in rest["items"])
    only = call(setup.app, "GET", "/api/jobs/runs?job=weekly-report", setup.tokens["owner"]).json()["items"]
    assert {item["job"] for item in only} == {"weekly-report"}
    assert set(only[0]) >= {"period", "trigger", "outcome", "started_at", "finished_at", "counts"}
    assert call(setup.app, "GET", "/api/jobs/runs", setup.tokens["member"]).status_code == 403
    assert call(setup.app, "GET", "/api/jobs/runs").status_code == 401
    for query in ("cursor=abc", "cursor=-1", "limit=0", "limit=5000"):
        response = call(setup.app, "GET", f"/api/jobs/runs?{query}", setup.tokens["admin"])
        assert response.status_code == 400, query


def test_jobs_a_report_cut_short_mails_only_those_not_yet_mailed(setup: Setup) -> None:
    moment = next_slot(18) + timedelta(days=2, minutes=3)
    setup.at(moment)
    box = setup.app.app.state.box
    period = box.jobs.runner.period_now("daily-summary")
    owner_id = setup.ids["owner"]

    async def died_after_the_owner(tx: Transaction) -> int:
        run = await jobs_repo.insert_run(
            tx, job="daily-summary", period=period.key, period_start="", period_end="", trigger="schedule",
            holder="999999999:1", started_at="2030-01-01T00:00:00.000Z", resumed=None,
        )  # fmt: skip
        await jobs_repo.save_progress(tx, run.id, {"recipients": 2, "sent": 1}, {"sent": [owner_id]})
        return run.id

    assert setup.app.blocking_portal is not None
    dead = setup.app.blocking_portal.call(box.db.write, died_after_the_owner)
    # The admin opted out earlier; back in for this test.
    body = {"daily_summary": True, "weekly_report": True}
    assert (
        call(setup.app, "PUT", "/api/jobs/preferences", setup.tokens["admin"], json=body).status_code == 200
    )
    before = len(setup.inbox.messages)
    answer = setup.cron("daily-summary").json()
    assert answer["run"]["resumed_from"] == dead
    assert answer["run"]["counts"] == {"recipients": 2, "sent": 2, "failed": 0}
    assert [mail["To"] for mail in setup.inbox.messages[before:]] == ["admin@example.com"]


def test_jobs_a_report_the_mail_server_refused_is_sent_by_the_next_run(
    env: dict[str, str], data_dir: Path
) -> None:
    port = free_port()
    smtp = {"HOST": "127.0.0.1", "PORT": str(port), "STARTTLS": "false"}
    environ = {**env, **FAST_ENV, **{f"TELENTIR_BOX_SMTP__{key}": value for key, value in smtp.items()}}
    with TestClient(create_app(load_config(environ=environ))) as app:
        setup_owner(app, data_dir)
        secret = app.app.state.box.jobs.cron_secret
        failed = call(app, "GET", "/api/cron/daily-summary", secret)
        assert failed.status_code == 500
        assert failed.json()["code"] == "JOB_FAILED"
        with smtp_server(port) as inbox:
            answer = call(app, "POST", "/api/cron/daily-summary", secret).json()
        assert answer["status"] == "ran"
        assert answer["run"]["counts"] == {"recipients": 1, "sent": 1, "failed": 0}
        assert answer["run"]["resumed_from"] is not None
        assert [mail["To"] for mail in inbox.messages] == ["owner@example.com"]


def test_jobs_without_smtp_reports_go_to_the_log(
    env: dict[str, str], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(load_config(environ={**env, **FAST_ENV}))) as app:
        setup_owner(app, data_dir)
        answer = call(app, "GET", "/api/cron/weekly-report", app.app.state.box.jobs.cron_secret).json()
    assert answer["run"]["counts"]["sent"] == 1
    logged = [
        r for r in caplog.records if r.getMessage() == "SMTP is not configured; mail written to the log"
    ]
    sent = [(r.to, r.subject.startswith("Weekly report")) for r in logged]  # type: ignore[attr-defined]
    assert sent == [("owner@example.com", True)]
    assert "Leads ingested" in logged[0].body  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if "report emails are only logged" in r.getMessage()]
    assert len(warnings) == 1


def test_jobs_call_figures_are_summed_from_the_final_calls_of_the_window(setup: Setup) -> None:
    box = setup.app.app.state.box
    source = CallTable(box.db)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    portal = setup.app.blocking_portal
    assert portal is not None
    assert portal.call(source.call_figures, start, start + timedelta(days=1)) == CallFigures()
    owner_id = setup.ids["owner"]

    async def create(tx: Transaction) -> None:
        calls = [
            ("2031-01-01T10:00:00.000Z", "inbound", "completed", 120, 1, 1),
            ("2031-01-01T11:00:00.000Z", "outbound", "voicemail", 30, 0, 1),
            ("2031-01-01T12:00:00.000Z", "inbound", "missed", 0, None, 1),
            ("2031-01-01T13:00:00.000Z", "inbound", "ongoing", 0, None, 0),  # not final yet
            ("2031-01-02T00:00:00.000Z", "inbound", "completed", 60, 1, 1),  # the next day
        ]
        await tx.conn.executemany(
            "INSERT INTO calls (id, user_id, direction, server, status, started_at, duration_seconds,"
            " successful, final, created_at, updated_at) VALUES (?, ?, ?, 'default', ?, ?, ?, ?, ?, ?, ?)",
            [
                (f"call_{n}", owner_id, d, st, at, secs, ok, final, at, at)
                for n, (at, d, st, secs, ok, final) in enumerate(calls)
            ],
        )

    portal.call(box.db.write, create)
    figures = portal.call(source.call_figures, start, start + timedelta(days=1))
    assert figures == CallFigures(
        calls_in=2, calls_out=1, answered=1, voicemail=1, missed=1, seconds=120, analysed=2, successful=1
    )


def test_jobs_failed_deliveries_are_the_deliveries_that_went_dead_in_the_window(setup: Setup) -> None:
    box = setup.app.app.state.box
    source = DeliveryTable(box.db)
    start = datetime(2031, 2, 1, tzinfo=UTC)
    portal = setup.app.blocking_portal
    assert portal is not None
    owner_id = setup.ids["owner"]

    async def create(tx: Transaction) -> None:
        rows = [
            ("dlv_1", "dead", b"sealed", "2031-02-01T09:00:00.000Z"),
            ("dlv_2", "dead", b"sealed", "2031-02-01T23:59:59.999Z"),
            ("dlv_3", "pending", b"sealed", "2031-02-01T10:00:00.000Z"),
            ("dlv_4", "delivered", None, "2031-02-01T11:00:00.000Z"),
            ("dlv_5", "dead", b"sealed", "2031-02-02T00:00:00.000Z"),  # the next day
        ]
        await tx.conn.executemany(
            "INSERT INTO integration_deliveries (id, user_id, provider, kind, status, payload,"
            " idempotency_key, next_attempt_at, created_at, updated_at)"
            " VALUES (?, ?, 'hubspot', 'call', ?, ?, ?, ?, ?, ?)",
            [(id_, owner_id, status, payload, id_, at, at, at) for id_, status, payload, at in rows],
        )

    portal.call(box.db.write, create)
    assert portal.call(source.failed_deliveries, start, start + timedelta(days=1)) == 2
