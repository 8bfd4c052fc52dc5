"""HTTP routes of /api/knowledge-bases, thin adapters over telephony/knowledge.py.

The routes are built from the [knowledge] settings, because the multipart upload's
body and part limits come from them. Route order: POST /{id}/links and /{id}/search
are static segments and win over the document route, which only takes DELETE."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.config import KnowledgeConfig
from telentir_box.errors import UnsupportedMediaType
from telentir_box.telephony.knowledge import Upload
from telentir_box.telephony.knowledge_models import (
    DocumentRef,
    KnowledgeBase,
    KnowledgeBaseCreate,
    KnowledgeBaseDetail,
    KnowledgeBasePatch,
    LinksBody,
    SearchBody,
    SearchHit,
)

# Room for the multipart framing (boundaries and part headers) around the files.
MULTIPART_OVERHEAD = 64 * 1024


class UploadForm(msgspec.Struct, forbid_unknown_fields=True):
    """multipart/form-data: one `files` part per file, each with its filename and
    content type (application/octet-stream lets the box tell the type from the bytes)."""

    files: list[UploadFile]


class KnowledgeBaseController(Controller):
    path = "/knowledge-bases"
    guards = [requires_object_auth]
    tags = ["knowledge bases"]

    @put("", status_code=201, summary="Create a knowledge base")
    async def create_base(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[KnowledgeBaseCreate],
    ) -> KnowledgeBase:
        return await box.knowledge.create_base(principal.user_id, data)

    @get("", summary="The caller's knowledge bases, oldest first")
    async def list_bases(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[KnowledgeBase]:
        return await box.knowledge.list_bases(principal.user_id)

    @get("/{base_id:str}", summary="A knowledge base with its documents")
    async def get_base(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], base_id: FromPath[str]
    ) -> KnowledgeBaseDetail:
        return await box.knowledge.get_base(principal.user_id, base_id)

    @patch("/{base_id:str}", summary="Change a knowledge base's name and/or description (null clears it)")
    async def update_base(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        base_id: FromPath[str],
        data: JSONBody[KnowledgeBasePatch],
    ) -> KnowledgeBase:
        return await box.knowledge.update_base(principal.user_id, base_id, data)

    @delete("/{base_id:str}", summary="Delete a knowledge base with its documents")
    async def delete_base(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], base_id: FromPath[str]
    ) -> None:
        await box.knowledge.delete_base(principal.user_id, base_id)

    @post("/{base_id:str}/links", status_code=201, summary="Fetch web pages into a knowledge base")
    async def add_links(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        base_id: FromPath[str],
        data: JSONBody[LinksBody],
    ) -> list[DocumentRef]:
        return await box.knowledge.add_links(principal.user_id, base_id, data)

    @post("/{base_id:str}/search", status_code=200, summary="Search a knowledge base's text, best first")
    async def search(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        base_id: FromPath[str],
        data: JSONBody[SearchBody],
    ) -> list[SearchHit]:
        return await box.knowledge.search(principal.user_id, base_id, data)

    @delete("/{base_id:str}/{document_id:str}", summary="Delete one document (numeric id)")
    async def delete_document(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        base_id: FromPath[str],
        document_id: FromPath[str],
    ) -> None:
        await box.knowledge.delete_document(principal.user_id, base_id, document_id)


def upload_route(config: KnowledgeConfig) -> HTTPRouteHandler:
    """POST /knowledge-bases/{id}: its body may be max_files_per_request files of
    max_file_bytes each, beyond the app's JSON body limit; its parts are capped so a
    body of a million tiny parts stops early."""

    # Annotations are strings here (PEP 563), so the body type built from the settings
    # reaches Litestar through the signature namespace.
    upload_body = Annotated[
        UploadForm,
        Body(
            media_type=RequestEncodingType.MULTI_PART,
            # Room past the file count so the service names the limit; a flood of
            # parts still stops early.
            multipart_form_part_limit=2 * config.max_files_per_request + 8,
        ),
    ]

    @post(
        "/knowledge-bases/{base_id:str}",
        guards=[requires_object_auth, requires_multipart],
        tags=["knowledge bases"],
        status_code=201,
        summary="Upload documents (text, Markdown, HTML, PDF, DOCX) into a knowledge base",
        request_max_body_size=config.max_file_bytes * config.max_files_per_request + MULTIPART_OVERHEAD,
        # Marker for the app-wide body-type guard: this route reads multipart, not JSON.
        opt={"body": "multipart"},
        signature_namespace={"UploadBody": upload_body},
    )
    async def upload_documents(
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        base_id: FromPath[str],
        data: UploadBody,  # noqa: F821 (Litestar resolves it from signature_namespace)
    ) -> list[DocumentRef]:
        uploads = [await _read_upload(file, config.max_file_bytes) for file in data.files]
        return await box.knowledge.add_files(principal.user_id, base_id, uploads)

    return upload_documents


async def requires_multipart(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The upload reads only multipart/form-data; anything else is a 415, not a parse error."""
    del handler
    if connection.content_type[0] != RequestEncodingType.MULTI_PART:
        raise UnsupportedMediaType("documents are uploaded as multipart/form-data, one `files` part per file")


async def _read_upload(file: UploadFile, limit: int) -> Upload:
    # One byte past the limit is enough for the service to refuse the file as too large.
    data = await file.read(limit + 1)
    await file.close()
    return Upload(file.filename, _part_content_type(file), data)


def _part_content_type(file: UploadFile) -> str | None:
    # UploadFile.content_type says text/plain when the part named no type; the part's
    # own headers tell an absent type from a declared one.
    for name, value in file.headers.items():
        if name.lower() == "content-type":
            return value
    return None


def knowledge_routes(config: KnowledgeConfig) -> list[ControllerRouterHandler]:
    return [KnowledgeBaseController, upload_route(config)]
