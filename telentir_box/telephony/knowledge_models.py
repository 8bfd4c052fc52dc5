"""The wire shapes of /api/knowledge-bases: request bodies (unknown fields refused)
and the records the real client reads (telentir-wire.md section 6)."""

from __future__ import annotations

from typing import Annotated

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Link = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class KnowledgeBaseCreate(_Body):
    name: Name
    description: Description | None = None


class KnowledgeBasePatch(_Body):
    """Only the fields present change; `description: null` clears it."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class LinksBody(_Body):
    urls: Annotated[list[Link], msgspec.Meta(min_length=1, max_length=100)]


class SearchBody(_Body):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class KnowledgeBase(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    name: str
    description: str | None
    created_at: str
    updated_at: str


class KnowledgeDocument(msgspec.Struct, kw_only=True):
    id: int
    name: str
    type: str
    source: str
    url: str | None
    size: int
    chunks: int
    created_at: str


class KnowledgeBaseDetail(KnowledgeBase, kw_only=True):
    documents: list[KnowledgeDocument]


class DocumentRef(msgspec.Struct):
    id: int
    name: str


class SearchHit(msgspec.Struct):
    document: int
    distance: float
    text: str
