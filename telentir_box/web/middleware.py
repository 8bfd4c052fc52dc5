"""Pure ASGI middleware run on every request: it assigns the request id, adds it and
the baseline security headers to the response, and writes the access log line.

Every API answer is private to its caller and many carry secrets (session tokens,
private keys, API keys, recovery codes, stream tickets), so none may be stored by a
browser or a proxy: `Cache-Control: no-store` unless the handler chose otherwise (the
event streams' no-cache). Only the public schema pages are left cacheable."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("telentir_box.access")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# The API answers JSON and event streams only; the schema viewer pages need scripts.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_NO_STORE = (b"cache-control", b"no-store")
# Request ids correlate log lines with responses; they grant nothing, so a seeded PRNG
# (no system call per request) is enough.
_ids = random.Random()  # noqa: S311


def _has_cache_control(headers: Any) -> bool:
    # A loop rather than any() over a generator, which costs twice as much on every answer.
    for name, _ in headers:  # noqa: SIM110
        if name.lower() == b"cache-control":
            return True
    return False


def request_context_middleware(*, https: bool) -> Any:
    # Every list of added headers is built once here, not per answer.
    api_headers = [*_SECURITY_HEADERS, _API_CSP] + ([_HSTS] if https else [])
    api_headers_no_store = [*api_headers, _NO_STORE]
    schema_headers = [*_SECURITY_HEADERS] + ([_HSTS] if https else [])

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id = f"{_ids.getrandbits(64):016x}"
            scope.setdefault("state", {})["request_id"] = request_id
            path: str = scope["path"]
            is_schema = path.startswith("/api/schema")
            started = time.perf_counter()
            status = 500

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = message.get("headers", ())
                    if is_schema:
                        extra_headers = schema_headers
                    elif _has_cache_control(headers):
                        extra_headers = api_headers
                    else:
                        extra_headers = api_headers_no_store
                    message["headers"] = [*headers, *extra_headers, (b"x-request-id", request_id.encode())]
                await send(message)

            try:
                await app(scope, receive, send_with_headers)
            finally:
                if log.isEnabledFor(logging.INFO):
                    log.info(
                        "request",
                        extra={
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": path,
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )

        return middleware

    return factory
