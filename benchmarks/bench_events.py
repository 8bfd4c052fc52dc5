"""Event stream fan-out: N concurrent SSE subscribers on one server worker while
objects are written at a steady rate; delivery latency (commit to receipt),
deliveries/s and server CPU, next to a bare Litestar SSE endpoint (no auth, no
filtering, no database) fanning out the same rate as the baseline.

    .venv/bin/python benchmarks/bench_events.py --subscribers 1000 --rate 20 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, get
from litestar.response import Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, free_port, print_table, proc_sample, running_command, running_server

CREATED_AT = re.compile(rb'"created_at":"([^"]+)"')
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.8
CREATE_USER = [sys.executable, "-m", "telentir_box", "admin", "create-user"]


# --- the bare baseline: one SSE endpoint fed by an in-process ticker -------------------


def bare_app() -> Litestar:
    rate = float(os.environ.get("BARE_RATE", "20"))
    queues: set[asyncio.Queue[bytes]] = set()

    async def tick() -> None:
        # On a schedule, not sleep-after-work: fanning out takes time, and sleeping a
        # full period after it would tick slower than the rate the box is fed.
        start = time.perf_counter()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            frame = b'id: %d\nevent: object_created\ndata: {"id":"obj_%d","created_at":"%s"}\n\n' % (
                n,
                n,
                stamp.encode(),
            )
            for queue in queues:
                queue.put_nowait(frame)

    async def frames() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        queues.add(queue)
        try:
            yield b": connected\n\n"
            while True:
                yield await queue.get()
        finally:
            queues.discard(queue)

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/events")
    async def events() -> Stream:
        return Stream(frames(), media_type="text/event-stream")

    tasks: list[asyncio.Task[None]] = []
    return Litestar([health, events], on_startup=[lambda: tasks.append(asyncio.create_task(tick()))])


# --- subscribers: raw asyncio TCP connections, in a couple of processes ----------------


class _Subscriber(asyncio.Protocol):
    """One SSE connection, parsed in `data_received` callbacks: a stream reader with a
    timeout per read costs the client several times what the server spends per frame,
    and client CPU on a shared machine shows up as delivery latency."""

    def __init__(
        self, request: bytes, window: Any, stamps: dict[bytes, float], latencies: list[float]
    ) -> None:
        self.request, self.window, self.stamps, self.latencies = request, window, stamps, latencies
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        end = self.buffer.rfind(b"\n\n")
        if end < 0:
            return
        complete, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
        for stamp in CREATED_AT.findall(complete):
            sent = self.stamps.get(stamp)
            if sent is None:
                sent = self.stamps[stamp] = datetime.fromisoformat(stamp.decode()).timestamp()
            if self.window[0] <= sent < self.window[1]:
                self.latencies.append((now - sent) * 1000)


async def subscribe_all(
    port: int, path: str, headers: str, count: int, window: Any, ready: object
) -> tuple[int, list[float]]:
    """Collects the latencies of the frames stamped inside `window` (start, end; shared
    with the parent)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    stamps: dict[bytes, float] = {}
    request = f"GET {path} HTTP/1.1\r\nhost: bench\r\n{headers}\r\n".encode()
    connections = [
        await loop.create_connection(
            lambda: _Subscriber(request, window, stamps, latencies), "127.0.0.1", port
        )
        for _ in range(count)
    ]
    await asyncio.sleep(2.0)  # let every stream open before the writer starts
    ready.set()  # type: ignore[attr-defined]
    # The window is shared memory the parent process writes: nothing to await but time.
    while not window[1] or time.time() < window[1] + 2.0:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    for transport, _ in connections:
        transport.close()
    return len(latencies), latencies


