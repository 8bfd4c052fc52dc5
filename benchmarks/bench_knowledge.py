"""Knowledge-base ingestion and search on the real `telentir-box serve`.

Ingestion: text, PDF and DOCX files uploaded to POST /api/knowledge-bases/{id}
(typed, extracted, chunked, indexed, committed durably), in MB of file per second,
next to the extraction alone in this process for reference.

Search: POST /api/knowledge-bases/{id}/search over a base of at least 10,000 chunks
(synthetic text with a Zipf vocabulary, so common words match thousands of chunks),
one request at a time, interleaved with the baseline measured in the same run:
GET /api/knowledge-bases (the same auth and one indexed SELECT: the caller's bases).
Target: search p99 under 20 ms."""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
import zipfile

import httpx
from loadgen import create_api_key, running_server
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from telentir_box.telephony.extract import ExtractLimits, extract_text

TARGET_P99_MS = 20.0
TARGET_CHUNKS = 10_000
VOCABULARY = [f"w{n}{chr(97 + n % 26)}" for n in range(5_000)]
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def sentences(rng: random.Random, count: int) -> list[str]:
    return [
        " ".join(rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(6, 20))).capitalize() + "."
        for _ in range(count)
    ]


def text_file(rng: random.Random, size: int) -> bytes:
    out: list[str] = []
    length = 0
    while length < size:
        paragraph = " ".join(sentences(rng, rng.randint(2, 8)))
        out.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(out).encode()


def pdf_file(rng: random.Random, pages: int) -> bytes:
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        lines = "".join(f"({line}) Tj T* " for line in sentences(rng, 40))
        stream = StreamObject()
        stream.set_data(f"BT /F1 9 Tf 11 TL 36 760 Td {lines}ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_file(rng: random.Random, paragraphs: int) -> bytes:
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(
        f"<w:p><w:r><w:t>{' '.join(sentences(rng, 4))}</w:t></w:r></w:p>" for _ in range(paragraphs)
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(
            "word/document.xml", f'<w:document xmlns:w="{ns}"><w:body>{body}</w:body></w:document>'
        )
    return out.getvalue()


def upload(http: httpx.Client, base: str, name: str, data: bytes, content_type: str) -> float:
    started = time.perf_counter()
    response = http.post(f"/api/knowledge-bases/{base}", files=[("files", (name, data, content_type))])
    seconds = time.perf_counter() - started
    response.raise_for_status()
    return seconds


def chunk_count(http: httpx.Client, base: str) -> int:
    return sum(
        document["chunks"] for document in http.get(f"/api/knowledge-bases/{base}").json()["documents"]
    )


def extraction_seconds(data: bytes, kind: str) -> float:
    started = time.perf_counter()
    extract_text(data, kind, ExtractLimits(max_text_bytes=1 << 30, max_pdf_pages=100_000))
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_ingestion(http: httpx.Client, base: str, rng: random.Random, text_mb: float) -> None:
    print(f"{'ingestion':<26} {'files':>5} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'extract alone':>14}")
    samples = {
        "text (1 MB files)": ([text_file(rng, int(text_mb * 1e6)) for _ in range(4)], "text", "a.txt"),
        "pdf (200 pages)": ([pdf_file(rng, 200) for _ in range(2)], "pdf", "a.pdf"),
        "docx (2,000 paragraphs)": ([docx_file(rng, 2000) for _ in range(2)], "docx", "a.docx"),
    }
    types = {"text": "text/plain", "pdf": "application/pdf", "docx": DOCX_TYPE}
    for label, (files, kind, name) in samples.items():
        size = sum(len(data) for data in files) / 1e6
        seconds = sum(upload(http, base, name, data, types[kind]) for data in files)
        alone = sum(extraction_seconds(data, kind) for data in files)
        rates = f"{size / seconds:>7.2f} {size / alone:>14.2f}"
        print(f"{label:<26} {len(files):>5} {size:>7.2f} {seconds:>8.2f} {rates}")


def measure_search(
    http: httpx.Client, base: str, rng: random.Random, searches: int, weights: list[float]
) -> tuple[list[float], list[float], int]:
    """(search ms, baseline ms, hits), one search then one baseline request at a time,
    query words drawn with `weights`."""
    search_ms: list[float] = []
    baseline_ms: list[float] = []
    hits = 0
    for _ in range(searches):
        words = " ".join(rng.choices(VOCABULARY, weights, k=rng.randint(1, 3)))
        started = time.perf_counter()
        response = http.post(f"/api/knowledge-bases/{base}/search", json={"text": words})
        search_ms.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        hits += len(response.json())
        started = time.perf_counter()
        http.get("/api/knowledge-bases").raise_for_status()
        baseline_ms.append((time.perf_counter() - started) * 1000)
    return search_ms, baseline_ms, hits


def print_figures(label: str, hits: float, values: list[float]) -> None:
    figures = f"{statistics.median(values):>7.2f} {percentile(values, 0.99):>7.2f} {max(values):>7.2f}"
    print(f"{label:<44} {hits:>5.1f} {figures}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--searches", type=int, default=2_000)
    parser.add_argument("--text-mb", type=float, default=1.0, help="size of each text file")
    args = parser.parse_args(argv)
    rng = random.Random(7)
    env = {"TELENTIR_BOX_KNOWLEDGE__MAX_DOCUMENTS_PER_BASE": "100000"}
    with running_server(env) as server:
        headers = {"authorization": f"Bearer {create_api_key(server.data_dir)}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=300, trust_env=False) as http:
            base = http.put("/api/knowledge-bases", json={"name": "bench"}).json()["id"]
            measure_ingestion(http, base, rng, args.text_mb)
            while (chunks := chunk_count(http, base)) < TARGET_CHUNKS:
                upload(http, base, "more.txt", text_file(rng, 1_000_000), "text/plain")
            print(f"\nsearch over {chunks} chunks, {args.searches} queries of 1-3 words each")
            print(f"{'workload':<44} {'hits':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
            verdicts = []
            for label, weights in [
                ("Zipf-drawn words", WEIGHTS),
                ("words drawn evenly", [1.0] * len(VOCABULARY)),
            ]:
                search_ms, baseline_ms, hits = measure_search(http, base, rng, args.searches, weights)
                print_figures(f"POST .../search, {label}", hits / args.searches, search_ms)
                print_figures("  baseline GET /api/knowledge-bases", 0, baseline_ms)
                ratio = statistics.median(search_ms) / statistics.median(baseline_ms)
                print(f"  search / baseline p50: {ratio:.2f}")
                verdicts.append(percentile(search_ms, 0.99) < TARGET_P99_MS)
    print(
        f"target search p99 < {TARGET_P99_MS:g} ms:",
        " / ".join("meets" if ok else "MISSES" for ok in verdicts),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
