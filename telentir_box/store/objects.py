"""Objects: ciphertext + GCM tag under one of the caller's keys, optionally below a
parent. Deleting an object removes its descendants and their publications at once."""

from __future__ import annotations

from dataclasses import dataclass

from telentir_box.config import StoreConfig
from telentir_box.db import keys as keys_repo
from telentir_box.db import objects as objects_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.events import record_event
from telentir_box.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from telentir_box.ids import is_valid_id, new_id
from telentir_box.store.codec import (
    TAG_BYTES,
    decode_cursor,
    decode_field,
    encode_cursor,
    encode_metadata,
    encoding_of_tag,
    object_record,
)
from telentir_box.store.models import ObjectPage, ObjectRecord, ObjectWrite


@dataclass(frozen=True, slots=True)
class _Fields:
    key_id: str | None
    related_object_id: str | None
    content: bytes | None
    auth_tag: bytes | None
    metadata: str | None


def _one_of(name: str, *spellings: str | None) -> str | None:
    given = {value for value in spellings if value is not None}
    if len(given) > 1:
        raise ValidationFailed(f"`{name}` is given twice with different values")
    return given.pop() if given else None


def parse_write(body: ObjectWrite, limits: StoreConfig) -> _Fields:
    """Every spelling to one set of fields; the auth tag decides hex or base64."""
    max_bytes = limits.max_object_bytes
    key_id = _one_of("key_id", body.keyId, body.key_id)
    tag_text = _one_of("auth_tag", body.authTag, body.auth_tag)
    related = _one_of("related_object_id", body.related_object_id, body.relatedObjectId, body.relatedId)
    if (tag_text is None) != (body.content is None):
        raise ValidationFailed("`content` and `auth_tag` go together")
    content = auth_tag = None
    if tag_text is not None and body.content is not None:
        encoding = encoding_of_tag(tag_text)
        # Refuse before decoding: the text alone says how large the content is.
        if len(body.content) // 2 > max_bytes or (
            encoding == "base64" and len(body.content) * 3 // 4 > max_bytes
        ):
            raise PayloadTooLarge(f"`content` is larger than {max_bytes} bytes")
        auth_tag = decode_field("auth_tag", tag_text, encoding, TAG_BYTES)
        content = decode_field("content", body.content, encoding)
        if len(content) > max_bytes:
            raise PayloadTooLarge(f"`content` is larger than {max_bytes} bytes")
    if key_id is not None and not is_valid_id(key_id):
        raise NotFound("no such key")
    if related is not None and not is_valid_id(related):
        raise NotFound("no such related object")
    metadata = encode_metadata(body.metadata, limits.max_metadata_bytes)
    return _Fields(key_id, related, content, auth_tag, metadata)


async def create_object(db: Database, user_id: str, body: ObjectWrite, limits: StoreConfig) -> ObjectRecord:
    fields = parse_write(body, limits)
    if fields.key_id is None or fields.content is None or fields.auth_tag is None:
        raise ValidationFailed("`key_id`, `content` and `auth_tag` are required")
    new = objects_repo.NewObject(
        new_id("obj"), fields.key_id, fields.related_object_id, fields.content, fields.auth_tag,
        fields.metadata or "{}",
    )  # fmt: skip

    async def write(tx: Transaction) -> ObjectRecord:
        row = await objects_repo.insert_object(tx, user_id, new)
        if row is None:
            if not await objects_repo.owns_key(tx.conn, user_id, new.key_id):
                raise NotFound("no such key")
            raise NotFound("no such related object")
        record = object_record(row)
        await record_event(tx, user_id, "object_created", record)
        return record

    return await db.write(write)


async def get_object(db: Database, user_id: str, object_id: str) -> ObjectRecord:
    if not is_valid_id(object_id):
        raise NotFound("no such object")
    async with db.reading() as conn:
        row = await objects_repo.get_object(conn, user_id, object_id)
    if row is None:
        raise NotFound("no such object")
    return object_record(row)


