"""Text extraction for knowledge-base documents: what a file really is (from its bytes,
checked against the type and name it was sent with) and its plain text.

The extractors are synchronous and CPU-bound; the service runs them in a thread. Each
is bounded: a PDF by its page count (and pypdf's own per-stream decompression limits),
a DOCX by the declared uncompressed size of the parts it reads (zipfile never inflates
a member past its declared size), and every document by the text it yields."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import docx2txt
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser

from telentir_box.errors import AppError, PayloadTooLarge, ValidationFailed

TEXT_KINDS = ("text", "markdown", "html")
BINARY_KINDS = ("pdf", "docx")

_DECLARED = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
# Types that say nothing about the content: the bytes decide.
_UNDECLARED = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
_EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
_DOCX_BODY = "word/document.xml"
_DOCX_XML = re.compile(r"word/[^/]+\.xml")
_HTML_NOISE = "script, style, noscript, template, svg, head, nav, footer"


class UnsupportedFileType(AppError):
    code, status, default_message = "UNSUPPORTED_FILE_TYPE", 415, "Unsupported file type"


class FileTypeMismatch(AppError):
    code, status, default_message = "FILE_TYPE_MISMATCH", 415, "The file is not of the type it claims"


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    max_text_bytes: int
    max_pdf_pages: int


def media_type(content_type: str | None) -> str:
    """`text/html; charset=utf-8` -> `text/html`."""
    return (content_type or "").partition(";")[0].strip().lower()


def detect_type(data: bytes, content_type: str | None, name: str) -> str:
    """The document type (one of TEXT_KINDS or BINARY_KINDS) of `data`, sent as
    `content_type` under the file name `name`. The bytes decide; a declared type or a
    known extension that disagrees with them is a lie (415 FILE_TYPE_MISMATCH), and
    content of any other kind is refused (415 UNSUPPORTED_FILE_TYPE)."""
    declared_type = media_type(content_type)
    if declared_type not in _UNDECLARED and declared_type not in _DECLARED:
        raise UnsupportedFileType(
            f"{name}: {declared_type} is not supported (text, Markdown, HTML, PDF or DOCX)"
        )
    declared = _DECLARED.get(declared_type)
    by_extension = _EXTENSIONS.get(PurePosixPath(name).suffix.lower())
    actual = _binary_kind(data, name)
    if actual is None:
        if not _is_text(data):
            raise UnsupportedFileType(f"{name}: not text, Markdown, HTML, PDF or DOCX")
        actual = declared or by_extension or ("html" if _looks_like_html(data) else "text")
        if actual in BINARY_KINDS:
            raise FileTypeMismatch(f"{name}: declared as {actual.upper()} but the content is text")
        return actual
    for claim in (declared, by_extension):
        if claim is not None and claim != actual:
            raise FileTypeMismatch(f"{name}: declared as {claim} but the content is {actual.upper()}")
    return actual


def _binary_kind(data: bytes, name: str) -> str | None:
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if _DOCX_BODY in archive.namelist():
                    return "docx"
        except (zipfile.BadZipFile, ValueError):
            pass
        raise UnsupportedFileType(f"{name}: a ZIP archive that is not a DOCX document")
    return None


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def extract_text(data: bytes, kind: str, limits: ExtractLimits) -> str:
    """The plain text of a document already typed by detect_type."""
    if kind == "pdf":
        text = _pdf_text(data, limits)
    elif kind == "docx":
        text = _docx_text(data, limits)
    elif kind == "html":
        text = _html_text(data.decode("utf-8-sig"))
    else:
        text = data.decode("utf-8-sig")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    _check_text_size(len(text.encode()), limits)
    if not text:
        raise ValidationFailed("the document has no text to index (a scanned PDF needs OCR first)")
    return text


def _check_text_size(size: int, limits: ExtractLimits) -> None:
    if size > limits.max_text_bytes:
        raise PayloadTooLarge(f"the document holds more than {limits.max_text_bytes} bytes of text")


def _pdf_text(data: bytes, limits: ExtractLimits) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValidationFailed("the PDF is encrypted")
        pages = reader.pages
        if len(pages) > limits.max_pdf_pages:
            raise PayloadTooLarge(f"the PDF has more than {limits.max_pdf_pages} pages")
        texts: list[str] = []
        size = 0
        for page in pages:
            texts.append(page.extract_text() or "")
            size += len(texts[-1])
            _check_text_size(size, limits)
    except AppError:
        raise
    except Exception as exc:  # pypdf raises many types on a malformed file
        raise ValidationFailed("the PDF could not be read") from exc
    return "\n\n".join(texts)


def _docx_text(data: bytes, limits: ExtractLimits) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # The parts docx2txt reads: the body, headers and footers.
            parts = [info for info in archive.infolist() if info.filename.startswith("word/")]
            if (
                sum(info.file_size for info in parts if info.filename.endswith(".xml"))
                > limits.max_text_bytes
            ):
                raise PayloadTooLarge(f"the DOCX unpacks to more than {limits.max_text_bytes} bytes")
            if b"<!DOCTYPE" in archive.read(_DOCX_BODY):
                # Word never writes a DTD; one here can only be an entity-expansion trick.
                raise ValidationFailed("the DOCX could not be read")
        return docx2txt.process(io.BytesIO(data))
    except AppError:
        raise
    except Exception as exc:
        raise ValidationFailed("the DOCX could not be read") from exc


def _html_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    for node in tree.css(_HTML_NOISE):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ""
    lines = (line.strip() for line in root.text(separator="\n").splitlines())
    return "\n".join(line for line in lines if line)
