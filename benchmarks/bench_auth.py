"""What the auth guard costs: an API-key-authenticated trivial GET (`/api/server`,
behind object_auth) against unauthenticated trivial GETs on the same real server,
measured in interleaved rounds. Target: the guarded route keeps >= 85% of req/s."""

from __future__ import annotations

import argparse
import os

from loadgen import Workload, create_api_key, measure_interleaved, print_table, running_server

TARGET = 0.85


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="times each workload is measured")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured slice")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    args = parser.parse_args(argv)

    with running_server({}) as box:
        keyed = {"authorization": f"Bearer {create_api_key(box.data_dir)}"}
        workloads = [
            Workload("GET /api/health (no auth)", box, box.base_url + "/api/health"),
            Workload("GET /api/auth (no auth)", box, box.base_url + "/api/auth"),
            Workload("GET /api/server (API key)", box, box.base_url + "/api/server", headers=keyed),
        ]
        rows = measure_interleaved(
            workloads, rounds=args.rounds, seconds=args.seconds, concurrency=args.concurrency
        )

    print(
        f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g} s per workload,"
        f" {os.cpu_count()} CPUs (load generator and server share them)"
    )
    print_table(rows)
    guarded = rows[-1].ratio or 0.0
    verdict = "met" if guarded >= TARGET else "MISSED"
    print(f"\nthroughput, API key / unauthenticated: {guarded:.2f} (target >= {TARGET}) -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
