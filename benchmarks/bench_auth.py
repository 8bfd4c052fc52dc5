"""What the auth guard costs: an API-key-authenticated trivial GET (`/api/server`,
behind object_auth) against unauthenticated trivial GETs on the same real server,
measured back to back in one run. Target: the guarded route keeps >= 85% of req/s."""

from __future__ import annotations

import argparse
import os
import tempfile

from loadgen import Result, Server, create_api_key, drive, print_table, run, running_server

WARMUP_SECONDS = 1.0


def measure(
    server: Server, path: str, headers: dict[str, str], *, concurrency: int, duration: float
) -> Result:
    url = server.base_url + path
    run(drive(url, concurrency=concurrency, duration=WARMUP_SECONDS, headers=headers))
    return run(drive(url, concurrency=concurrency, duration=duration, headers=headers, server_pid=server.pid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    args = parser.parse_args(argv)
    options = {"concurrency": args.concurrency, "duration": args.duration}

    with tempfile.TemporaryDirectory(prefix="telentir-bench-auth-") as data_dir:
        key = create_api_key(data_dir)
        with running_server({"TELENTIR_BOX_DATA__DIR": data_dir}) as box:
            keyed = {"authorization": f"Bearer {key}"}
            rows = [
                ("GET /api/health (no auth)", measure(box, "/api/health", {}, **options)),
                ("GET /api/auth (no auth)", measure(box, "/api/auth", {}, **options)),
                ("GET /api/server (API key)", measure(box, "/api/server", keyed, **options)),
            ]

    print(
        f"concurrency {args.concurrency}, {args.duration:g} s per run, {os.cpu_count()} CPUs"
        " (load generator and server share them)"
    )
    print_table(rows)
    base, guarded = rows[0][1], rows[2][1]
    print(f"\nthroughput, API key / unauthenticated: {guarded.req_per_s / base.req_per_s:.2f}")
    if base.server_us_per_req and guarded.server_us_per_req:
        cpu = guarded.server_us_per_req / base.server_us_per_req
        print(f"server CPU per request, API key / unauthenticated: {cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
