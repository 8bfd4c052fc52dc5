"""The connection protocol (web/connections.py) in-process, beside uvicorn's own: for a
request within the limits it hands the app the same scope headers and writes the same
bytes, `Expect: 100-continue` included (its header callback is uvicorn's, written out)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from telentir_box.web.connections import ConnectionLimits, protocol_class

BODY = b'{"name": "x"}'
HEAD = (
    b"POST /api/things HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
    b"EXPECT: 100-Continue\r\nX-Mixed-Case: Value\r\nContent-Length: %d\r\n\r\n" % len(BODY)
)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def exchange(protocol_type: type[HttpToolsProtocol]) -> tuple[list[Any], list[bytes]]:
    """The scope headers the app saw and every byte written, for a request whose body is
    sent only once the server has said 100 Continue."""
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
    protocol.data_received(HEAD)
    for _ in range(10):  # the app runs in a task: let it reach receive()
        await asyncio.sleep(0)
    protocol.data_received(BODY)
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return seen, transport.written


async def test_protocol_hands_the_app_what_uvicorns_own_does() -> None:
    box_protocol = protocol_class(ConnectionLimits(10.0, 4096, 16384, 100))
    box_headers, box_written = await exchange(box_protocol)
    uvicorn_headers, uvicorn_written = await exchange(HttpToolsProtocol)
    assert box_headers == uvicorn_headers
    assert (b"expect", b"100-Continue") in box_headers
    assert (b"x-mixed-case", b"Value") in box_headers
    assert box_written == uvicorn_written
    assert box_written[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert box_written[-1] == b"ok"
