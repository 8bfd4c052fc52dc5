"""Knowledge bases end to end over the real `telentir-box serve`: the client's routes and
shapes, uploads typed from their bytes, links fetched from local page servers (and
refused toward loopback, private and metadata addresses), search, limits and users
kept apart. One server for the module; its only departure from the default link
rules is an allow-list naming 127.0.0.2, where the page server runs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from telentir_box.config import KnowledgeConfig
from telentir_box.datadir import DATABASE_FILE
from telentir_box.telephony.extract import detect_type
from telentir_box.telephony.knowledge import chunk_text, fts_query, query_terms
from telentir_box.telephony.link_fetch import LinkFailed, LinkFetcher, LinkRefused
from tests.auth_support import FAST_ENV
from tests.conftest import LiveServer, create_user

pytestmark = pytest.mark.e2e

ALLOWED_HOST = "127.0.0.2"
MAX_FILE = 65_536
MAX_DOCUMENTS = 8
QUOTA = 150_000
KB = "/api/knowledge-bases"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# ---- documents built in the test ---------------------------------------------------------------


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF whose pages show `pages` in Helvetica."""
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
    for text in pages:
        page = writer.add_blank_page(612, 792)
        stream = StreamObject()
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream.set_data(f"BT /F1 12 Tf 72 700 Td ({escaped}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str], body: bytes | None = None) -> bytes:
    """A minimal DOCX (a ZIP with word/document.xml); `body` replaces the XML."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    runs = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    xml = (
        body
        or f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>{runs}</w:body></w:document>'.encode()
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", xml)
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """20 MB of XML squeezed into a few kilobytes."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    padding = b" " * 20_000_000
    return make_docx(
        [], f'<w:document xmlns:w="{ns}"><w:body>'.encode() + padding + b"</w:body></w:document>"
    )


FILLER = [f"Filler page {n} about weather, gardens, trains and music number {n}." for n in range(12)]


# ---- local page servers ------------------------------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the box hangs up on purpose (size caps); that is no error here


class Pages:
    """A real HTTP server serving pages for links; keeps (path, Host) of each request."""

    def __init__(self, host: str) -> None:
        self.requests: list[tuple[str, str]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pages.requests.append((self.path, self.headers.get("host", "")))
                if self.path == "/slow":
                    time.sleep(1.5)
                status, headers, body = pages.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = QuietServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.port = self.server.server_address[1]

    def serve(self, path: str, body: bytes, content_type: str = "text/html", **headers: str) -> str:
        self.routes[path] = (200, {"content-type": content_type, **headers}, body)
        return self.url + path

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = (302, {"location": location}, b"")
        return self.url + path


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    yield from _running(Pages(ALLOWED_HOST))


@pytest.fixture(scope="module")
def private_pages() -> Iterator[Pages]:
    """The same on 127.0.0.1, which the box must never reach."""
    yield from _running(Pages("127.0.0.1"))


def _running(pages: Pages) -> Iterator[Pages]:
    thread = threading.Thread(target=pages.server.serve_forever, daemon=True)
    thread.start()
    yield pages
    pages.server.shutdown()
    pages.server.server_close()


# ---- the box -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir: Path = tmp_path_factory.mktemp("knowledge") / "data"
    return {
        **FAST_ENV,
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_KNOWLEDGE__MAX_FILE_BYTES": str(MAX_FILE),
        "TELENTIR_BOX_KNOWLEDGE__MAX_FILES_PER_REQUEST": "4",
        "TELENTIR_BOX_KNOWLEDGE__MAX_DOCUMENTS_PER_BASE": str(MAX_DOCUMENTS),
        "TELENTIR_BOX_KNOWLEDGE__MAX_BYTES_PER_USER": str(QUOTA),
        "TELENTIR_BOX_KNOWLEDGE__MAX_TEXT_BYTES": "262144",
        "TELENTIR_BOX_KNOWLEDGE__MAX_PDF_PAGES": "3",
        "TELENTIR_BOX_KNOWLEDGE__LINK_MAX_BYTES": "8192",
        "TELENTIR_BOX_KNOWLEDGE__LINK_MAX_REDIRECTS": "2",
        "TELENTIR_BOX_KNOWLEDGE__LINK_TIMEOUT_SECONDS": "5",
        "TELENTIR_BOX_KNOWLEDGE__ALLOWED_NETWORKS": f'["{ALLOWED_HOST}/32"]',
    }


@pytest.fixture(scope="module")
def server(box_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(env=box_env, log_path=tmp_path_factory.mktemp("knowledge-log") / "server.log")
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


class User:
    def __init__(self, http: httpx.Client, created: dict[str, str]) -> None:
        self.http = http
        self.id = created["id"]
        self.headers = {"authorization": f"Bearer {created['api_key']}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def new_base(self, name: str = "Support") -> str:
        return self.ok("PUT", KB, 201, json={"name": name})["id"]

    def upload(self, base_id: str, *files: tuple[str, bytes, str]) -> httpx.Response:
        return self.call("POST", f"{KB}/{base_id}", files=[("files", file) for file in files])

    def documents(self, base_id: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"{KB}/{base_id}")["documents"]


def _user(http: httpx.Client, env: dict[str, str], email: str) -> User:
    return User(http, create_user(env, email, "--phone-verified", "--api-key", "k"))


@pytest.fixture(scope="module")
def alice(http: httpx.Client, box_env: dict[str, str], server: LiveServer) -> User:
    return _user(http, box_env, "alice@example.com")


@pytest.fixture(scope="module")
def mallory(http: httpx.Client, box_env: dict[str, str], server: LiveServer) -> User:
    return _user(http, box_env, "mallory@example.com")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["error"] == body["message"] and body["message"]


# ---- bases -------------------------------------------------------------------------------------


def test_knowledge_base_lifecycle_answers_the_client_shapes(alice: User) -> None:
    created = alice.ok("PUT", KB, 201, json={"name": "Pricing", "description": "plans and refunds"})
    assert set(created) == {"id", "user_id", "name", "description", "created_at", "updated_at"}
    assert created["user_id"] == alice.id and created["description"] == "plans and refunds"
    base_id = created["id"]
    assert base_id in [base["id"] for base in alice.ok("GET", KB)]
    assert alice.ok("GET", f"{KB}/{base_id}") == {**created, "documents": []}

    renamed = alice.ok("PATCH", f"{KB}/{base_id}", json={"name": "Prices"})
    assert (renamed["name"], renamed["description"]) == ("Prices", "plans and refunds")
    cleared = alice.ok("PATCH", f"{KB}/{base_id}", json={"description": None})
    assert (cleared["name"], cleared["description"]) == ("Prices", None)

    assert alice.call("DELETE", f"{KB}/{base_id}").status_code == 204
    assert_error(alice.call("GET", f"{KB}/{base_id}"), 404, "NOT_FOUND")
    assert base_id not in [base["id"] for base in alice.ok("GET", KB)]


def test_knowledge_base_bad_bodies_change_nothing(alice: User) -> None:
    base_id = alice.new_base("Unchanged")
    before = alice.ok("GET", f"{KB}/{base_id}")
    json_headers = {"content-type": "application/json"}
    for method, path, body in [
        ("PUT", KB, {"name": "x", "colour": "red"}),
        ("PUT", KB, {"name": ""}),
        ("PUT", KB, {"name": "   "}),
        ("PUT", KB, {"name": "x" * 201}),
        ("PUT", KB, {"name": 5}),
        ("PUT", KB, {}),
        ("PATCH", f"{KB}/{base_id}", {}),
        ("PATCH", f"{KB}/{base_id}", {"name": None}),
        ("PATCH", f"{KB}/{base_id}", {"description": 3}),
        ("PATCH", f"{KB}/{base_id}", {"id": "kb_other"}),
        ("POST", f"{KB}/{base_id}/search", {"text": ""}),
        ("POST", f"{KB}/{base_id}/search", {"text": "x" * 2001}),
        ("POST", f"{KB}/{base_id}/search", {"query": "x"}),
        ("POST", f"{KB}/{base_id}/links", {"urls": []}),
        ("POST", f"{KB}/{base_id}/links", {"urls": "http://example.com"}),
        ("POST", f"{KB}/{base_id}/links", {"urls": ["http://example.com/" + "a" * 2048]}),
    ]:
        assert_error(alice.call(method, path, json=body), 400, "VALIDATION_ERROR")
    for method, path in [("PUT", KB), ("PATCH", f"{KB}/{base_id}"), ("POST", f"{KB}/{base_id}/search")]:
        assert_error(
            alice.call(method, path, content=b'{"name": ', headers=json_headers), 400, "VALIDATION_ERROR"
        )
    oversized = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    assert_error(alice.call("PUT", KB, content=oversized, headers=json_headers), 413, "PAYLOAD_TOO_LARGE")
    assert alice.ok("GET", f"{KB}/{base_id}") == before
    assert [base["name"] for base in alice.ok("GET", KB)].count("x") == 0


def test_knowledge_routes_need_a_credential(alice: User, http: httpx.Client) -> None:
    base_id = alice.new_base()
    for method, path in [
        ("PUT", KB),
        ("GET", KB),
        ("GET", f"{KB}/{base_id}"),
        ("PATCH", f"{KB}/{base_id}"),
        ("DELETE", f"{KB}/{base_id}"),
        ("POST", f"{KB}/{base_id}"),
        ("POST", f"{KB}/{base_id}/links"),
        ("POST", f"{KB}/{base_id}/search"),
        ("DELETE", f"{KB}/{base_id}/1"),
    ]:
        assert_error(http.request(method, path, json={}), 401, "UNAUTHORIZED")
        assert_error(
            http.request(method, path, json={}, headers={"authorization": "Bearer nope"}), 401, "UNAUTHORIZED"
        )
    assert alice.ok("GET", f"{KB}/{base_id}")["name"] == "Support"


# ---- uploads and search ------------------------------------------------------------------------


def test_knowledge_upload_types_every_format_and_search_ranks_best_first(alice: User) -> None:
    base_id = alice.new_base("Help centre")
    html = b"<!doctype html><html><head><title>t</title><script>var refund = 1;</script></head>"
    html += b"<body><nav>Menu</nav><p>Opening hours are nine to five.</p></body></html>"
    response = alice.upload(
        base_id,
        ("file", b"Calls are recorded for training. The refund is sent by card.", "application/octet-stream"),
        (
            "guide.md",
            b"# Refund policy\n\nA refund, any refund: refunds within thirty days.",
            "text/markdown",
        ),
        ("hours.html", html, "text/html"),
        ("plan.pdf", make_pdf(["Minutes beyond the plan are billed per minute."]), "application/pdf"),
    )
    assert response.status_code == 201, response.text
    refs = response.json()
    assert [ref["name"] for ref in refs] == ["file", "guide.md", "hours.html", "plan.pdf"]
    assert all(isinstance(ref["id"], int) for ref in refs)
    docx = alice.upload(
        base_id, ("contract.docx", make_docx(["Cancellation needs thirty days notice."]), DOCX_TYPE)
    )
    assert docx.status_code == 201, docx.text
    refs += docx.json()
    filler = alice.upload(
        base_id, *[(f"f{n}.txt", text.encode(), "text/plain") for n, text in enumerate(FILLER[:3])]
    )
    assert filler.status_code == 201, filler.text

    documents = alice.documents(base_id)
    assert [(d["id"], d["name"], d["type"], d["source"]) for d in documents[:5]] == [
        (ref["id"], ref["name"], kind, "file")
        for ref, kind in zip(refs, ["text", "markdown", "html", "pdf", "docx"], strict=True)
    ]

    hits = alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "refund"})
    assert [hit["document"] for hit in hits][:2] == [refs[1]["id"], refs[0]["id"]]
    assert all(set(hit) == {"document", "distance", "text"} for hit in hits)
    distances = [hit["distance"] for hit in hits]
    assert distances == sorted(distances) and all(0 < d <= 1 for d in distances)
    assert "thirty days" in hits[0]["text"]
    # The script's "refund" was not indexed: the HTML page is no hit.
    assert refs[2]["id"] not in [hit["document"] for hit in hits]
    for text, document in [("billed minute", 3), ("cancellation notice", 4), ("opening hours", 2)]:
        assert (
            alice.ok("POST", f"{KB}/{base_id}/search", json={"text": text})[0]["document"]
            == refs[document]["id"]
        )


def test_knowledge_search_reads_fts_syntax_as_words(alice: User) -> None:
    base_id = alice.new_base()
    assert (
        alice.upload(base_id, ("a.txt", b"What is the price of the plan?", "text/plain")).status_code == 201
    )
    for text in [
        'what is "the price',
        "NEAR(price plan",
        "price*",
        "^price",
        "col:price",
        "price AND",
        "-",
        '"',
    ]:
        response = alice.call("POST", f"{KB}/{base_id}/search", json={"text": text})
        assert response.status_code == 200, (text, response.text)
    assert (
        alice.upload(base_id, ("b.txt", "Le café crème est servi.".encode(), "text/plain")).status_code == 201
    )
    assert "crème" in alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "CAFE"})[0]["text"]
    assert alice.ok("POST", f"{KB}/{base_id}/search", json={"text": '"?!'}) == []
    assert alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "zebra"}) == []


