"""Connector ingestion throughput: the demo connector streams N small JSON leads as
SSE; measured once read raw (parsed, not stored) and once through POST /api/connect
into a real `telentir-box serve` (each lead encrypted under its own wrapped key,
durable commits), with the ratio between the two and the 5,000 records/s target."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import httpx
from loadgen import create_api_key, free_port, proc_sample, run, running_command, running_server

from telentir_box.connect.connector import FrameCounts, stream_records

TARGET_RECORDS_PER_S = 5_000


async def read_raw(url: str, count: int) -> tuple[int, float]:
    counts = FrameCounts()
    async with httpx.AsyncClient(trust_env=False) as http:
        started = time.perf_counter()
        async for _ in stream_records(
            http, url + "/get-leads", {"credits": count}, counts, httpx.Timeout(60)
        ):
            pass
        return counts.records, time.perf_counter() - started


def ingest(connector_url: str, count: int, synchronous: str) -> tuple[int, float, float]:
    """(records stored, seconds, server CPU seconds) for one POST /api/connect."""
    with tempfile.TemporaryDirectory(prefix="telentir-bench-") as data_dir:
        env = {
            "TELENTIR_BOX_DATA__DIR": data_dir,
            "TELENTIR_BOX_DATABASE__SYNCHRONOUS": synchronous,
            "TELENTIR_BOX_CONNECT__BASE_URL": connector_url,
            "TELENTIR_BOX_BILLING__LEAD_ALLOWANCE": str(count),
        }
        with running_server(env) as server:
            headers = {"authorization": f"Bearer {create_api_key(data_dir)}"}
            httpx.get(server.base_url + "/api/root", headers=headers, timeout=30, trust_env=False)
            body = {"repository": "contacts", "path": "/get-leads", "params": {"credits": count}}
            cpu_before = proc_sample(server.pid).cpu_s
            started = time.perf_counter()
            response = httpx.post(
                server.base_url + "/api/connect", json=body, headers=headers, timeout=600, trust_env=False
            )
            seconds = time.perf_counter() - started
            cpu = proc_sample(server.pid).cpu_s - cpu_before
            response.raise_for_status()
            return int(response.headers["x-telentir-records-stored"]), seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = parser.parse_args(argv)
    port = free_port()
    argv_demo = [sys.executable, "-m", "telentir_box", "demo-connector", "--port", str(port)]
    with running_command(argv_demo, port=port, health_path="/health") as connector:
        raw_count, raw_seconds = run(read_raw(connector.base_url, args.records))
        stored, seconds, cpu = ingest(connector.base_url, args.records, args.synchronous)
    raw_rate, rate = raw_count / raw_seconds, stored / seconds
    print(f"{'mode':<34} {'records':>8} {'seconds':>8} {'records/s':>10}")
    print(f"{'raw stream read (parse only)':<34} {raw_count:>8} {raw_seconds:>8.2f} {raw_rate:>10.0f}")
    label = f"stored via /api/connect ({args.synchronous})"
    print(f"{label:<34} {stored:>8} {seconds:>8.2f} {rate:>10.0f}")
    print(f"server CPU per stored record: {cpu / max(stored, 1) * 1e6:.0f} us")
    print(f"stored / raw: {rate / raw_rate:.2f}")
    verdict = "meets" if rate >= TARGET_RECORDS_PER_S else "MISSES"
    print(f"target >= {TARGET_RECORDS_PER_S} records/s stored: {verdict}")
    return 0 if stored == args.records else 1


if __name__ == "__main__":
    sys.exit(main())
