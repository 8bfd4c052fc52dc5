"""Object store throughput on one uvicorn worker: a bare Litestar GET as the baseline,
the framework floor for an object GET (bare_app.py) for reference, then authenticated
PUT /api/objects and GET /api/objects/{id} with 1 KB of content, under
synchronous=FULL and NORMAL, with the ratios to the baseline and the targets."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile

import httpx
from loadgen import (
    Result,
    Server,
    create_api_key,
    drive,
    free_port,
    print_table,
    run,
    running_command,
    running_server,
)

WARMUP_SECONDS = 1.0
CONTENT_BYTES = 1024
TARGETS = {("PUT", "FULL"): 0.35, ("PUT", "NORMAL"): 0.5, ("GET", "FULL"): 0.7, ("GET", "NORMAL"): 0.7}


def measure(server: Server, url: str, *, concurrency: int, duration: float, **kwargs: object) -> Result:
    run(drive(url, concurrency=concurrency, duration=WARMUP_SECONDS, **kwargs))  # type: ignore[arg-type]
    return run(drive(url, concurrency=concurrency, duration=duration, server_pid=server.pid, **kwargs))  # type: ignore[arg-type]


def bench_box(synchronous: str, *, concurrency: int, duration: float) -> tuple[Result, Result]:
    with tempfile.TemporaryDirectory(prefix="telentir-bench-") as data_dir:
        env = {"TELENTIR_BOX_DATA__DIR": data_dir, "TELENTIR_BOX_DATABASE__SYNCHRONOUS": synchronous}
        with running_server(env) as server:
            headers = {
                "authorization": f"Bearer {create_api_key(data_dir)}",
                "content-type": "application/json",
            }
            root = httpx.get(server.base_url + "/api/root", headers=headers, timeout=30).json()
            store = root["stores"]["contacts"]
            body = json.dumps({
                "keyId": store["defaultKey"], "related_object_id": store["id"],
                "content": secrets.token_bytes(CONTENT_BYTES).hex(), "authTag": secrets.token_bytes(16).hex(),
            }).encode()  # fmt: skip
            created = httpx.put(server.base_url + "/api/objects", headers=headers, content=body, timeout=30)
            object_url = f"{server.base_url}/api/objects/{created.json()['id']}"
            url = server.base_url + "/api/objects"
            put = measure(server, url, concurrency=concurrency, duration=duration,
                          method="PUT", headers=headers, body_factory=lambda: body)  # fmt: skip
            get = measure(server, object_url, concurrency=concurrency, duration=duration, headers=headers)
    return put, get


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    args = parser.parse_args(argv)
    opts = {"concurrency": args.concurrency, "duration": args.duration}

    port = free_port()
    bare_argv = [
        sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    with running_command(bare_argv, port=port, health_path="/bare") as bare:
        baseline = measure(bare, bare.base_url + "/bare", **opts)  # type: ignore[arg-type]
        # Not a target: how close the framework alone gets to the baseline for the shape
        # of an object GET, so the box's own share of the gap can be read off.
        floor = measure(bare, bare.base_url + "/bare/objects/obj_bench", **opts)  # type: ignore[arg-type]
    rows = [("bare GET (baseline)", baseline), ("framework floor, GET", floor)]
    verdicts = []
    for synchronous in ("FULL", "NORMAL"):
        put, get = bench_box(synchronous, **opts)  # type: ignore[arg-type]
        for method, result in (("PUT", put), ("GET", get)):
            rows.append((f"{method} /api/objects {synchronous}", result))
            ratio = result.req_per_s / baseline.req_per_s if baseline.req_per_s else 0.0
            target = TARGETS[(method, synchronous)]
            verdicts.append(
                f"{method} {synchronous}: {ratio:.2f} of baseline, target >= {target}"
                f" -> {'met' if ratio >= target else 'MISSED'}"
            )
    print(
        f"concurrency {args.concurrency}, {args.duration:g} s per run, {CONTENT_BYTES} B content,"
        f" {os.cpu_count()} CPUs (load generator and server share them)"
    )
    print_table(rows)
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