def indexed(box_env: dict[str, str], word: str) -> tuple[int, int]:
    """(chunks in the index holding `word`, chunk rows in all), read from the database."""
    path = Path(box_env["TELENTIR_BOX_DATA__DIR"]) / DATABASE_FILE
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (hits,) = conn.execute(
            "SELECT count(*) FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH ?", (f'"{word}"',)
        ).fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()
    return hits, rows


def test_knowledge_deletes_take_chunks_out_of_the_index(alice: User, box_env: dict[str, str]) -> None:
    base_id = alice.new_base()
    text = " ".join(["Zanzibarish facts stay here."] * 200).encode()  # several chunks
    _, rows_before = indexed(box_env, "zanzibarish")
    refs = alice.upload(
        base_id, ("a.txt", text, "text/plain"), ("b.txt", b"Zanzibarish once.", "text/plain")
    ).json()
    hits, rows = indexed(box_env, "zanzibarish")
    assert hits == rows - rows_before > 2
    assert alice.call("DELETE", f"{KB}/{base_id}/{refs[0]['id']}").status_code == 204
    assert indexed(box_env, "zanzibarish") == (1, rows_before + 1)
    assert alice.call("DELETE", f"{KB}/{base_id}").status_code == 204
    assert indexed(box_env, "zanzibarish") == (0, rows_before)


