"""Knowledge bases: a user's named sets of documents (uploaded files and fetched
links) whose text is extracted, cut into overlapping chunks and searched with SQLite's
full-text index (bm25 ranking). Uploads are all or nothing: every file of a request is
typed and extracted before one transaction stores them, limits checked inside it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import msgspec

from telentir_box.config import KnowledgeConfig
from telentir_box.db import knowledge as repo
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import AppError, NotFound, PayloadTooLarge, ValidationFailed
from telentir_box.ids import is_valid_id, new_id
from telentir_box.telephony.extract import ExtractLimits, detect_type, extract_text
from telentir_box.telephony.knowledge_models import (
    DocumentRef,
    KnowledgeBase,
    KnowledgeBaseCreate,
    KnowledgeBaseDetail,
    KnowledgeBasePatch,
    KnowledgeDocument,
    LinksBody,
    SearchBody,
    SearchHit,
)
from telentir_box.telephony.link_fetch import LinkFetcher

CHUNK_CHARS = 1000
CHUNK_OVERLAP = 150
MAX_QUERY_TERMS = 32
COMMON_QUERY_CANDIDATES = 1000
# Extractions are CPU-bound threads; two at a time leave the event loop its core.
EXTRACTION_THREADS = 2
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Upload:
    """One file of a multipart upload, as received."""

    name: str
    content_type: str | None
    data: bytes


class TooManyDocuments(AppError):
    code, status, default_message = "TOO_MANY_DOCUMENTS", 400, "The knowledge base is full"


class QuotaExceeded(AppError):
    code, status, default_message = "KNOWLEDGE_QUOTA_EXCEEDED", 413, "Knowledge-base storage is full"


class Knowledge:
    def __init__(self, db: Database, fetcher: LinkFetcher, config: KnowledgeConfig) -> None:
        self.db = db
        self.fetcher = fetcher
        self.config = config
        self.limits = ExtractLimits(config.max_text_bytes, config.max_pdf_pages)
        self._extracting = asyncio.Semaphore(EXTRACTION_THREADS)

    async def create_base(self, user_id: str, body: KnowledgeBaseCreate) -> KnowledgeBase:
        name = _clean_name(body.name)
        base_id = new_id("kb")

        async def write(tx: Transaction) -> repo.BaseRow:
            return await repo.insert_base(
                tx, base_id=base_id, user_id=user_id, name=name, description=body.description
            )

        return _base_view(await self.db.write(write))

    async def list_bases(self, user_id: str) -> list[KnowledgeBase]:
        async with self.db.reading() as conn:
            return [_base_view(row) for row in await repo.list_bases(conn, user_id)]

    async def get_base(self, user_id: str, base_id: str) -> KnowledgeBaseDetail:
        async with self.db.reading() as conn:
            row = await _owned_base(conn, user_id, base_id)
            documents = await repo.list_documents(conn, base_id)
        return KnowledgeBaseDetail(
            **msgspec.structs.asdict(_base_view(row)),
            documents=[_document_view(document) for document in documents],
        )

    async def update_base(self, user_id: str, base_id: str, body: KnowledgeBasePatch) -> KnowledgeBase:
        changes: dict[str, str | None] = {}
        if body.name is not msgspec.UNSET:
            changes["name"] = _clean_name(body.name)
        if body.description is not msgspec.UNSET:
            changes["description"] = body.description
        if not changes:
            raise ValidationFailed("nothing to change: give `name` and/or `description`")
        if not is_valid_id(base_id, "kb"):
            raise NotFound("no such knowledge base")

        async def write(tx: Transaction) -> repo.BaseRow | None:
            return await repo.update_base(tx, user_id, base_id, changes)

        row = await self.db.write(write)
        if row is None:
            raise NotFound("no such knowledge base")
        return _base_view(row)

    async def delete_base(self, user_id: str, base_id: str) -> None:
        if not is_valid_id(base_id, "kb"):
            raise NotFound("no such knowledge base")

        async def write(tx: Transaction) -> bool:
            return await repo.delete_base(tx, user_id, base_id)

        if not await self.db.write(write):
            raise NotFound("no such knowledge base")

    async def add_files(self, user_id: str, base_id: str, uploads: list[Upload]) -> list[DocumentRef]:
        """POST /knowledge-bases/{id} (multipart): every file typed from its bytes,
        extracted and stored, or none."""
        await self._check_base(user_id, base_id)
        self._check_count(len(uploads), "files")
        documents = []
        for upload in uploads:
            name = _file_name(upload.name)
            if len(upload.data) > self.config.max_file_bytes:
                raise PayloadTooLarge(f"{name} is larger than {self.config.max_file_bytes} bytes")
            kind, text, chunks = await self._extract(upload.data, upload.content_type, name)
            documents.append(_new_document(name, kind, "file", None, len(upload.data), text, chunks))
        return await self._store(user_id, base_id, documents)

    async def add_links(self, user_id: str, base_id: str, body: LinksBody) -> list[DocumentRef]:
        """POST /knowledge-bases/{id}/links: each page fetched by the box (link_fetch's
        rules), typed and extracted like a file; all stored or none."""
        await self._check_base(user_id, base_id)
        self._check_count(len(body.urls), "links")
        documents = []
        for url in body.urls:
            fetched = await self.fetcher.fetch(url)
            kind, text, chunks = await self._extract(fetched.body, fetched.content_type, fetched.name)
            documents.append(_new_document(url, kind, "link", url, len(fetched.body), text, chunks))
        return await self._store(user_id, base_id, documents)

    async def delete_document(self, user_id: str, base_id: str, document_id: str) -> None:
        number = _document_number(document_id)
        if not is_valid_id(base_id, "kb"):
            raise NotFound("no such knowledge base")

        async def write(tx: Transaction) -> bool:
            return await repo.delete_document(tx, user_id, base_id, number)

        if not await self.db.write(write):
            raise NotFound("no such document")

    async def search(self, user_id: str, base_id: str, body: SearchBody) -> list[SearchHit]:
        """The base's best chunks for `text`, best first. `distance` is 1 / (1 + r)
        where r = -bm25 >= 0 is FTS5's relevance: in (0, 1], lower is closer."""
        terms = query_terms(body.text)
        async with self.db.reading() as conn:
            base = await _owned_base(conn, user_id, base_id)
            if not terms:
                return []
            rare = await _rare_terms(conn, terms)
            hits = await repo.search_chunks(
                conn,
                base.number,
                fts_query(rare or terms),
                self.config.search_results,
                candidates=None if rare else COMMON_QUERY_CANDIDATES,
            )
        return [SearchHit(hit.document_id, 1.0 / (1.0 + max(0.0, -hit.score)), hit.body) for hit in hits]

    async def _check_base(self, user_id: str, base_id: str) -> None:
        async with self.db.reading() as conn:
            await _owned_base(conn, user_id, base_id)

    def _check_count(self, count: int, what: str) -> None:
        if count == 0:
            raise ValidationFailed(f"no {what} given")
        if count > self.config.max_files_per_request:
            raise ValidationFailed(f"at most {self.config.max_files_per_request} {what} per request")

    async def _extract(self, data: bytes, content_type: str | None, name: str) -> tuple[str, str, list[str]]:
        """The document's type, text and chunks, worked out in a thread."""
        async with self._extracting:
            return await asyncio.to_thread(_read_document, data, content_type, name, self.limits)

    async def _store(
        self, user_id: str, base_id: str, documents: list[repo.NewDocument]
    ) -> list[DocumentRef]:
        config = self.config

        async def write(tx: Transaction) -> list[DocumentRef]:
            base = await _owned_base(tx.conn, user_id, base_id)
            held = await repo.count_documents(tx.conn, base_id)
            if held + len(documents) > config.max_documents_per_base:
                raise TooManyDocuments(
                    f"a knowledge base holds at most {config.max_documents_per_base} documents ({held} now)"
                )
            used = await repo.text_bytes_of_user(tx.conn, user_id)
            if used + sum(d.text_bytes for d in documents) > config.max_bytes_per_user:
                raise QuotaExceeded(
                    f"knowledge bases hold at most {config.max_bytes_per_user} bytes of text per user"
                    f" ({used} used)"
                )
            refs = []
            for document in documents:
                document_id = await repo.insert_document(tx, user_id, base, document)
                refs.append(DocumentRef(document_id, document.name))
            return refs

        return await self.db.write(write)


