"""The connector client: one streaming HTTP request to the connector service, its
Server-Sent Events decoded incrementally into JSON objects."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

_json = msgspec.json.Decoder()


class ConnectorUnavailable(Exception):
    """The connector could not be reached or refused the request before streaming."""


class StreamInterrupted(Exception):
    """The stream broke (or the connector sent `event: error`) after it had started."""


@dataclass
class SSEDecoder:
    """Cuts a byte stream into events (blank-line delimited, LF or CRLF line ends)
    and returns each event's data (its data lines joined by LF)."""

    _tail: bytes = b""
    _data: list[bytes] = field(default_factory=list)
    _event: bytes = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """(event name, data) for every event completed by `chunk`."""
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        done: list[tuple[bytes, bytes]] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    done.append((self._event, b"\n".join(self._data)))
                self._data, self._event = [], b""
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            # Comments (empty name), id and retry carry nothing for ingestion.
        return done


@dataclass
class FrameCounts:
    records: int = 0
    skipped: int = 0


async def stream_records(
    http: httpx.AsyncClient,
    url: str,
    params: dict[str, Any],
    counts: FrameCounts,
    limits: httpx.Timeout,
) -> AsyncGenerator[dict[str, Any], None]:
    """POST `params` as JSON to `url` and yield every frame whose data is a JSON object;
    other frames are counted in `counts.skipped`."""
    request = http.build_request(
        "POST", url, json=params, headers={"accept": "text/event-stream"}, timeout=limits
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise ConnectorUnavailable(f"the connector could not be reached ({type(exc).__name__})") from exc
    try:
        if not response.is_success:
            raise ConnectorUnavailable(f"the connector answered {response.status_code}")
        decoder = SSEDecoder()
        try:
            async for chunk in response.aiter_bytes():
                for event, data in decoder.feed(chunk):
                    if event == b"error":
                        raise StreamInterrupted("the connector reported an error")
                    try:
                        record = _json.decode(data)
                    except msgspec.DecodeError:
                        record = None
                    if isinstance(record, dict):
                        counts.records += 1
                        yield record
                    else:
                        counts.skipped += 1
        except httpx.HTTPError as exc:
            raise StreamInterrupted(f"the connector stream broke ({type(exc).__name__})") from exc
    finally:
        await response.aclose()
