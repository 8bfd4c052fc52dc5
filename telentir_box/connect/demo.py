"""A demo connector for local development (`telentir-box demo-connector`): a POST to
/get-leads streams synthetic leads as Server-Sent Events, `credits` of them (or
`count`), so /api/connect can be tried without the real connector service. GET /health
answers ok; every other route is 404."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

LEADS_ROUTE = "/get-leads"
HEALTH_ROUTE = "/health"
DEFAULT_COUNT = 10
MAX_COUNT = 1_000_000
FRAMES_PER_CHUNK = 200
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Linus", "Margaret", "Dennis")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Perlman", "Hamilton")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
_JOBS = ("CTO", "Head of Sales", "Founder", "VP Engineering", "Office Manager")


def synthetic_leads(params: dict[str, Any], seed: int = 0) -> Iterator[dict[str, Any]]:
    """Leads shaped like the client's Contact, biased by the fetchLeads filters given."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, nothing secret
    count = params.get("credits", params.get("count", DEFAULT_COUNT))
    count = min(int(count), MAX_COUNT) if isinstance(count, int | float) else DEFAULT_COUNT
    companies = params.get("company") or _COMPANIES
    jobs = params.get("job") or _JOBS
    for n in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company = str(rng.choice(companies))
        yield {
            "name": f"{first} {last}",
            "company": company,
            "email": f"{first.lower()}.{last.lower()}{n}@{company.lower().replace(' ', '')}.example",
            "phone": f"+1555{n:07d}",
            "status": "new",
            "tags": ["lead", str(rng.choice(jobs))],
            "notes": [],
        }


def sse_frames(params: dict[str, Any]) -> Iterator[bytes]:
    chunk: list[bytes] = []
    for lead in synthetic_leads(params):
        chunk.append(b"data: " + json.dumps(lead, separators=(",", ":")).encode() + b"\n\n")
        if len(chunk) == FRAMES_PER_CHUNK:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def build_demo_app(delay_seconds: float = 0.0) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        route = (scope["method"], scope["path"])
        if route == ("GET", HEALTH_ROUTE):
            await _respond(send, 200, b'{"status":"ok"}', b"application/json")
            return
        if route != ("POST", LEADS_ROUTE):
            await _respond(send, 404, b'{"error":"no such route"}', b"application/json")
            return
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = None
        if not isinstance(params, dict):
            await _respond(send, 400, b'{"error":"params must be a JSON object"}', b"application/json")
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for chunk in sse_frames(params):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if delay_seconds:
                await asyncio.sleep(delay_seconds)
        await send({"type": "http.response.body", "body": b""})

    return app


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


def run_demo_connector(host: str, port: int, delay_seconds: float = 0.0) -> int:
    uvicorn.run(build_demo_app(delay_seconds), host=host, port=port, log_level="warning", lifespan="off")
    return 0
