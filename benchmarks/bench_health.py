"""GET /api/health on the real `telentir-box serve` against a bare Litestar route on
the same uvicorn stack (uvloop + httptools), measured in interleaved rounds."""

from __future__ import annotations

import argparse
import os

from loadgen import Workload, measure_interleaved, print_table, running_bare_app, running_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="times each workload is measured")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured slice")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    args = parser.parse_args(argv)

    with running_bare_app() as bare, running_server({}) as box:
        workloads = [
            Workload("bare /bare", bare, bare.base_url + "/bare"),
            Workload("box /api/health", box, box.base_url + "/api/health"),
        ]
        rows = measure_interleaved(
            workloads, rounds=args.rounds, seconds=args.seconds, concurrency=args.concurrency
        )

    print(
        f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g} s per workload,"
        f" {os.cpu_count()} CPUs (load generator and servers share them)"
    )
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
