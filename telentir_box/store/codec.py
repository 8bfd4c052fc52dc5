"""Bytes on the store's wire: strict hex or base64 decoding of request fields (the
auth tag tells which one a body uses), and rows turned into hex records."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from telentir_box.crypto.encoding import decode_base64, decode_hex
from telentir_box.db.keys import KeyRow
from telentir_box.db.objects import ObjectRow
from telentir_box.digits import parse_digits
from telentir_box.errors import PayloadTooLarge, ValidationFailed
from telentir_box.store.models import KeyRecord, ObjectRecord

Encoding = Literal["hex", "base64"]
IV_BYTES = 12
TAG_BYTES = 16
_METADATA = msgspec.json.Decoder(dict[str, Any])


def encoding_of_tag(auth_tag: str) -> Encoding:
    """32 hex digits (the client) or 24 base64 characters (the docs); anything else is
    not a 16-byte tag in either encoding."""
    if len(auth_tag) == 2 * TAG_BYTES:
        return "hex"
    if len(auth_tag) == 24:
        return "base64"
    raise ValidationFailed("`auth_tag` must be 16 bytes: 32 hex digits or 24 base64 characters")


def decode_field(name: str, text: str, encoding: Encoding, size: int | None = None) -> bytes:
    try:
        data = decode_hex(text) if encoding == "hex" else decode_base64(text)
    except ValueError:
        raise ValidationFailed(f"`{name}` is not valid {encoding}") from None
    if size is not None and len(data) != size:
        raise ValidationFailed(f"`{name}` must be {size} bytes, not {len(data)}")
    return data


def encode_metadata(metadata: dict[str, Any] | None, max_bytes: int) -> str | None:
    """Every key and object write encodes its metadata here. It is kept in clear and
    sent back with every record, so only the body cap would bound it otherwise."""
    if metadata is None:
        return None
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > max_bytes:
        raise PayloadTooLarge(f"`metadata` is larger than {max_bytes} bytes of JSON")
    return encoded.decode()


def key_record(row: KeyRow) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        metadata=_METADATA.decode(row.metadata),
        created_at=row.created_at,
        updated_at=row.updated_at,
        user_id=row.user_id,
        server=row.server,
        key=row.key.hex(),
        iv=row.iv.hex(),
        deprecated=row.deprecated,
    )


def object_record(row: ObjectRow) -> ObjectRecord:
    return ObjectRecord(
        id=row.id,
        metadata=_METADATA.decode(row.metadata),
        created_at=row.created_at,
        updated_at=row.updated_at,
        user_id=row.user_id,
        key_id=row.key_id,
        auth_tag=row.auth_tag.hex(),
        content=row.content.hex(),
        related_object_id=row.related_object_id,
    )


def encode_cursor(seq: int) -> str:
    return str(seq)


def decode_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    position = parse_digits(cursor, 18)
    if position is None:
        raise ValidationFailed("`cursor` is not a cursor this listing returned")
    return position
