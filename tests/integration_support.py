"""What the integration tests share: a browser signed in to the box that connects a
provider through the box's routes (following every redirect), and a user's
deliveries read once none is pending."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.auth_support import PASSWORD


class ToLoopback(httpx.BaseTransport):
    """Requests to the box's public URL sent to its loopback address, the Host header
    left as the browser set it (as a reverse proxy in front of the box would)."""

    def __init__(self, box_url: str) -> None:
        self.box = httpx.URL(box_url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # A copy: the client keeps the browser's request, so cookies stay the public host's.
        local = httpx.Request(
            request.method,
            request.url.copy_with(scheme=self.box.scheme, host=self.box.host, port=self.box.port),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return self.inner.handle_request(local)

    def close(self) -> None:
        self.inner.close()


@contextmanager
def browser(base_url: str, email: str, *, box_url: str | None = None) -> Iterator[httpx.Client]:
    """A browser signed in by the session cookie, following redirects. With `box_url`,
    `base_url` is the box's public URL and reaches the box at `box_url`."""
    mounts = {base_url: ToLoopback(box_url)} if box_url else None
    with httpx.Client(base_url=base_url, follow_redirects=True, timeout=10, mounts=mounts) as client:
        answer = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        yield client


def connect(browser: httpx.Client, provider: str) -> dict[str, str]:
    """The browser's whole round trip to the provider and back; returns the dashboard's query."""
    answer = browser.get(f"/api/integrations/{provider}/connect")
    assert answer.status_code == 200, answer.text
    assert [r.status_code for r in answer.history] == [302, 302, 302]
    return answer.json()


def settled_deliveries(api: httpx.Client, timeout: float = 15) -> list[dict[str, Any]]:
    """The deliveries of `api`'s user once none is pending."""
    deadline = time.monotonic() + timeout
    while True:
        items = api.get("/api/integrations/deliveries").json()["items"]
        if not any(item["status"] == "pending" for item in items):
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.05)
