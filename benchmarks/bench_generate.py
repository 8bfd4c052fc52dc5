"""Costly requests cost the attacker first: `/api/health` latency while a burst of
`POST /api/servers {"mode": "generate"}` (each an RSA-2048 key) is in flight, against
the same probe with no burst, on the real `telentir-box serve`, in interleaved rounds.
The burst is spread over several users so that it stays within the per-user limit.
Target: /api/health p99 under 200 ms during the burst."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from loadgen import RawConnection, create_api_key, encode_request, run, running_server

TARGET_P99_MS = 200.0


async def probe_health(base_url: str, until: asyncio.Event, latencies: list[float]) -> None:
    """One client asking for /api/health again and again (10 ms apart) until `until`."""
    url = httpx.URL(base_url + "/api/health")
    payload = encode_request(httpx.Request("GET", url))
    connection = await RawConnection.open(url.host, url.port or 80)
    try:
        while not until.is_set():
            started = time.perf_counter()
            status = await connection.exchange(payload)
            assert status == 200, status
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
    finally:
        connection.close()


async def burst(base_url: str, keys: list[str], calls: int, tag: str) -> Counter[int]:
    """`calls` concurrent generate requests, spread evenly over `keys`' users."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120, trust_env=False) as http:

        async def generate(n: int) -> int:
            headers = {"authorization": f"Bearer {keys[n % len(keys)]}"}
            body = {"name": f"{tag}-{n}", "mode": "generate"}
            return (await http.post("/api/servers", json=body, headers=headers)).status_code

        return Counter(await asyncio.gather(*(generate(n) for n in range(calls))))


async def one_round(
    base_url: str, keys: list[str], calls: int, baseline_seconds: float, tag: str
) -> tuple[list[float], list[float], Counter[int], float]:
    """(baseline latencies, latencies during the burst, burst statuses, burst seconds)"""
    baseline: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(base_url, stop, baseline))
    await asyncio.sleep(baseline_seconds)
    stop.set()
    await prober

    during: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(base_url, stop, during))
    started = time.perf_counter()
    statuses = await burst(base_url, keys, calls, tag)
    seconds = time.perf_counter() - started
    stop.set()
    await prober
    return baseline, during, statuses, seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000 if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40, help="generate requests in one burst")
    parser.add_argument("--users", type=int, default=4, help="users the burst is spread over")
    parser.add_argument("--rounds", type=int, default=3, help="baseline + burst rounds")
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    with running_server({}) as box:
        emails = [f"gen{n}@example.com" for n in range(args.users * args.rounds)]
        with ThreadPoolExecutor(4) as pool:
            keys = list(pool.map(lambda email: create_api_key(box.data_dir, email), emails))
        for key in keys:  # provisioning makes a key too: done before anything is measured
            headers = {"authorization": f"Bearer {key}"}
            httpx.get(box.base_url + "/api/root", headers=headers, timeout=60, trust_env=False)
        rows = []
        for n in range(args.rounds):
            users = keys[n * args.users : (n + 1) * args.users]

            async def measure(users: list[str] = users, n: int = n) -> object:
                return await one_round(box.base_url, users, args.calls, args.baseline_seconds, f"r{n}")

            rows.append(run(measure()))  # type: ignore[arg-type]

    print(
        f"{args.calls} concurrent generate calls over {args.users} users, {args.rounds} rounds,"
        f" {os.cpu_count()} CPUs (load generator and server share them)"
    )
    print(f"{'round':<6}{'base p50':>10}{'base p99':>10}{'burst p50':>11}{'burst p99':>11}"
          f"{'burst max':>11}{'probes':>8}{'burst s':>9}  statuses")  # fmt: skip
    worst = 0.0
    for n, (baseline, during, statuses, seconds) in enumerate(rows):
        p99 = percentile(during, 0.99)
        worst = max(worst, p99)
        print(
            f"{n + 1:<6}{percentile(baseline, 0.5):>10.1f}{percentile(baseline, 0.99):>10.1f}"
            f"{percentile(during, 0.5):>11.1f}{p99:>11.1f}{max(during, default=0) * 1000:>11.1f}"
            f"{len(during):>8}{seconds:>9.2f}  {dict(sorted(statuses.items()))}"
        )
    verdict = "met" if worst < TARGET_P99_MS else "MISSED"
    print(
        f"\nworst /api/health p99 during a burst: {worst:.1f} ms (target < {TARGET_P99_MS:.0f}) -> {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
