"""GET /api/health on the real `telentir-box serve` against a bare Litestar route on
the same uvicorn stack (uvloop + httptools), measured back to back in one run."""

from __future__ import annotations

import argparse
import os
import sys

from loadgen import Result, Server, drive, free_port, print_table, run, running_command, running_server

WARMUP_SECONDS = 1.0


def measure(server: Server, path: str, *, concurrency: int, duration: float) -> Result:
    # The warm-up opens the connections and fills caches; only the second run counts.
    run(drive(server.base_url + path, concurrency=concurrency, duration=WARMUP_SECONDS))
    return run(
        drive(server.base_url + path, concurrency=concurrency, duration=duration, server_pid=server.pid)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    args = parser.parse_args(argv)

    port = free_port()
    bare_argv = [
        sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    with running_command(bare_argv, port=port, health_path="/bare") as bare:
        bare_result = measure(bare, "/bare", concurrency=args.concurrency, duration=args.duration)
    with running_server({}) as box:
        health_result = measure(box, "/api/health", concurrency=args.concurrency, duration=args.duration)

    print(
        f"concurrency {args.concurrency}, {args.duration:g} s per run, {os.cpu_count()} CPUs"
        " (load generator and server share them)"
    )
    print_table([("bare /bare", bare_result), ("box /api/health", health_result)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