def test_knowledge_document_delete_takes_it_out_of_search(alice: User) -> None:
    base_id = alice.new_base()
    refs = alice.upload(
        base_id,
        ("a.txt", b"Parking is free after six.", "text/plain"),
        ("b.txt", b"Lunch at noon.", "text/plain"),
    ).json()
    assert alice.call("DELETE", f"{KB}/{base_id}/{refs[0]['id']}").status_code == 204
    assert [d["id"] for d in alice.documents(base_id)] == [refs[1]["id"]]
    assert alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "parking"}) == []
    assert_error(alice.call("DELETE", f"{KB}/{base_id}/{refs[0]['id']}"), 404, "NOT_FOUND")
    for junk in ["abc", "1.5", "-1", "99999999999999999999", "%C2%B2"]:
        assert_error(alice.call("DELETE", f"{KB}/{base_id}/{junk}"), 404, "NOT_FOUND")
    # The static segments are not document ids.
    assert alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "lunch"})[0]["document"] == refs[1]["id"]


def test_knowledge_upload_refuses_unsupported_and_lying_types_storing_nothing(alice: User) -> None:
    base_id = alice.new_base()
    pdf = make_pdf(["Real PDF text."])
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    not_docx = io.BytesIO()
    with zipfile.ZipFile(not_docx, "w") as archive:
        archive.writestr("hello.txt", "hi")
    cases = [
        (("a.txt", pdf, "text/plain"), "FILE_TYPE_MISMATCH"),
        (("a.pdf", b"just text", "application/pdf"), "FILE_TYPE_MISMATCH"),
        (("a.pdf", b"just text", "application/octet-stream"), "FILE_TYPE_MISMATCH"),
        (("a.docx", pdf, "application/octet-stream"), "FILE_TYPE_MISMATCH"),
        (("a.html", make_docx(["x"]), "text/html"), "FILE_TYPE_MISMATCH"),
        (("photo.png", png, "image/png"), "UNSUPPORTED_FILE_TYPE"),
        (("photo", png, "application/octet-stream"), "UNSUPPORTED_FILE_TYPE"),
        (("a.zip", not_docx.getvalue(), "application/zip"), "UNSUPPORTED_FILE_TYPE"),
        (("a.zip", not_docx.getvalue(), "application/octet-stream"), "UNSUPPORTED_FILE_TYPE"),
        (("a.txt", b"nul\x00inside", "text/plain"), "UNSUPPORTED_FILE_TYPE"),
        (("a.txt", b"latin-1 caf\xe9", "text/plain"), "UNSUPPORTED_FILE_TYPE"),
    ]
    for file, code in cases:
        # A good file beside the bad one is not stored either.
        response = alice.upload(base_id, ("good.txt", b"good text", "text/plain"), file)
        assert_error(response, 415, code)
    assert_error(alice.upload(base_id, ("empty.txt", b"   \n", "text/plain")), 400, "VALIDATION_ERROR")
    assert_error(
        alice.upload(base_id, ("blank.pdf", make_pdf([""]), "application/pdf")), 400, "VALIDATION_ERROR"
    )
    assert_error(
        alice.upload(base_id, ("bad.pdf", b"%PDF-1.4 garbage", "application/pdf")), 400, "VALIDATION_ERROR"
    )
    assert alice.documents(base_id) == []


