"""The request budget's own cost on the object hot path, without the network: the box's
whole ASGI stack (request-id middleware, hot path, credential cache, SQLite read,
answer) driven in-process for an authenticated `GET /api/objects/{id}`, with the budget
charged (set too high to refuse) and switched off, alternating in rounds. Prints the
server CPU per request of each and the difference. uvicorn's cost of writing the three
extra answer headers is not in it (bench_store.py --budget-cost measures the lot)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from telentir_box.app import create_app
from telentir_box.box import Box
from telentir_box.config import load_config


async def one_box(data_dir: str, per_minute: int) -> tuple[Any, Box]:
    env = {"TELENTIR_BOX_DATA__DIR": data_dir, "TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE": str(per_minute)}
    config = load_config(environ=env)
    box = await Box.start(config)
    app = create_app(config, box=box)
    app.state.box = box  # what the lifespan would do
    return app, box


def http_scope(method: str, path: str, key: str, body: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 3000), "headers": headers, "body": body,
    }  # fmt: skip


async def request(app: Any, scope: dict[str, Any]) -> tuple[int, bytes]:
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": scope["body"], "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(dict(scope, state={}), receive, send)
    return status, b"".join(chunks)


async def measure(app: Any, scope: dict[str, Any], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        assert (await request(app, scope))[0] == 200
    return (time.process_time() - started) / count * 1e6


async def main_async(rounds: int, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="telentir-bench-") as data_dir:
        made = subprocess.run(  # noqa: ASYNC221 - before anything is measured
            [sys.executable, "-m", "telentir_box", "admin", "create-user", "b@example.com",
             "--phone-verified", "--api-key", "bench"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "TELENTIR_BOX_DATA__DIR": data_dir},
        )  # fmt: skip
        key = json.loads(made.stdout)["api_key"]
        on_app, on_box = await one_box(data_dir, 10**9)
        off_app, off_box = await one_box(data_dir, 0)
        # An object to read, made through the API as the real client makes it.
        _, answer = await request(on_app, http_scope("GET", "/api/root", key))
        store = json.loads(answer)["stores"]["contacts"]
        body = {"keyId": store["defaultKey"], "related_object_id": store["id"], "content": "00" * 512,
                "authTag": "00" * 16}  # fmt: skip
        status, answer = await request(
            on_app, http_scope("PUT", "/api/objects", key, json.dumps(body).encode())
        )
        assert status == 201, answer
        scope = http_scope("GET", f"/api/objects/{json.loads(answer)['id']}", key)
        on, off = [], []
        for _ in range(rounds):
            on.append(await measure(on_app, scope, count))
            off.append(await measure(off_app, scope, count))
        await on_box.stop()
        await off_box.stop()
    on_us, off_us = statistics.median(on), statistics.median(off)
    print(f"{rounds} rounds of {count} in-process GET /api/objects/{{id}} each, median CPU per request:")
    print(f"budget on:  {on_us:.1f} us")
    print(f"budget off: {off_us:.1f} us")
    print(f"the budget's cost: {on_us - off_us:.1f} us per request ({(on_us - off_us) / off_us:.1%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.rounds, args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
