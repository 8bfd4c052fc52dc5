"""The load generator every benchmark shares: start a server as a subprocess, drive it
with keep-alive HTTP from this process, sample its CPU and memory from /proc, and
print a table of results. Also a CLI: `python benchmarks/loadgen.py URL`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

RequestFactory = Callable[[], httpx.Request]


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int
    data_dir: str = ""  # a box's, for running admin commands against it


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float
    rss_mb: float


@dataclass(frozen=True)
class Result:
    """One run: `requests` counts successful (< 400) responses, `errors` the rest
    (error statuses and transport failures); latencies are of successful requests."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    server_cpu_s: float | None = None
    server_rss_mb: float | None = None
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, sorted

    @property
    def req_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_req(self) -> float | None:
        """Server CPU per response: a cost that holds even when the client sets the pace."""
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_sample(pid: int) -> ProcSample:
    """CPU seconds used so far (user + system) and resident memory of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; fields after it are space-separated,
    # starting with field 3 (state), so utime (14) and stime (15) sit at 11 and 12.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return ProcSample(cpu_s=ticks / os.sysconf("SC_CLK_TCK"), rss_mb=rss_kib / 1024)


@contextlib.contextmanager
def running_command(
    argv: Sequence[str], *, port: int, health_path: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run any HTTP server command from the repo root until its health path answers
    200; stop it with SIGTERM on exit. Its output goes to a log file shown on failure."""
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_healthy(process, base_url + health_path, log)
            yield Server(base_url=base_url, pid=process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_server(
    env: dict[str, str], port: int | None = None, extra_args: Sequence[str] = ()
) -> Iterator[Server]:
    """The real `telentir-box serve` on a fresh temporary data directory (unless `env`
    names one), logging only warnings so logging does not weigh on the figures, and with
    a request budget no load here exhausts (it is charged all the same)."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="telentir-bench-") as data_dir:
        server_env = {
            "TELENTIR_BOX_DATA__DIR": data_dir,
            "TELENTIR_BOX_LOG__LEVEL": "WARNING",
            "TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE": "1000000000",
            **env,
        }
        argv = [sys.executable, "-m", "telentir_box", "serve", "--port", str(port), *extra_args]
        with running_command(argv, port=port, health_path="/api/health", env=server_env) as server:
            yield Server(server.base_url, server.pid, server_env["TELENTIR_BOX_DATA__DIR"])


@contextlib.contextmanager
def running_bare_app() -> Iterator[Server]:
    """benchmarks/bare_app.py on the box's uvicorn stack (uvloop + httptools): the baselines."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    with running_command(argv, port=port, health_path="/bare") as server:
        yield server


def create_api_key(data_dir: str, email: str = "bench@example.com") -> str:
    """A phone-verified user with an API key in `data_dir`, made the way an operator would."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "telentir_box",
            "admin",
            "create-user",
            email,
            "--phone-verified",
            "--api-key",
            "bench",
        ],
        env={**os.environ, "TELENTIR_BOX_DATA__DIR": data_dir, "TELENTIR_BOX_LOG__LEVEL": "ERROR"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)["api_key"]


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise RuntimeError(f"server at {url} did not become healthy (exit code {process.poll()}):\n{output}")


async def drive(
    url_or_request_factory: str | RequestFactory,
    *,
    concurrency: int,
    duration: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body_factory: Callable[[], bytes] | None = None,
    server_pid: int | None = None,
) -> Result:
    """Run `concurrency` workers, each sending one request after another over its own
    keep-alive connection for `duration` seconds. A request factory replaces `method`,
    `headers` and `body_factory`. With `server_pid`, also report the server's CPU
    seconds spent during the run and its resident memory afterwards."""

    def build() -> httpx.Request:
        if callable(url_or_request_factory):
            return url_or_request_factory()
        content = body_factory() if body_factory else None
        return httpx.Request(method, url_or_request_factory, headers=headers, content=content)

    latencies: list[float] = []
    errors = 0
    target = httpx.URL(
        url_or_request_factory() if callable(url_or_request_factory) else url_or_request_factory
    )
    target = target if isinstance(target, httpx.URL) else httpx.URL(str(target))

    async def worker(deadline: float) -> None:
        nonlocal errors
        connection: RawConnection | None = None
        while time.perf_counter() < deadline:
            payload = encode_request(build())
            start = time.perf_counter()
            try:
                connection = connection or await RawConnection.open(target.host, target.port or 80)
                status = await connection.exchange(payload)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                connection = None
                continue
            if status < 400:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
        if connection:
            connection.close()

    before = proc_sample(server_pid) if server_pid else None
    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(started + duration) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    client_cpu_s = time.process_time() - cpu_before
    after = proc_sample(server_pid) if server_pid else None

    latencies.sort()
    return Result(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        client_cpu_s=client_cpu_s,
        server_cpu_s=after.cpu_s - before.cpu_s if before and after else None,
        server_rss_mb=after.rss_mb if after else None,
        latencies=latencies,
    )


@dataclass(frozen=True)
class Workload:
    """One kind of load to measure: a URL on a running server and what to send it."""

    name: str
    server: Server
    url: str
    method: str = "GET"
    headers: dict[str, str] | None = None
    body: bytes | None = None


@dataclass(frozen=True)
class Row:
    """A workload's figures over every round, with its ratios to the baseline: the
    median over rounds of each round's ratio, so drift between rounds cancels out."""

    name: str
    result: Result
    ratio: float | None = None
    cpu_ratio: float | None = None


WARMUP_SECONDS = 0.5


def measure_interleaved(
    workloads: Sequence[Workload], *, rounds: int, seconds: float, concurrency: int
) -> list[Row]:
    """Measure each workload for `seconds` in turn, `rounds` times over, the first one
    being the baseline. A shared VM's speed drifts by a quarter or more within a minute;
    measured one after another, whatever ran last would carry that drift, while
    interleaved slices put every workload on the same stretches of the machine."""
    slices: dict[str, list[Result]] = {w.name: [] for w in workloads}
    for _ in range(rounds):
        for w in workloads:
            options: dict[str, Any] = {
                "concurrency": concurrency, "method": w.method, "headers": w.headers,
                "body_factory": _constant(w.body) if w.body is not None else None,
            }  # fmt: skip
            run(drive(w.url, duration=WARMUP_SECONDS, **options))  # opens connections, fills caches
            slices[w.name].append(run(drive(w.url, duration=seconds, server_pid=w.server.pid, **options)))
    baseline = slices[workloads[0].name]
    return [
        Row(
            name,
            pooled(results),
            _median_ratio([r.req_per_s for r in results], [b.req_per_s for b in baseline]),
            _median_ratio([r.server_us_per_req for r in results], [b.server_us_per_req for b in baseline]),
        )
        for name, results in slices.items()
    ]


def _constant(body: bytes) -> Callable[[], bytes]:
    return lambda: body


def pooled(results: Sequence[Result]) -> Result:
    """Several runs of one workload as one: totals, and percentiles of every latency."""
    latencies = sorted(lat for r in results for lat in r.latencies)
    cpu = [r.server_cpu_s for r in results if r.server_cpu_s is not None]
    return Result(
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        client_cpu_s=sum(r.client_cpu_s for r in results),
        server_cpu_s=sum(cpu) if len(cpu) == len(results) else None,
        server_rss_mb=results[-1].server_rss_mb if results else None,
        latencies=latencies,
    )


def _median_ratio(values: Sequence[float | None], baselines: Sequence[float | None]) -> float | None:
    ratios = [v / b for v, b in zip(values, baselines, strict=True) if v is not None and b]
    return statistics.median(ratios) if ratios else None


def encode_request(request: httpx.Request) -> bytes:
    """The request as HTTP/1.1 bytes on a keep-alive connection."""
    body = request.read()
    lines = [
        f"{request.method} {request.url.raw_path.decode()} HTTP/1.1",
        f"host: {request.url.netloc.decode()}",
    ]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() not in ("host",)]
    if body and "content-length" not in request.headers:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawConnection:
    """A minimal HTTP/1.1 client connection: httpx costs the load generator several
    times the server's CPU per request, so on a small machine it would measure itself.
    Reads bodies framed by content-length or chunked encoding."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, payload: bytes) -> int:
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def print_table(rows: Sequence[Row | tuple[str, Result]]) -> None:
    """One aligned line per result, with ratios against the baseline: `ratio` of req/s
    and `cpu ratio` of server CPU per request. A `Row` carries its own (median per-round)
    ratios; plain `(name, result)` pairs are compared with the first one. A client CPU
    close to the run time means the load generator, not the server, set the pace; then
    the server CPU per request is the figure to compare."""
    header = (
        "run", "req/s", "p50 ms", "p99 ms", "max ms", "errors",
        "srv cpu s", "srv us/req", "srv rss MB", "cli cpu s", "ratio", "cpu ratio",
    )  # fmt: skip
    table = [row if isinstance(row, Row) else Row(*row) for row in rows]
    if table and not isinstance(rows[0], Row):
        base = table[0].result
        table = [
            Row(
                row.name,
                row.result,
                _ratio(row.result.req_per_s, base.req_per_s),
                _ratio(row.result.server_us_per_req, base.server_us_per_req),
            )
            for row in table
        ]
    lines = [header]
    for row in table:
        r = row.result
        lines.append(
            (
                row.name,
                f"{r.req_per_s:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.max_ms:.2f}",
                str(r.errors),
                _optional(r.server_cpu_s, "{:.2f}"),
                _optional(r.server_us_per_req, "{:.0f}"),
                _optional(r.server_rss_mb, "{:.1f}"),
                f"{r.client_cpu_s:.2f}",
                _optional(row.ratio, "{:.2f}"),
                _optional(row.cpu_ratio, "{:.2f}"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        # The name column reads best left-aligned, the figures right-aligned.
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return value / baseline if value is not None and baseline else None


def _optional(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def run(coro: Coroutine[Any, Any, Result]) -> Result:
    """Run the driver on uvloop when it is installed: a faster loop leaves more of
    this process's single core to httpx, which is usually the first bottleneck."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive one URL with keep-alive HTTP load.")
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--body", help="request body sent with every request")
    parser.add_argument("--pid", type=int, help="server process to sample CPU and memory from")
    args = parser.parse_args(argv)
    headers = {name.strip(): value.strip() for name, _, value in (h.partition(":") for h in args.header)}
    body = args.body.encode() if args.body is not None else None
    result = run(
        drive(
            args.url,
            concurrency=args.concurrency,
            duration=args.duration,
            method=args.method,
            headers=headers,
            body_factory=(lambda: body) if body is not None else None,
            server_pid=args.pid,
        )
    )
    print_table([(args.url, result)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
