"""Fixtures every test module reuses: a temporary data directory and config, the
app under Litestar's test client, and the real server (and the demo connector)
started as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import Config, load_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """Config overrides as the environment would carry them; tests add to it."""
    return {"TELENTIR_BOX_DATA__DIR": str(data_dir), "TELENTIR_BOX_LOG__FORMAT": "text"}


@pytest.fixture
def config(env: dict[str, str]) -> Config:
    return load_config(environ=env)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as test_client:
        yield test_client


@dataclass
class LiveServer:
    """The real `telentir-box serve` in a subprocess on a loopback port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LiveServer:
        assert self.log_path is not None
        # The developer's own config file is not the test's; a test may name one.
        full_env = {key: value for key, value in os.environ.items() if key != "TELENTIR_BOX_CONFIG"}
        full_env |= self.env
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "telentir_box", "serve", "--port", str(self.port)],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: a crash, with no shutdown code at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def live_server_factory(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers (same data directory unless told otherwise); all stopped at the end."""
    started: list[LiveServer] = []

    def start(**overrides: str) -> LiveServer:
        server = LiveServer(env={**env, **overrides}, log_path=tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        if server.process and server.process.poll() is None:
            server.stop()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()


def create_user(env: dict[str, str], email: str, *flags: str, password: str | None = None) -> dict[str, str]:
    """Create a user through `telentir-box admin create-user` against `env`'s data
    directory (safe while a server runs on it); returns its JSON (id, api_key, ...)."""
    args = [sys.executable, "-m", "telentir_box", "admin", "create-user", email, *flags]
    if password is not None:
        args.append("--password-stdin")
    result = subprocess.run(
        args,
        input=(password + "\n") if password is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def user_factory(env: dict[str, str]) -> Callable[..., dict[str, str]]:
    """Make verified users with an API key: user_factory("a@x.io") -> {id, api_key, password}."""
    counter = iter(range(1_000_000))

    def make(email: str | None = None, *flags: str) -> dict[str, str]:
        email = email or f"user{next(counter)}@example.com"
        return create_user(env, email, "--phone-verified", "--api-key", "test", *flags)

    return make


@contextmanager
def demo_connector(env: dict[str, str]) -> Iterator[str]:
    """The real `telentir-box demo-connector` on a loopback port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "telentir_box", "demo-connector", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    "the demo connector did not start"
                )
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def replay_events(http: httpx.Client, key: str, channel: str, query: str, count: int) -> list[dict[str, Any]]:
    """Replay `channel` of the key's user from the start until `count` events arrived."""
    events: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {key}", "last-event-id": "0"}
    with http.stream("GET", f"/api/events/{channel}?{query}", headers=headers) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if len(events) == count:
                    break
    return events