async def patch_object(
    db: Database, user_id: str, object_id: str, body: ObjectWrite, limits: StoreConfig
) -> ObjectRecord:
    """Absent fields are kept."""
    if not is_valid_id(object_id):
        raise NotFound("no such object")
    fields = parse_write(body, limits)

    async def write(tx: Transaction) -> ObjectRecord:
        if not await objects_repo.owns_object(tx.conn, user_id, object_id):
            raise NotFound("no such object")
        if fields.key_id is not None and not await objects_repo.owns_key(tx.conn, user_id, fields.key_id):
            raise NotFound("no such key")
        parent = fields.related_object_id
        if parent is not None:
            if not await objects_repo.owns_object(tx.conn, user_id, parent):
                raise NotFound("no such related object")
            if await objects_repo.is_ancestor_or_self(tx.conn, object_id, parent):
                raise ValidationFailed("an object cannot be related to itself or to its own descendant")
        row = await objects_repo.update_object(
            tx,
            user_id,
            object_id,
            key_id=fields.key_id,
            related_object_id=parent,
            content=fields.content,
            auth_tag=fields.auth_tag,
            metadata=fields.metadata,
        )
        assert row is not None
        payload = {
            "object_id": row.id,
            "key_id": row.key_id,
            "user_id": user_id,
            "updated_at": row.updated_at,
        }
        await record_event(tx, user_id, "object_updated", payload)
        return object_record(row)

    return await db.write(write)


async def delete_object(db: Database, user_id: str, object_id: str) -> None:
    """The object, its descendants and their publications, in one transaction; a store
    object itself cannot be deleted (the root would point at nothing)."""
    if not is_valid_id(object_id):
        raise NotFound("no such object")

    async def write(tx: Transaction) -> bool:
        store = await keys_repo.store_using(tx.conn, user_id, object_id=object_id)
        if store is not None:
            raise Conflict(f"the object is the store '{store}'")
        return bool(await delete_tree(tx, user_id, object_id))

    if not await db.write(write):
        raise NotFound("no such object")


async def delete_tree(tx: Transaction, user_id: str, object_id: str) -> list[str]:
    """Inside a write: delete the object, its descendants and their publications, with
    their unpublish and object_deleted events; the ids deleted (none if there was no
    such object). The caller has ruled out a store object."""
    ids, publications, deleted_at = await objects_repo.delete_subtree(tx, user_id, object_id)
    for publication in publications:
        payload = {"user_id": user_id, "type": publication.type, "related_id": publication.related_id}
        await record_event(tx, user_id, "unpublish", {**payload, "timestamp": deleted_at})
    for deleted in ids:
        payload = {"object_id": deleted, "user_id": user_id, "deleted_at": deleted_at}
        await record_event(tx, user_id, "object_deleted", payload)
    return ids


async def list_related(db: Database, user_id: str, object_id: str) -> list[ObjectRecord]:
    """Direct children, in creation order; the parent must be the caller's."""
    if not is_valid_id(object_id):
        raise NotFound("no such object")
    async with db.reading() as conn:
        if not await objects_repo.owns_object(conn, user_id, object_id):
            raise NotFound("no such object")
        rows = await objects_repo.list_children(conn, user_id, object_id)
    return [object_record(r) for r in rows]


async def list_objects(
    db: Database,
    user_id: str,
    *,
    related_object_id: str | None,
    key_id: str | None,
    cursor: str | None,
    limit: int,
) -> ObjectPage:
    after = decode_cursor(cursor)
    for value in (related_object_id, key_id):
        if value is not None and not is_valid_id(value):
            return ObjectPage(items=[], next_cursor=None)
    async with db.reading() as conn:
        rows = await objects_repo.list_objects(
            conn,
            user_id,
            related_object_id=related_object_id,
            key_id=key_id,
            after_seq=after,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return ObjectPage(
        items=[object_record(r) for r in rows], next_cursor=encode_cursor(rows[-1].seq) if more else None
    )
