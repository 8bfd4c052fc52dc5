"""The scheduled jobs on the real `telentir-box serve`: how long recording retention
over 100,000 recordings and the daily and weekly reports over a month of 100,000 calls
take, and `/api/health` latency (one prober, 10 ms apart) while each runs, against the
same prober on the idle box. Target: /api/health p99 under 50 ms while a job runs.

The data is written straight into the database before the server starts: objects
(one per recording) under one user, their call_recordings rows, all past retention,
and calls spread over the last 30 days in the box's `calls` table, as the calls issue
will provide it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx
from bench_generate import percentile, probe_health
from loadgen import REPO_ROOT, running_server

TARGET_P99_MS = 50.0
SECRET = "bench-cron-secret-" + "x" * 32


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def prepare(data_dir: str, recordings: int, calls: int) -> None:
    """Initialise the data directory, make the super admin, and write the rows."""
    env = {**os.environ, "TELENTIR_BOX_DATA__DIR": data_dir, "TELENTIR_BOX_LOG__LEVEL": "ERROR"}
    made = subprocess.run(
        [sys.executable, "-m", "telentir_box", "admin", "create-user", "owner@example.com", "--super-admin"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    user_id = json.loads(made.stdout)["id"]
    now = datetime.now(UTC)
    old = iso(now - timedelta(days=400))
    db = sqlite3.connect(os.path.join(data_dir, "telentir-box.sqlite3"))
    with db:
        db.executemany(
            "INSERT INTO objects (id, user_id, key_id, content, auth_tag) VALUES (?, ?, 'key_bench', ?, ?)",
            ((f"obj_rec{n:08d}", user_id, os.urandom(256), os.urandom(16)) for n in range(recordings)),
        )
        db.executemany(
            "INSERT INTO call_recordings (call_id, user_id, object_id, created_at) VALUES (?, ?, ?, ?)",
            ((f"call_{n:08d}", user_id, f"obj_rec{n:08d}", old) for n in range(recordings)),
        )
        rng = random.Random(7)
        db.executemany(
            "INSERT INTO calls (id, user_id, direction, server, status, started_at, duration_seconds,"
            " final, successful, created_at, updated_at) VALUES (?, ?, ?, 'default', ?, ?, ?, 1, ?, ?, ?)",
            (
                (
                    f"call_{n:08d}",
                    user_id,
                    rng.choice(("inbound", "outbound")),
                    rng.choice(("completed", "completed", "voicemail", "missed")),
                    started,
                    rng.randint(10, 600),
                    rng.choice((0, 1, None)),
                    started,
                    started,
                )
                for n in range(calls)
                for started in [iso(now - timedelta(seconds=rng.uniform(0, 30 * 86400)))]
            ),
        )
    db.close()


async def run_job(base_url: str, job: str) -> tuple[float, dict[str, object], list[float]]:
    """(seconds the job took, its run, /api/health latencies while it ran)"""
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(base_url, stop, latencies))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=600, trust_env=False) as http:
        response = await http.post(f"/api/cron/{job}", headers={"authorization": f"Bearer {SECRET}"})
    seconds = time.perf_counter() - started
    stop.set()
    await prober
    assert response.status_code == 200, response.text
    return seconds, response.json()["run"], latencies


async def idle(base_url: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(base_url, stop, latencies))
    await asyncio.sleep(seconds)
    stop.set()
    await prober
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="telentir-bench-jobs-") as data_dir:
        prepare(data_dir, args.recordings, args.calls)
        env = {"TELENTIR_BOX_DATA__DIR": data_dir, "TELENTIR_BOX_JOBS__CRON_SECRET": SECRET}
        with running_server(env) as box:
            rows.append(("idle box", None, None, asyncio.run(idle(box.base_url, 3.0))))
            for job in ("cleanup-recordings", "daily-summary", "weekly-report"):
                seconds, run, latencies = asyncio.run(run_job(box.base_url, job))
                rows.append((job, seconds, run, latencies))

    print(
        f"{args.recordings:,} recordings, {args.calls:,} calls over 30 days; {os.cpu_count()} CPUs"
        f" (prober and server share them); target: /api/health p99 < {TARGET_P99_MS:g} ms while a job runs"
    )
    print(
        f"{'workload':<20} {'seconds':>8} {'probes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  run counts"
    )
    for name, seconds, run, latencies in rows:
        took = f"{seconds:8.2f}" if seconds is not None else f"{'-':>8}"
        counts = json.dumps(run["counts"]) if run else ""
        print(
            f"{name:<20} {took} {len(latencies):>7} {percentile(latencies, 0.5):8.1f}"
            f" {percentile(latencies, 0.99):8.1f} {max(latencies) * 1000:8.1f}  {counts}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
