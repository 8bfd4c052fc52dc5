"""Object store throughput on one uvicorn worker: a bare Litestar GET as the baseline,
the framework floors of an object GET and PUT (bare_app.py) for reference, then
authenticated PUT /api/objects and GET /api/objects/{id} with 1 KB of content, under
synchronous=FULL and NORMAL, with the ratios to the baseline and the targets.

Every workload is measured in short slices, round after round, each round's ratios
taken against that round's baseline (see loadgen.measure_interleaved)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
from collections.abc import Iterator

import httpx
from loadgen import (
    Workload,
    create_api_key,
    measure_interleaved,
    print_table,
    running_bare_app,
    running_server,
)

CONTENT_BYTES = 1024
TARGETS = {"PUT FULL": 0.35, "PUT NORMAL": 0.5, "GET FULL": 0.7, "GET NORMAL": 0.7}
JSON = {"content-type": "application/json"}


def object_body(key_id: str, store_id: str) -> bytes:
    """The real client's PUT /api/objects body for one record of CONTENT_BYTES."""
    return json.dumps({
        "keyId": key_id, "related_object_id": store_id,
        "content": secrets.token_bytes(CONTENT_BYTES).hex(), "authTag": secrets.token_bytes(16).hex(),
    }).encode()  # fmt: skip


@contextlib.contextmanager
def box_workloads(synchronous: str, budget: bool = True) -> Iterator[list[Workload]]:
    """A box on its own data directory with one user, one stored object to GET and the
    body to PUT, as the real client sends them. The request budget is charged on every
    request but set too high to refuse any (or, `budget` False, switched off)."""
    env = {
        "TELENTIR_BOX_DATABASE__SYNCHRONOUS": synchronous,
        "TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE": "1000000000" if budget else "0",
    }
    suffix = "" if budget else ", no budget"
    with running_server(env) as server:
        headers = {"authorization": f"Bearer {create_api_key(server.data_dir)}", **JSON}
        root = httpx.get(server.base_url + "/api/root", headers=headers, timeout=30).json()
        store = root["stores"]["contacts"]
        body = object_body(store["defaultKey"], store["id"])
        created = httpx.put(server.base_url + "/api/objects", headers=headers, content=body, timeout=30)
        object_url = f"{server.base_url}/api/objects/{created.json()['id']}"
        yield [
            Workload(
                f"PUT {synchronous}{suffix}", server, server.base_url + "/api/objects", "PUT", headers, body
            ),
            Workload(f"GET {synchronous}{suffix}", server, object_url, headers=headers),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="times each workload is measured")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured slice")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    parser.add_argument(
        "--budget-cost", action="store_true", help="also measure FULL with the request budget off"
    )
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        bare = stack.enter_context(running_bare_app())
        full = stack.enter_context(box_workloads("FULL"))
        normal = stack.enter_context(box_workloads("NORMAL"))
        unbudgeted = stack.enter_context(box_workloads("FULL", budget=False)) if args.budget_cost else []
        floor_body = object_body("key_bench", "obj_bench")
        workloads = [
            Workload("bare GET (baseline)", bare, bare.base_url + "/bare"),
            # Not targets: how close the framework alone gets to the baseline for the
            # shape of an object route, so the box's own share of the gap can be read off.
            Workload("framework floor, GET", bare, bare.base_url + "/bare/objects/obj_bench"),
            Workload("framework floor, PUT", bare, bare.base_url + "/bare/objects", "PUT", JSON, floor_body),
            *full,
            *normal,
            *unbudgeted,
        ]
        rows = measure_interleaved(
            workloads, rounds=args.rounds, seconds=args.seconds, concurrency=args.concurrency
        )

    print(
        f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g} s per workload,"
        f" {CONTENT_BYTES} B content, {os.cpu_count()} CPUs (load generator and servers share them)"
    )
    print_table(rows)
    for row in rows:
        if row.name in TARGETS:
            ratio, target = row.ratio or 0.0, TARGETS[row.name]
            verdict = "met" if ratio >= target else "MISSED"
            print(f"{row.name}: {ratio:.2f} of baseline (median of rounds), target >= {target} -> {verdict}")
    by_name = {row.name: row for row in rows}
    for name in ("GET FULL", "PUT FULL"):
        off = by_name.get(f"{name}, no budget")
        if off is not None and off.ratio:
            cost = 1 - (by_name[name].ratio or 0.0) / off.ratio
            print(f"request budget cost, {name}: {cost:.1%} of throughput (target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