def query_terms(text: str) -> list[str]:
    """The distinct words of the user's text, lower-cased, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))[:MAX_QUERY_TERMS]


def fts_query(terms: list[str]) -> str:
    """Words as an FTS5 expression: each double-quoted (a string, so no FTS syntax in
    the input has any meaning; \\w+ words hold no quote), any of them matching."""
    return " OR ".join(f'"{term}"' for term in terms)


async def _rare_terms(conn: Connection, terms: list[str]) -> list[str]:
    """`terms` without those held by more than half of all chunks. bm25 gives such a
    word next to no weight (FTS5 floors its IDF), yet matching it would score nearly
    every chunk: leaving it out keeps the ranking and saves the time. A query of only
    such words ranks the first COMMON_QUERY_CANDIDATES chunks holding them."""
    total = await repo.indexed_chunk_count(conn)
    holding = await repo.chunks_holding(conn, terms)
    return [term for term in terms if holding.get(term, 0) * 2 <= total]


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Chunks of at most `size` characters cut at paragraph or sentence ends (inside
    an over-long sentence, at spaces), each starting with up to `overlap` characters
    of whole sentences from the end of the previous one, so a passage cut in two is
    still found whole in one of them."""
    units = [unit for paragraph in _PARAGRAPH.split(text) for unit in _units(paragraph, size)]
    chunks: list[str] = []
    current: list[str] = []
    length = -1  # of " ".join(current)
    for unit in units:
        if current and length + 1 + len(unit) > size:
            chunks.append(" ".join(current))
            current = _tail(current, min(overlap, size - len(unit) - 1))
            length = _joined_length(current)
        current.append(unit)
        length += 1 + len(unit)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _joined_length(units: list[str]) -> int:
    return sum(len(unit) for unit in units) + len(units) - 1


