"""Idle and half-open sockets held by an attacker: /api/health and an authenticated
object GET measured on a quiet box (the baseline), then again while an attacker holds
2,000 sockets (half sending nothing, half half a request header, each reopened as soon
as the box closes it) and 2,000 event streams are open.

    .venv/bin/python benchmarks/bench_sockets.py --attackers 2000 --streams 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from loadgen import (
    RawConnection,
    Result,
    Server,
    create_api_key,
    drive,
    print_table,
    proc_sample,
    running_server,
)

TARGET_P99_MS = 200.0
PROBE_CONCURRENCY = 4
FRESH_PROBES = 50
HALF_HEADER = b"GET /api/health HTTP/1.1\r\nhost: bench\r\nx-slow: "
STREAM_PATH = "/api/events/object_created"


def raise_open_file_limit() -> int:
    """The attacker's sockets, the streams and the probes all live in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Attack:
    """Sockets the attacker holds now, and how often the box closed one or refused it."""

    held: int = 0
    closed_by_box: int = 0
    refused: int = 0


async def hold_socket(host: str, port: int, half_header: bool, attack: Attack, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            attack.refused += 1
            await asyncio.sleep(0.1)
            continue
        if half_header:
            writer.write(HALF_HEADER)
        attack.held += 1
        closed = asyncio.ensure_future(reader.read(65536))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        attack.held -= 1
        if closed.done():
            attack.closed_by_box += 1
        for waiter in (closed, stopped):
            waiter.cancel()
        writer.close()


@contextlib.asynccontextmanager
async def attacker(server: Server, count: int) -> AsyncIterator[Attack]:
    url = httpx.URL(server.base_url)
    attack, stop = Attack(), asyncio.Event()
    holders = [
        asyncio.create_task(hold_socket(url.host, url.port or 80, i % 2 == 1, attack, stop))
        for i in range(count)
    ]
    deadline = time.monotonic() + 30
    while attack.held < count and time.monotonic() < deadline:  # noqa: ASYNC110 (counts, not an event)
        await asyncio.sleep(0.1)
    try:
        yield attack
    finally:
        stop.set()
        await asyncio.gather(*holders)


async def open_streams(server: Server, api_key: str, count: int) -> list[asyncio.StreamWriter]:
    """Open `count` event streams (at most 100 opening at once); the writers of those
    the box answered 200."""
    url = httpx.URL(server.base_url)
    request = (
        f"GET {STREAM_PATH} HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n"
        f"authorization: Bearer {api_key}\r\n\r\n"
    ).encode()
    opening = asyncio.Semaphore(100)

    async def open_one() -> asyncio.StreamWriter | None:
        async with opening:
            try:
                reader, writer = await asyncio.open_connection(url.host, url.port or 80)
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                return None
            if head.startswith(b"HTTP/1.1 200"):
                return writer
            writer.close()
            return None

    opened = await asyncio.gather(*(open_one() for _ in range(count)))
    return [writer for writer in opened if writer is not None]


async def fresh_connections(url: str, headers: dict[str, str], count: int, pid: int) -> Result:
    """`count` requests one after another, each on a new connection, as a client that
    comes and goes does (a keep-alive probe would not see a box that stops accepting)."""
    target = httpx.URL(url)
    payload = (
        f"GET {target.raw_path.decode()} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    before, started, cpu = proc_sample(pid), time.perf_counter(), time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        try:
            connection = await asyncio.wait_for(RawConnection.open(target.host, target.port or 80), 5)
            status = await asyncio.wait_for(connection.exchange(payload), 5)
            connection.close()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            errors += 1
            continue
        if status < 400:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1
        await asyncio.sleep(0.02)
    after, latencies = proc_sample(pid), sorted(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    return Result(
        requests=len(latencies),
        errors=errors,
        seconds=time.perf_counter() - started,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        max_ms=pct(1.0),
        client_cpu_s=time.process_time() - cpu,
        server_cpu_s=after.cpu_s - before.cpu_s,
        server_rss_mb=after.rss_mb,
    )


async def probes(
    label: str, server: Server, object_url: str, auth: dict[str, str], seconds: float
) -> list[tuple[str, Result]]:
    health = server.base_url + "/api/health"
    options = {"concurrency": PROBE_CONCURRENCY, "duration": seconds, "server_pid": server.pid}
    return [
        (f"{label}: health", await drive(health, **options)),
        (f"{label}: object GET", await drive(object_url, headers=auth, **options)),
        (f"{label}: health, new conn", await fresh_connections(health, {}, FRESH_PROBES, server.pid)),
        (f"{label}: object, new conn", await fresh_connections(object_url, auth, FRESH_PROBES, server.pid)),
    ]


def stored_object(server: Server, auth: dict[str, str]) -> str:
    root = httpx.get(server.base_url + "/api/root", headers=auth, timeout=30).json()
    store = root["stores"]["contacts"]
    body = {
        "keyId": store["defaultKey"],
        "related_object_id": store["id"],
        "content": secrets.token_bytes(1024).hex(),
        "authTag": secrets.token_bytes(16).hex(),
    }
    created = httpx.put(server.base_url + "/api/objects", headers=auth, content=json.dumps(body), timeout=30)
    created.raise_for_status()
    return f"{server.base_url}/api/objects/{created.json()['id']}"


async def measure(server: Server, api_key: str, args: argparse.Namespace) -> int:
    auth = {"authorization": f"Bearer {api_key}"}
    object_url = stored_object(server, auth)
    rows = await probes("quiet", server, object_url, auth, args.seconds)
    async with attacker(server, args.attackers) as attack:
        held_before_streams = attack.held
        streams = await open_streams(server, api_key, args.streams)
        rows += await probes("attacked", server, object_url, auth, args.seconds)
        held, closed, refused = attack.held, attack.closed_by_box, attack.refused
        for writer in streams:
            writer.close()
    print(
        f"attacker: {held_before_streams} sockets held before the streams opened, {held} at the end; "
        f"{closed} closed by the box (header deadline), {refused} refused at connect"
    )
    print(f"event streams open: {len(streams)} of {args.streams}")
    print_table(rows)
    attacked = [result for name, result in rows if name.startswith("attacked")]
    worst = max(result.p99_ms for result in attacked)
    failures = sum(result.errors for result in attacked)
    p99_ok = "ok" if worst < TARGET_P99_MS and not failures else "MISSED"
    streams_ok = "ok" if len(streams) == args.streams else "MISSED"
    print(
        f"targets: attacked p99 {worst:.1f} ms (< {TARGET_P99_MS:g}, {failures} errors): {p99_ok};", end=" "
    )
    print(f"event streams {len(streams)} (= {args.streams}): {streams_ok}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"this process may open {raise_open_file_limit()} files")
    env = {
        "TELENTIR_BOX_EVENTS__MAX_STREAMS": str(args.streams),
        "TELENTIR_BOX_EVENTS__MAX_STREAMS_PER_USER": str(args.streams),
    }
    with running_server(env) as server:
        api_key = create_api_key(server.data_dir)
        return asyncio.run(measure(server, api_key, args))


if __name__ == "__main__":
    raise SystemExit(main())
