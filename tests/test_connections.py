"""The connection protocol (web/connections.py) in-process, beside uvicorn's own: for a
request within the limits it hands the app the same scope headers and sends the same
bytes, `Expect: 100-continue` included (its header callback is uvicorn's, written out),
with an answer's head and body in one system call (JoinedWrites)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from telentir_box.web.connections import ConnectionLimits, JoinedWrites, protocol_class

BODY = b'{"name": "x"}'
HEAD = (
    b"POST /api/things HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
    b"X-Mixed-Case: Value\r\nContent-Length: %d\r\n" % len(BODY)
)
EXPECT = b"EXPECT: 100-Continue\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class RecordingTransport(asyncio.Transport):
    """Each system call a real transport would make, as the list of buffers it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[list[bytes]] = []
        self.closed = self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sends.append([bytes(data)])

    def writelines(self, list_of_data: Any) -> None:
        self.sends.append([bytes(data) for data in list_of_data])

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


async def turns(count: int = 10) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def exchange(
    protocol_type: type[HttpToolsProtocol], *, expect: bool
) -> tuple[list[Any], list[list[bytes]]]:
    """The scope headers the app saw and every send; with `expect`, the body is sent
    only once the server has said 100 Continue."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok" if body == BODY else b"no"})

    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    config.load()
    protocol = protocol_type(config=config, server_state=ServerState(), app_state={})  # type: ignore[arg-type]
    transport = RecordingTransport()
    protocol.connection_made(transport)
    if expect:
        protocol.data_received(HEAD + EXPECT + b"\r\n")
        await turns()  # the app runs in a task: it reaches receive()
        protocol.data_received(BODY)
    else:
        protocol.data_received(HEAD + b"\r\n" + BODY)
    await turns()
    protocol.connection_lost(None)
    return seen, transport.sends


def sent(sends: list[list[bytes]]) -> list[bytes]:
    return [b"".join(buffers) for buffers in sends]


async def test_protocol_hands_the_app_and_the_client_what_uvicorns_own_does() -> None:
    box_protocol = protocol_class(ConnectionLimits(10.0, 4096, 16384, 100))
    box_headers, box_sends = await exchange(box_protocol, expect=False)
    uvicorn_headers, uvicorn_sends = await exchange(HttpToolsProtocol, expect=False)
    assert box_headers == uvicorn_headers
    assert (b"x-mixed-case", b"Value") in box_headers
    assert sent(uvicorn_sends) == [ANSWER.removesuffix(b"ok"), b"ok"]
    assert box_sends == [[ANSWER.removesuffix(b"ok"), b"ok"]]  # head and body in one send


async def test_protocol_answers_expect_100_continue_as_uvicorns_own_does() -> None:
    box_protocol = protocol_class(ConnectionLimits(10.0, 4096, 16384, 100))
    box_headers, box_sends = await exchange(box_protocol, expect=True)
    uvicorn_headers, uvicorn_sends = await exchange(HttpToolsProtocol, expect=True)
    assert box_headers == uvicorn_headers
    assert (b"expect", b"100-Continue") in box_headers
    # 100 Continue went out before the body came, then the answer
    assert b"".join(sent(box_sends)) == b"".join(sent(uvicorn_sends))
    assert sent(box_sends)[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"".join(sent(box_sends)[1:]) == ANSWER


async def test_joined_writes_send_what_was_written_in_order_within_the_turn() -> None:
    transport = RecordingTransport()
    joined = JoinedWrites(transport, asyncio.get_running_loop())
    joined.write(b"before any request")  # not an answer's head: out at once
    joined.hold_next = True
    joined.write(b"head")
    joined.write(b"body")
    assert transport.sends == [[b"before any request"], [b"head", b"body"]]

    joined.hold_next = True
    joined.write(b"stream head")  # nothing follows in this turn: it leaves at its end
    assert transport.sends[-1] == [b"head", b"body"]
    await turns(1)
    assert transport.sends[-1] == [b"stream head"]
    joined.write(b"event 1")  # later writes of the answer are not held
    joined.write(b"event 2")
    assert transport.sends[-2:] == [[b"event 1"], [b"event 2"]]

    joined.hold_next = True
    joined.write(b"a")
    joined.writelines([b"b", b"c"])
    joined.hold_next = True
    joined.write(b"last")
    joined.write_eof()
    assert transport.sends[-3:] == [[b"a"], [b"b", b"c"], [b"last"]]
    assert transport.eof

    joined.hold_next = True
    joined.write(b"bye")
    joined.close()
    assert (transport.sends[-1], transport.closed) == ([b"bye"], True)
    await turns()
    assert transport.sends[-1] == [b"bye"]  # not written twice


async def test_joined_writes_drop_what_is_held_once_the_other_side_has_gone() -> None:
    transport = RecordingTransport()
    joined = JoinedWrites(transport, asyncio.get_running_loop())
    joined.hold_next = True
    joined.write(b"late")
    transport.close()  # the connection was lost before the turn ended
    await turns()
    assert transport.sends == []


async def test_protocol_sends_what_is_held_before_a_half_closed_connection_closes() -> None:
    """uvloop closes the transport once eof_received returns: a write held in that turn
    (a stream's head, here) still goes out, as it did before writes were held."""
    config = uvicorn.Config(lambda scope, receive, send: None, lifespan="off", log_config=None)
    config.load()
    protocol_type = protocol_class(ConnectionLimits(10.0, 4096, 16384, 100))
    protocol = protocol_type(config=config, server_state=ServerState(), app_state={})  # type: ignore[arg-type]
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.transport.hold_next = True  # type: ignore[attr-defined]
    protocol.transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert transport.sends == []
    assert not protocol.eof_received()
    assert transport.sends == [[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]]
