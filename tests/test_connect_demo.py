"""The dev tools: `telentir-box demo-connector` streams synthetic leads as SSE, and
`telentir-box admin grant-credits` books prepaid credits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from telentir_box.connect.connector import SSEDecoder
from tests.conftest import create_user, demo_connector


@pytest.fixture
def demo_url(env: dict[str, str]) -> Iterator[str]:
    with demo_connector(env) as url:
        yield url


def test_connect_demo_connector_streams_the_credited_number_of_leads(demo_url: str) -> None:
    response = httpx.post(demo_url + "/get-leads", json={"credits": 450, "company": ["Acme"]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    leads = [json.loads(data) for _, data in SSEDecoder().feed(response.content)]
    assert len(leads) == 450
    assert {lead["company"] for lead in leads} == {"Acme"}
    assert {"name", "phone", "email", "status", "tags"} <= set(leads[0])
    assert httpx.post(demo_url + "/get-leads", content=b"[1]").status_code == 400
    # Leads only on /get-leads: other spellings and routes are not served.
    for path in ("/get-leads.", "/get-leads/x", "/leads", "/"):
        assert httpx.post(demo_url + path, json={"credits": 300}).status_code == 404
    assert httpx.get(demo_url + "/get-leads").status_code == 404


def test_connect_admin_grant_credits_books_a_grant(env: dict[str, str]) -> None:
    create_user(env, "boss@example.com", "--role", "admin")

    def grant(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telentir_box", "admin", "grant-credits", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = grant("boss@example.com", "25", "--note", "welcome")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"granted": 25, "balance": 25}
    assert grant("nobody@example.com", "5").returncode == 2
    assert grant("boss@example.com", "0").returncode == 2
