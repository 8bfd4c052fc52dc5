"""Hostile clients against the real server: header blocks past the limits (431), refused
tokens that must leave no memory behind, idle and half-sent headers (closed), connections
past the cap (503 at once), forwarded headers from peers that are not trusted proxies,
and a start refused when the open-file limit cannot carry max_streams."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 3
MAX_CONNECTIONS = 20
MAX_ATTEMPTS = 2
ROOMY_HEADER_BYTES = 2 * 1024 * 1024
TOKEN_BYTES = 1024 * 1024
HEADERS_TOO_LARGE = {
    "error": "Request header too large",
    "code": "REQUEST_HEADER_FIELDS_TOO_LARGE",
    "message": "Request header too large",
}


def start_server(tmp_path_factory: pytest.TempPathFactory, name: str, **settings: str) -> LiveServer:
    base = tmp_path_factory.mktemp(name)
    env = {
        "TELENTIR_BOX_DATA__DIR": str(base / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_AUTH__MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        **settings,
    }
    return LiveServer(env=env, log_path=base / "server.log").start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default header limits and proxies; a short header deadline and a small cap."""
    live = start_server(
        tmp_path_factory,
        "strict",
        TELENTIR_BOX_SERVER__HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        TELENTIR_BOX_SERVER__MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        TELENTIR_BOX_EVENTS__MAX_STREAMS="10",
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Behind a trusted proxy on loopback, with header limits raised past 1 MB."""
    live = start_server(
        tmp_path_factory,
        "proxied",
        TELENTIR_BOX_SERVER__TRUSTED_PROXIES='["127.0.0.1"]',
        TELENTIR_BOX_SERVER__MAX_HEADER_BYTES=str(ROOMY_HEADER_BYTES),
        TELENTIR_BOX_SERVER__MAX_HEADER_BLOCK_BYTES=str(ROOMY_HEADER_BYTES),
    )
    yield live
    live.stop()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=HEADER_TIMEOUT * 5)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def read_response(sock: socket.socket) -> bytes:
    """One whole response framed by content-length: its head and body may come apart."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return received[: len(head) + 4] + body


def answered_sockets(socks: list[socket.socket], at_least: int, within: float) -> list[socket.socket]:
    deadline = time.monotonic() + within
    readable: list[socket.socket] = []
    while len(readable) < at_least and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(socks, [], [], left / 4)
    return readable


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-large": "a" * 17 * 1024}, id="one header of 17 KB"),
        pytest.param({f"x-small-{i}": "a" * 1000 for i in range(70)}, id="70 headers of 1 KB"),
        pytest.param({"x-huge": "a" * 16 * 1024 * 1024}, id="one header of 16 MB"),
    ],
)
def test_header_block_past_the_limits_is_refused_with_431(
    server: LiveServer, headers: dict[str, str]
) -> None:
    with server.client() as http:
        response = http.get("/api/health", headers=headers)
    assert response.status_code == 431
    assert response.json() == HEADERS_TOO_LARGE
    assert response.headers["connection"] == "close"
    with server.client() as http:
        assert http.get("/api/health", headers={"x-fits": "a" * 15 * 1024}).status_code == 200


def test_url_past_the_block_limit_is_refused_with_431(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/health?q=" + b"a" * 70 * 1024 + b" HTTP/1.1\r\nHost: box\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431")


def test_whole_requests_with_large_bodies_in_one_write_are_not_taken_for_headers(server: LiveServer) -> None:
    # Two requests, each with a body past the header block limit, in one write: only
    # the bytes of a header block still open count against its limit.
    body = b'{"email": "' + b"a" * 70 * 1024 + b'", "password": "x"}'
    request = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    with connect(server) as sock:
        sock.sendall(request + request)
        answers = [read_response(sock), read_response(sock)]
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"400", b"400"]


def test_refused_tokens_leave_no_memory_behind(proxied_server: LiveServer) -> None:
    assert proxied_server.process is not None
    pid = proxied_server.process.pid
    with proxied_server.client() as http:

        def unknown_token(i: int) -> int:
            token = f"{i:08d}".ljust(TOKEN_BYTES, "A")
            return http.get("/api/root", headers={"authorization": f"Bearer {token}"}).status_code

        # Warm-up: the first large requests grow buffers and allocator arenas for good.
        assert {unknown_token(i) for i in range(20)} == {401}
        before = rss_kib(pid)
        assert {unknown_token(i) for i in range(20, 320)} == {401}
        grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 20, f"server grew by {grown_mib:.1f} MiB after 300 refused 1 MB tokens"


def test_idle_and_half_sent_headers_are_closed(server: LiveServer) -> None:
    idle = connect(server)
    half = connect(server)
    half.sendall(b"GET /api/health HTTP/1.1\r\nHost: box\r\nX-Slow: ")
    kept_alive = connect(server)
    kept_alive.sendall(b"GET /api/health HTTP/1.1\r\nHost: box\r\n\r\n")
    assert read_response(kept_alive).startswith(b"HTTP/1.1 200")
    kept_alive.sendall(b"GET /api/health HTTP/1.1\r\nHost: box\r\n")
    for sock in (idle, half, kept_alive):
        with sock:
            assert read_until_closed(sock) == b""  # closed by the server, nothing answered


def test_connections_past_the_cap_are_refused_while_open_ones_answer(server: LiveServer) -> None:
    with server.client() as http:
        assert http.get("/api/health").status_code == 200
        held = [connect(server) for _ in range(MAX_CONNECTIONS + 5)]
        try:
            # The open client holds one place, so those past the cap (at least five) are
            # answered at once; the others wait for a request until the header deadline.
            refused = answered_sockets(held, at_least=5, within=HEADER_TIMEOUT - 1)
            assert len(refused) >= 5
            answer = read_until_closed(refused[-1])
            assert answer.startswith(b"HTTP/1.1 503")
            assert b'"code":"SERVER_BUSY"' in answer
            assert b"retry-after: 1" in answer
            assert http.get("/api/health").status_code == 200
        finally:
            for sock in held:
                sock.close()


def login_statuses(server: LiveServer, count: int) -> list[int]:
    """Failed logins for distinct unknown accounts, each claiming another client address."""
    with server.client() as http:
        return [
            http.post(
                "/api/auth/login",
                json={"email": f"nobody{i}@example.com", "password": "wrong password 1"},
                headers={"x-forwarded-for": f"203.0.113.{i}"},
            ).status_code
            for i in range(count)
        ]


def test_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_address_limit(server: LiveServer) -> None:
    statuses = login_statuses(server, MAX_ATTEMPTS + 1)
    assert statuses == [401] * MAX_ATTEMPTS + [429]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(proxied_server: LiveServer) -> None:
    assert login_statuses(proxied_server, MAX_ATTEMPTS + 2) == [401] * (MAX_ATTEMPTS + 2)


def test_start_logs_the_open_file_limit(server: LiveServer) -> None:
    assert "open_files=" in server.log()
    assert f"max_connections={MAX_CONNECTIONS}" in server.log()


def test_start_is_refused_when_the_file_limit_cannot_carry_max_streams(tmp_path: Path) -> None:
    def low_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    result = subprocess.run(
        [sys.executable, "-m", "telentir_box", "serve", "--port", "3999"],
        env={**os.environ, "TELENTIR_BOX_DATA__DIR": str(tmp_path / "data")},
        preexec_fn=low_file_limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    error = result.stderr.strip()
    assert "\n" not in error
    assert "events.max_streams = 2000 needs an open-file limit" in error
    assert not (tmp_path / "data").exists()