def _units(paragraph: str, size: int) -> list[str]:
    units = []
    for sentence in _SENTENCE_END.split(paragraph):
        sentence = " ".join(sentence.split())
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size + 1)
            cut = cut if cut > 0 else size
            units.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if sentence:
            units.append(sentence)
    return units


def _tail(units: list[str], budget: int) -> list[str]:
    """The last whole units of `units` that fit in `budget` characters joined."""
    tail: list[str] = []
    for unit in reversed(units):
        if _joined_length([unit, *tail]) > budget:
            break
        tail.insert(0, unit)
    return tail


def _read_document(
    data: bytes, content_type: str | None, name: str, limits: ExtractLimits
) -> tuple[str, str, list[str]]:
    kind = detect_type(data, content_type, name)
    text = extract_text(data, kind, limits)
    return kind, text, chunk_text(text)


def _new_document(
    name: str, kind: str, source: str, url: str | None, size: int, text: str, chunks: list[str]
) -> repo.NewDocument:
    return repo.NewDocument(
        name=name,
        type=kind,
        source=source,
        url=url,
        size=size,
        text_bytes=len(text.encode()),
        chunks=chunks,
    )


async def _owned_base(conn: Connection, user_id: str, base_id: str) -> repo.BaseRow:
    row = await repo.get_base(conn, user_id, base_id) if is_valid_id(base_id, "kb") else None
    if row is None:
        raise NotFound("no such knowledge base")
    return row


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed("`name` must not be blank")
    return name


def _file_name(name: str) -> str:
    """The file's own name, without any directory a client put in front of it."""
    name = PureWindowsPath(PurePosixPath(name).name).name.strip()[:255]
    return name or "file"


def _document_number(document_id: str) -> int:
    if not (document_id.isascii() and document_id.isdigit()) or len(document_id) > 18:
        raise NotFound("no such document")
    return int(document_id)


def _base_view(row: repo.BaseRow) -> KnowledgeBase:
    return KnowledgeBase(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _document_view(row: repo.DocumentRow) -> KnowledgeDocument:
    return KnowledgeDocument(
        id=row.id,
        name=row.name,
        type=row.type,
        source=row.source,
        url=row.url,
        size=row.size,
        chunks=row.chunks,
        created_at=row.created_at,
    )