def subscriber_process(
    port: int, path: str, headers: str, count: int, window: Any, ready: object, out: object
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    delivered, latencies = asyncio.run(subscribe_all(port, path, headers, count, window, ready))
    out.put((delivered, latencies, time.process_time()))  # type: ignore[attr-defined]


def measure(
    port: int, pid: int, path: str, headers: str, subscribers: int, seconds: float, write: object | None
) -> Result:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    window = ctx.Array("d", [0.0, 0.0], lock=False)
    procs, readies = [], []
    for share in (subscribers // 2, subscribers - subscribers // 2):
        ready = ctx.Event()
        proc = ctx.Process(target=subscriber_process, args=(port, path, headers, share, window, ready, out))
        proc.start()
        procs.append(proc)
        readies.append(ready)
    for ready in readies:
        ready.wait(60)
    before = proc_sample(pid)
    window[0], window[1] = time.time(), time.time() + seconds
    if write is not None:
        asyncio.run(write(seconds))  # type: ignore[operator]
    else:
        time.sleep(seconds)
    after = proc_sample(pid)
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    latencies = sorted(lat for _, lats, _ in results for lat in lats)
    delivered = sum(d for d, _, _ in results)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return Result(
        requests=delivered,
        errors=0,
        seconds=seconds,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        max_ms=latencies[-1] if latencies else 0.0,
        client_cpu_s=sum(c for _, _, c in results),
        server_cpu_s=after.cpu_s - before.cpu_s,
        server_rss_mb=after.rss_mb,
    )


def writer_for(base_url: str, api_key: str, rate: float) -> object:
    async def write(seconds: float) -> None:
        headers = {"authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
            store = (await client.get("/api/root")).json()["stores"]["contacts"]
            body = {"keyId": store["defaultKey"], "related_object_id": store["id"]}
            start = time.perf_counter()
            n = 0
            while (due := start + n / rate) < start + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                payload = {**body, "content": secrets.token_hex(64), "authTag": secrets.token_hex(16)}
                response = await client.put("/api/objects", json=payload)
                assert response.status_code == 201, response.text
                n += 1

    return write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows: list[tuple[str, Result]] = []

    port = free_port()
    argv = [sys.executable, __file__, "--bare-server", str(port)]
    with running_command(argv, port=port, health_path="/health", env={"BARE_RATE": str(args.rate)}) as bare:
        rows.append(
            ("bare SSE", measure(port, bare.pid, "/events", "", args.subscribers, args.seconds, None))
        )

    with tempfile.TemporaryDirectory(prefix="telentir-bench-") as data_dir:
        env = {
            "TELENTIR_BOX_DATA__DIR": data_dir,
            "TELENTIR_BOX_EVENTS__MAX_STREAMS": str(args.subscribers + 100),
            "TELENTIR_BOX_EVENTS__MAX_STREAMS_PER_USER": str(args.subscribers + 100),
        }
        made = subprocess.run(
            [*CREATE_USER, "bench@example.com", "--phone-verified", "--api-key", "bench"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        api_key = json.loads(made.stdout)["api_key"]
        with running_server(env) as server:
            port = int(server.base_url.rsplit(":", 1)[1])
            headers = f"authorization: Bearer {api_key}\r\n"
            # The first /api/root provisions the account (16 events at once): done before
            # the subscribers listen, so the measured window holds the steady writes only.
            provisioned = httpx.get(
                f"{server.base_url}/api/root", headers={"authorization": f"Bearer {api_key}"}
            )
            provisioned.raise_for_status()
            write = writer_for(server.base_url, api_key, args.rate)
            path = "/api/events/object_created"
            rows.append(
                (
                    "telentir-box",
                    measure(port, server.pid, path, headers, args.subscribers, args.seconds, write),
                )
            )

    print(f"{args.subscribers} subscribers, {args.rate:g} events/s for {args.seconds:g} s")
    print_table(rows)
    bare_rate, box = rows[0][1].req_per_s, rows[1][1]
    ratio = box.req_per_s / bare_rate if bare_rate else 0.0
    p99_ok = "ok" if box.p99_ms < TARGET_P99_MS else "MISSED"
    ratio_ok = "ok" if ratio >= TARGET_RATIO else "MISSED"
    print(f"targets: p99 {box.p99_ms:.1f} ms (< {TARGET_P99_MS:g}): {p99_ok};", end=" ")
    print(f"deliveries/s ratio {ratio:.2f} (>= {TARGET_RATIO}): {ratio_ok}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-server":
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")  # type: ignore[arg-type]
    else:
        sys.exit(main())
