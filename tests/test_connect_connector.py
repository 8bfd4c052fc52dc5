"""The connector client: incremental SSE decoding, JSON object frames, failures before
and during the stream, and batched ingestion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from telentir_box.connect.connector import (
    ConnectorUnavailable,
    FrameCounts,
    SSEDecoder,
    StreamInterrupted,
    stream_records,
)
from telentir_box.connect.ingest import ingest_records
from tests.connect_fakes import FakeConnector, lead, lead_frames

LIMITS = httpx.Timeout(5.0)
STREAM = (
    b": comment\n\n"
    b'event: lead\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b'id: 7\nretry: 10\ndata:{"b": 2}\n\n'
    b"data: \n\n"
    b"data: x\n"
)


def test_connect_sse_decoder_handles_lf_crlf_and_multiline_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == [(b"lead", b'{"a":\n1}'), (b"", b'{"b": 2}'), (b"", b"")]
    assert decoder.feed(b"\n") == [(b"", b"x")]


def test_connect_sse_decoder_is_independent_of_chunk_boundaries() -> None:
    whole = SSEDecoder().feed(STREAM + b"\n")
    for size in (1, 2, 3, 7):
        decoder = SSEDecoder()
        pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)] + [b"\n"]
        assert [event for piece in pieces for event in decoder.feed(piece)] == whole


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    with FakeConnector() as fake:
        yield fake


async def collect(url: str, params: dict[str, Any], counts: FrameCounts) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return [record async for record in stream_records(http, url, params, counts, LIMITS)]


async def test_connect_stream_yields_objects_and_counts_the_rest(connector: FakeConnector) -> None:
    connector.frames = lambda params: [
        *lead_frames(2),
        b"data: [1]\n\n",
        b"data: {oops\n\n",
        b"data: null\n\n",
    ]
    counts = FrameCounts()
    records = await collect(connector.url + "/get-leads", {"credits": 2}, counts)
    assert records == [lead(0), lead(1)]
    assert (counts.records, counts.skipped) == (2, 3)


async def test_connect_stream_refused_before_streaming(connector: FakeConnector) -> None:
    connector.status = 503
    with pytest.raises(ConnectorUnavailable, match="503"):
        await collect(connector.url + "/x", {}, FrameCounts())
    with pytest.raises(ConnectorUnavailable, match="could not be reached"):
        await collect("http://127.0.0.1:9/x", {}, FrameCounts())


async def test_connect_stream_cut_or_error_event_interrupts(connector: FakeConnector) -> None:
    connector.frames = lambda params: lead_frames(10)
    connector.cut_after = 4
    counts = FrameCounts()
    with pytest.raises(StreamInterrupted):
        await collect(connector.url + "/x", {}, counts)
    assert counts.records == 4
    connector.cut_after = None
    connector.frames = lambda params: [*lead_frames(1), b'event: error\ndata: "boom"\n\n', *lead_frames(1)]
    with pytest.raises(StreamInterrupted, match="reported an error"):
        await collect(connector.url + "/x", {}, FrameCounts())


async def numbers(count: int, fail: bool = False) -> AsyncGenerator[dict[str, Any], None]:
    for n in range(count):
        if n % 100 == 0:
            await asyncio.sleep(0)
        yield {"n": n}
    if fail:
        raise StreamInterrupted("cut")


async def test_connect_ingest_batches_while_reading() -> None:
    batches: list[int] = []

    async def store(batch: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0.01)  # a commit's latency
        batches.append(len(batch))

    stored, failure = await ingest_records(numbers(2000), store, max_batch=500)
    assert (stored, failure) == (2000, None)
    assert sum(batches) == 2000
    assert max(batches) <= 500
    assert len(batches) < 100


async def test_connect_ingest_honours_limit_and_reports_failure() -> None:
    seen: list[dict[str, Any]] = []

    async def store(batch: list[dict[str, Any]]) -> None:
        seen.extend(batch)

    assert await ingest_records(numbers(50), store, limit=7) == (7, None)
    assert [r["n"] for r in seen] == list(range(7))
    seen.clear()
    stored, failure = await ingest_records(numbers(30, fail=True), store)
    assert stored == 30
    assert isinstance(failure, StreamInterrupted)
    assert await ingest_records(numbers(5), store, limit=0) == (0, None)


async def test_connect_ingest_propagates_store_failure() -> None:
    async def store(batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("disk full")

    async def endless() -> AsyncIterator[dict[str, Any]]:
        while True:
            yield {}

    with pytest.raises(RuntimeError, match="disk full"):
        await ingest_records(endless(), store)  # type: ignore[arg-type]