def test_knowledge_upload_bounds_size_pages_bombs_counts_and_quota(
    alice: User, http: httpx.Client, box_env: dict[str, str]
) -> None:
    base_id = alice.new_base()
    assert_error(
        alice.upload(base_id, ("big.txt", b"a " * (MAX_FILE // 2 + 1), "text/plain")),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    assert_error(alice.upload(base_id, ("bomb.docx", zip_bomb_docx(), DOCX_TYPE)), 413, "PAYLOAD_TOO_LARGE")
    entity = make_docx([], b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    assert_error(alice.upload(base_id, ("entity.docx", entity, DOCX_TYPE)), 400, "VALIDATION_ERROR")
    long_pdf = make_pdf([f"page {n}" for n in range(4)])
    assert_error(alice.upload(base_id, ("long.pdf", long_pdf, "application/pdf")), 413, "PAYLOAD_TOO_LARGE")
    # Past the route's body limit (4 files of MAX_FILE and the framing): refused unread.
    assert_error(
        alice.upload(base_id, ("huge.txt", b"a" * (6 * MAX_FILE), "text/plain")), 413, "PAYLOAD_TOO_LARGE"
    )
    five = [(f"{n}.txt", b"text", "text/plain") for n in range(5)]
    assert_error(alice.upload(base_id, *five), 400, "VALIDATION_ERROR")
    assert_error(alice.call("POST", f"{KB}/{base_id}", json={"files": []}), 415, "UNSUPPORTED_MEDIA_TYPE")
    garbage = {"content-type": "multipart/form-data; boundary=zz"}
    assert_error(
        alice.call("POST", f"{KB}/{base_id}", content=b"garbage", headers=garbage), 400, "VALIDATION_ERROR"
    )
    other_part = alice.call("POST", f"{KB}/{base_id}", files=[("attachment", ("a.txt", b"x", "text/plain"))])
    assert_error(other_part, 400, "VALIDATION_ERROR")
    assert alice.documents(base_id) == []

    for _ in range(2):
        assert alice.upload(base_id, *five[:4]).status_code == 201
    assert_error(alice.upload(base_id, five[4]), 400, "TOO_MANY_DOCUMENTS")
    assert len(alice.documents(base_id)) == MAX_DOCUMENTS

    # The byte quota counts the text of every base of the user.
    owner = _user(http, box_env, "quota@example.com")
    chunk = ("word " * 12_000).encode()  # 60,000 bytes of text
    first, second = owner.new_base(), owner.new_base()
    assert (
        owner.upload(first, ("1.txt", chunk, "text/plain"), ("2.txt", chunk, "text/plain")).status_code == 201
    )
    assert_error(owner.upload(second, ("3.txt", chunk, "text/plain")), 413, "KNOWLEDGE_QUOTA_EXCEEDED")
    assert owner.documents(second) == []
    assert owner.upload(second, ("small.txt", b"still room for this", "text/plain")).status_code == 201


def test_knowledge_other_users_bases_and_documents_are_404_everywhere(alice: User, mallory: User) -> None:
    base_id = alice.new_base("Private")
    ref = alice.upload(base_id, ("secret.txt", b"The vault code is on the blue card.", "text/plain")).json()[
        0
    ]
    before = alice.ok("GET", f"{KB}/{base_id}")
    own = mallory.new_base("Mine")
    for method, path, kwargs in [
        ("GET", f"{KB}/{base_id}", {}),
        ("PATCH", f"{KB}/{base_id}", {"json": {"name": "taken"}}),
        ("POST", f"{KB}/{base_id}", {"files": [("files", ("x.txt", b"planted", "text/plain"))]}),
        ("POST", f"{KB}/{base_id}/links", {"json": {"urls": ["http://example.com/"]}}),
        ("POST", f"{KB}/{base_id}/search", {"json": {"text": "vault"}}),
        ("DELETE", f"{KB}/{base_id}/{ref['id']}", {}),
        ("DELETE", f"{KB}/{own}/{ref['id']}", {}),
        ("DELETE", f"{KB}/{base_id}", {}),
        ("GET", f"{KB}/kb_nosuchbase000000000", {}),
    ]:
        assert_error(mallory.call(method, path, **kwargs), 404, "NOT_FOUND")
    assert base_id not in [base["id"] for base in mallory.ok("GET", KB)]
    assert mallory.ok("POST", f"{KB}/{own}/search", json={"text": "vault"}) == []
    assert alice.ok("GET", f"{KB}/{base_id}") == before


def test_knowledge_routes_are_in_the_openapi_schema(http: httpx.Client) -> None:
    paths = http.get("/api/schema/openapi.json").json()["paths"]
    assert set(paths[KB]) == {"get", "put"}
    assert set(paths[f"{KB}/{{base_id}}"]) == {"get", "patch", "delete", "post"}
    assert "multipart/form-data" in paths[f"{KB}/{{base_id}}"]["post"]["requestBody"]["content"]
    assert set(paths[f"{KB}/{{base_id}}/links"]) == {"post"}
    assert set(paths[f"{KB}/{{base_id}}/search"]) == {"post"}
    assert set(paths[f"{KB}/{{base_id}}/{{document_id}}"]) == {"delete"}


# ---- links -------------------------------------------------------------------------------------


def test_knowledge_links_are_fetched_by_the_box_and_indexed(alice: User, pages: Pages) -> None:
    base_id = alice.new_base("Web")
    page = pages.serve("/faq.html", b"<html><body><p>Support answers within two hours.</p></body></html>")
    pdf = pages.serve("/terms", make_pdf(["Invoices are due in fourteen days."]), "application/pdf")
    moved = pages.redirect("/old-faq", "/faq.html")
    response = alice.call("POST", f"{KB}/{base_id}/links", json={"urls": [page, pdf, moved]})
    assert response.status_code == 201, response.text
    refs = response.json()
    assert [ref["name"] for ref in refs] == [page, pdf, moved] and all(isinstance(r["id"], int) for r in refs)
    documents = alice.documents(base_id)
    assert [(d["type"], d["source"], d["url"]) for d in documents] == [
        ("html", "link", page),
        ("pdf", "link", pdf),
        ("html", "link", moved),
    ]
    assert (
        alice.ok("POST", f"{KB}/{base_id}/search", json={"text": "invoices"})[0]["document"] == refs[1]["id"]
    )
    # The box connected to the address it vetted, naming the host as the link did.
    assert ("/faq.html", f"{ALLOWED_HOST}:{pages.port}") in pages.requests


def test_knowledge_links_to_private_addresses_are_refused_storing_nothing(
    alice: User, pages: Pages, private_pages: Pages
) -> None:
    base_id = alice.new_base()
    target = private_pages.serve("/inside", b"<p>internal admin page</p>")
    port = private_pages.port
    refused = [
        target,
        f"http://localhost:{port}/inside",
        f"http://[::1]:{port}/inside",
        f"http://[::ffff:127.0.0.1]:{port}/inside",
        f"http://2130706433:{port}/inside",
        f"http://0.0.0.0:{port}/inside",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://100.100.100.200/",
        "http://224.0.0.1/",
        pages.redirect("/to-loopback", target),
        pages.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/"),
        pages.redirect("/to-private", "http://10.1.2.3/admin"),
    ]
    good = pages.serve("/ok.html", b"<p>fine</p>")
    for url in refused:
        assert_error(
            alice.call("POST", f"{KB}/{base_id}/links", json={"urls": [good, url]}), 400, "LINK_REFUSED"
        )
    assert private_pages.requests == []

    pages.serve("/huge", b"x" * 9000, "text/plain")
    pages.routes["/gone"] = (404, {}, b"")
    pages.routes["/loop"] = (302, {"location": "/loop"}, b"")
    pages.serve("/zipped", b"\x1f\x8b compressed", "text/plain", **{"content-encoding": "gzip"})
    pages.serve("/image", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png")
    pages.serve("/lying.pdf", b"plain words", "application/pdf")
    for url, status, code in [
        (pages.url + "/huge", 413, "PAYLOAD_TOO_LARGE"),
        (pages.url + "/gone", 400, "LINK_FETCH_FAILED"),
        (pages.url + "/loop", 400, "LINK_FETCH_FAILED"),
        (pages.url + "/zipped", 400, "LINK_FETCH_FAILED"),
        (pages.url + "/image", 415, "UNSUPPORTED_FILE_TYPE"),
        (pages.url + "/lying.pdf", 415, "FILE_TYPE_MISMATCH"),
        ("http://no-such-host.invalid/", 400, "LINK_FETCH_FAILED"),
        ("ftp://example.com/file.txt", 400, "VALIDATION_ERROR"),
        ("file:///etc/passwd", 400, "VALIDATION_ERROR"),
        ("http://user:pw@example.com/", 400, "VALIDATION_ERROR"),
        ("not a url", 400, "VALIDATION_ERROR"),
    ]:
        assert_error(alice.call("POST", f"{KB}/{base_id}/links", json={"urls": [url]}), status, code)
    assert alice.documents(base_id) == []


def test_knowledge_link_fetcher_default_rules_and_the_private_switch(private_pages: Pages) -> None:
    """The fetcher with the built-in settings refuses every non-public address;
    allow_private_links opens private ones but never the metadata addresses."""
    url = private_pages.serve("/hello", b"hello from loopback", "text/plain")
    slow = private_pages.serve("/slow", b"late", "text/plain")

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            default = LinkFetcher(client, KnowledgeConfig())
            for link in [url, "http://169.254.169.254/", "http://[fe80::1]/", "http://172.16.0.1/"]:
                with pytest.raises(LinkRefused):
                    await default.fetch(link)
            opened = LinkFetcher(client, KnowledgeConfig(allow_private_links=True))
            assert (await opened.fetch(url)).body == b"hello from loopback"
            for link in [
                "http://169.254.169.254/",
                "http://[fd00:ec2::254]/",
                "http://[::ffff:169.254.169.254]/",
            ]:
                with pytest.raises(LinkRefused):
                    await opened.fetch(link)
            hasty = LinkFetcher(client, KnowledgeConfig(allow_private_links=True, link_timeout_seconds=0.3))
            with pytest.raises(LinkFailed, match=r"no complete answer within 0\.3 seconds"):
                await hasty.fetch(slow)

    asyncio.run(run())
    assert [path for path, _ in private_pages.requests] == ["/hello", "/slow"]


# ---- units -------------------------------------------------------------------------------------


def test_knowledge_chunks_cut_at_sentences_overlap_and_stay_bounded() -> None:
    sentences = [f"Sentence number {n} says something short." for n in range(200)]
    text = "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, 200, 5))
    chunks = chunk_text(text, size=300, overlap=80)
    assert all(len(chunk) <= 300 for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)
    for previous, current in itertools.pairwise(chunks):
        first_sentence = current.split(". ")[0] + "."
        assert first_sentence in previous  # the overlap repeats the previous chunk's end
    assert {s for chunk in chunks for s in sentences if s in chunk} == set(sentences)
    assert [len(c) for c in chunk_text("x" * 650, size=300)] == [300, 300, 50]


def test_knowledge_query_quotes_every_word() -> None:
    terms = query_terms('what is "the price AND NEAR(x) col:y* what')
    assert terms == ["what", "is", "the", "price", "and", "near", "x", "col", "y"]
    assert fts_query(terms[:3]) == '"what" OR "is" OR "the"'
    assert query_terms("?? -- **") == []
    assert query_terms("Café café") == ["café"]


@pytest.mark.parametrize(
    ("data", "content_type", "name", "kind"),
    [
        (b"plain", None, "file", "text"),
        (b"plain", "text/plain; charset=utf-8", "notes", "text"),
        (b"# T", "application/octet-stream", "read.md", "markdown"),
        (b"<!DOCTYPE html><p>x</p>", "application/octet-stream", "file", "html"),
        (b"<p>x</p>", "text/html", "file", "html"),
        (b"%PDF-1.7 ...", "application/octet-stream", "file", "pdf"),
    ],
)
def test_knowledge_types_come_from_the_bytes(
    data: bytes, content_type: str | None, name: str, kind: str
) -> None:
    assert detect_type(data, content_type, name) == kind
