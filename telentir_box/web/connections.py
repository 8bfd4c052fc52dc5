"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with the limits it
lacks, so hostile clients cannot hold memory or sockets: a bounded header block (431),
a deadline for each request header, and a cap on open connections (503 at accept).
It also sends each answer's head and body in one system call instead of two."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from telentir_box.config import ServerConfig
from telentir_box.errors import AppError, HeadersTooLarge, ServiceUnavailable
from telentir_box.web.errors import error_body

# After a refusal, what the client is still sending is read and dropped for this long,
# so it gets to read the answer instead of a connection reset.
LINGER_SECONDS = 2.0
# uvicorn's own idle time between requests on a kept-alive connection.
KEEP_ALIVE_SECONDS = 5.0


class ServerBusy(ServiceUnavailable):
    code, default_message = "SERVER_BUSY", "Too many open connections, try again shortly"


class HeaderTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and feed_data re-raises."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    max_header_bytes: int
    max_header_block_bytes: int
    max_connections: int

    @classmethod
    def of(cls, server: ServerConfig, max_connections: int) -> ConnectionLimits:
        return cls(
            header_timeout=server.header_timeout,
            max_header_bytes=server.max_header_bytes,
            max_header_block_bytes=server.max_header_block_bytes,
            max_connections=max_connections,
        )


def _refusal(error: AppError, *headers: bytes) -> bytes:
    body = msgspec.json.encode(error_body(error.code, error.message))
    status = error.status
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"cache-control: no-store\r\n",
            *headers,
            b"connection: close\r\n\r\n",
            body,
        ]
    )


HEADERS_TOO_LARGE = _refusal(HeadersTooLarge())
SERVER_BUSY = _refusal(ServerBusy(), b"retry-after: 1\r\n")


class BoxHttpProtocol(HttpToolsProtocol):
    """Counts header bytes as they come: httptools buffers a header field until it ends,
    with no limit, so data_received bounds what a header block may hold before it is
    parsed whole, and on_url/on_header count it exactly. uvicorn's keep-alive timer slot
    doubles as the header deadline: it runs from the connection's start (and from each
    response's end, as uvicorn arms it) until a request header is complete."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_header_bytes = self.limits.max_header_bytes
        self._max_block_bytes = self.limits.max_header_block_bytes
        self._reading_header = True
        self._unparsed_header_bytes = 0  # whole chunks fed while a header block was open
        self._header_block_bytes = 0  # the URL and the header fields parsed so far
        self._refused = False
        self._headers_completed = 0  # counts request headers parsed on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writes = JoinedWrites(transport, self.loop)
        self.transport = self._writes  # type: ignore[assignment]
        if len(self.connections) > self.limits.max_connections:
            # Refused at once: an idle socket past the cap would hold a file descriptor.
            self._refused = True
            transport.write(SERVER_BUSY)
            transport.close()
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.header_timeout, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        reading_header = self._reading_header
        headers_before = self._headers_completed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeaderTooLarge):
                self._refuse_header()
            else:
                self._refuse_invalid()
            return
        except httptools.HttpParserError:
            self._refuse_invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if reading_header and self._headers_completed == headers_before:
            # The whole chunk belongs to a header block that is still open (a chunk that
            # completed a header may hold whole requests, bodies included).
            self._unparsed_header_bytes += len(data)
            if self._unparsed_header_bytes > self._max_block_bytes:
                self._refuse_header()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._header_block_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._header_block_bytes += size
        if size > self._max_header_bytes or self._header_block_bytes > self._max_block_bytes:
            raise HeaderTooLarge
        # uvicorn's on_header, written out: it runs for every header of every request,
        # and a super() call cost more than its body.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._header_block_bytes > self._max_block_bytes:
            raise HeaderTooLarge
        self._unset_keepalive_if_required()
        self._reading_header = False
        self._headers_completed += 1
        self._unparsed_header_bytes = self._header_block_bytes = 0
        self._writes.hold_next = True  # this request's answer: its head waits for its body
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_header = True
        super().on_message_complete()

    def eof_received(self) -> None:
        # uvloop closes the transport once this returns (a client that half-closes is
        # not answered any further): what is held goes out first, as it would have
        # without holding.
        self._writes.flush()

    def _refuse_invalid(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _refuse_header(self) -> None:
        self._refused = True
        self.transport.write(HEADERS_TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(LINGER_SECONDS, self.transport.close)


class JoinedWrites:
    """The connection's transport as uvicorn's protocol and response cycles use it, but
    the first write after a request's header (its answer's head) is held until the next
    write or the end of the loop's turn, whichever comes first. uvicorn writes an
    answer's head and then its body, one system call each; joined, both leave in one
    writev. On loopback each send cost the box about 2 us of kernel time, and the client
    wakes once instead of twice. The bytes and their order are unchanged, nothing waits
    past the turn in which it was written (an event stream's head still leaves before
    its first event does), and every later write goes out at once: a stream's events
    are not held back while the bus fans a commit out to the other subscribers."""

    __slots__ = ("_held", "_loop", "_transport", "hold_next")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self.hold_next = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif self.hold_next:
            self.hold_next = False
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            # A transport closed meanwhile was closed on an error (a close through here,
            # or the peer's end of file, writes what is held first): nobody to send to.
            if not self._transport.is_closing():
                self._transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # Everything that writes nothing (get_extra_info, set_protocol, ...) is the transport's.
        return getattr(self._transport, name)


def protocol_class(limits: ConnectionLimits) -> type[BoxHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to these limits."""
    return type("BoxHttpProtocol", (BoxHttpProtocol,), {"limits": limits})
