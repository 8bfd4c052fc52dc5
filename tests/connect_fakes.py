"""Real local HTTP servers that play the connector service (SSE over chunked HTTP)
and Stripe (customer balance and balance transactions) in the connect tests."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


class _Server:
    """A threading HTTP/1.1 server on a free loopback port, recording every request."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, Recorded], None]) -> None:
        self.requests: list[Recorded] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                recorded = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                owner.requests.append(recorded)
                handle(self, recorded)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def lead(n: int) -> dict[str, Any]:
    return {"name": f"Lead {n}", "company": f"Company {n % 7}", "phone": f"+1555{n:07d}", "tags": ["lead"]}


def lead_frames(count: int) -> Iterator[bytes]:
    for n in range(count):
        yield b"data: " + json.dumps(lead(n)).encode() + b"\n\n"


class _FakeService:
    """What every fake shares: a local server answering through `_handle`, and the
    requests it recorded."""

    server: _Server | None

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def requests(self) -> list[Recorded]:
        assert self.server is not None
        return self.server.requests

    def __enter__(self) -> Self:
        self.server = _Server(self._handle).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.__exit__()


@dataclass
class FakeConnector(_FakeService):
    """Streams `frames(params)` as SSE; `status` != 200 refuses; `cut_after` frames
    drops the connection mid-body; `stall_after` frames waits on `release`."""

    frames: Callable[[dict[str, Any]], Iterable[bytes]] = field(
        default=lambda params: lead_frames(int(params.get("credits", 3)))
    )
    status: int = 200
    cut_after: int | None = None
    stall_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    server: _Server | None = None

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        super().__exit__(*exc)

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        if self.status != 200:
            body = b'{"error": "nope"}'
            handler.send_response(self.status)
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        try:
            for index, frame in enumerate(self.frames(request.json())):
                if index == self.cut_after:
                    handler.wfile.flush()
                    handler.close_connection = True
                    return
                if index == self.stall_after:
                    self.stalled.set()
                    self.release.wait(30)
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


@dataclass
class FakeStripe(_FakeService):
    """Stripe's customer balance (negative = credit, in cents) and balance
    transactions, honouring Idempotency-Key like Stripe does. `down` answers 503.
    `stall_next_read()` holds the next balance read on the wire, answering the balance
    as it was when the read arrived, until the returned event is set."""

    customer_id: str = "cus_test"
    balance: int = 0
    down: bool = False
    read_arrived: threading.Event = field(default_factory=threading.Event)
    _release_read: threading.Event | None = None
    server: _Server | None = None
    _seen: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stall_next_read(self) -> threading.Event:
        self.read_arrived.clear()
        self._release_read = threading.Event()
        return self._release_read

    def transactions(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        if self.down:
            self._send(handler, 503, {"error": {"message": "down", "type": "api_error"}})
            return
        customer = f"/v1/customers/{self.customer_id}"
        if request.method == "GET" and request.path == customer:
            balance, release, self._release_read = self.balance, self._release_read, None
            if release is not None:
                self.read_arrived.set()
                release.wait(10)
            self._send(handler, 200, {"id": self.customer_id, "object": "customer", "balance": balance})
        elif request.method == "POST" and request.path == customer + "/balance_transactions":
            key = request.headers.get("idempotency-key", "")
            with self._lock:
                if key and key in self._seen:
                    body = self._seen[key]
                else:
                    amount = int(request.form()["amount"])
                    self.balance += amount
                    body = json.dumps(
                        {
                            "id": f"cbtxn_{len(self._seen)}",
                            "object": "customer_balance_transaction",
                            "amount": amount,
                            "ending_balance": self.balance,
                            "customer": self.customer_id,
                        }
                    ).encode()
                    self._seen[key] = body
            self._send(handler, 200, json.loads(body))
        else:
            self._send(handler, 404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
