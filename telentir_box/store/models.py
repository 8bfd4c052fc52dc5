"""The store's wire shapes: request bodies (every spelling the real client and the
docs use) and the records every response carries, snake_case with hex bytes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec

from telentir_box.web.openapi import documented

DEFAULT_SERVER = "default"
StoreType = Literal[
    "contacts",
    "calls",
    "agents",
    "tasks",
    "conversational-pathways",
    "campaigns",
    "sms-messages",
    "performance-metrics",
]
STORES: tuple[str, ...] = get_args(StoreType)


# The encodings of bytes on the wire, for the schema (store/codec.py decodes them).
HEX = r"^([0-9a-fA-F]{2})*$"
BASE64 = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
Hex = Annotated[str, documented(pattern=HEX, description="hex")]
HexIv = Annotated[str, documented(pattern=r"^[0-9a-fA-F]{24}$", description="the 12-byte IV, hex")]
Base64 = Annotated[str, documented(pattern=BASE64, description="standard base64")]
Base64Iv = Annotated[str, documented(pattern=r"^[A-Za-z0-9+/]{16}$", description="the 12-byte IV, base64")]
# The tag's length tells the encoding of the object's bytes: 32 hex digits or 24 base64.
Tag = Annotated[
    str, documented(pattern=r"^([0-9a-fA-F]{32}|[A-Za-z0-9+/]{22}==)$", description="16-byte GCM tag")
]
Content = Annotated[
    str,
    documented(
        pattern=r"^(([0-9a-fA-F]{2})*|([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$",
        description="AES-GCM ciphertext without the tag, in the tag's encoding",
    ),
]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class KeyRecord(msgspec.Struct, kw_only=True):
    id: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    user_id: str
    server: str
    key: str
    iv: str
    deprecated: bool


class ObjectRecord(msgspec.Struct, kw_only=True):
    id: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    user_id: str
    key_id: str
    auth_tag: str
    content: str
    related_object_id: str | None


class PlatformKeyView(msgspec.Struct):
    spki: str = msgspec.field(name="application/pkix-spki")
    jwk: dict[str, Any] = msgspec.field(name="application/jwk+json")


class ServerInfo(msgspec.Struct):
    current: str
    keys: dict[str, PlatformKeyView]


class StoreEntry(msgspec.Struct):
    id: str
    defaultKey: str  # the wire spells these camelCase


class RootServer(msgspec.Struct, omit_defaults=True):
    publicKey: str
    deprecated: bool
    privateKey: str | None = None


class Root(msgspec.Struct):
    stores: dict[str, StoreEntry]
    servers: dict[str, RootServer]


class UserServer(msgspec.Struct):
    name: str
    publicKey: str
    deprecated: bool
    created_at: str


class CreatedServer(msgspec.Struct):
    name: str
    publicKey: str
    privateKey: str | None


class ServerCreate(_Body):
    # Lower-cased after trimming; not the name of one of the box's own keys.
    name: Annotated[str, documented(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    mode: Literal["generate", "upload_public"]
    publicKey: str | None = None


class ServerPatch(_Body):
    deprecated: bool


class KeyCreate(_Body):
    """POST /api/keys: a key the client wrapped itself; hex."""

    server: str
    key: Hex  # the RSA-OAEP wrap of the 32-byte AES key, the server key's size
    iv: HexIv
    metadata: dict[str, Any] | None = None


class KeyMint(_Body):
    """PUT /api/keys, the documented form: base64 key/iv, or none and the box mints one."""

    server: str
    key: Base64 | None = None
    iv: Base64Iv | None = None
    metadata: dict[str, Any] | None = None


class KeyPatch(_Body):
    metadata: dict[str, Any] | None = None
    key: Hex | None = None
    iv: HexIv | None = None
    server: str | None = None
    deprecated: bool | None = None


class ObjectWrite(_Body):
    """PUT/POST /api/objects and PATCH /api/objects/{id}: the client's mixed
    camelCase/snake_case form, the all-snake form and the documented base64 form."""

    keyId: str | None = None
    key_id: str | None = None
    content: Content | None = None
    authTag: Tag | None = None
    auth_tag: Tag | None = None
    related_object_id: str | None = None
    relatedObjectId: str | None = None
    relatedId: str | None = None
    metadata: dict[str, Any] | None = None


class PublicationBody(_Body):
    objectId: str


class Publication(msgspec.Struct):
    type: str
    related_id: str
    object_id: str
    created_at: str
    updated_at: str


class ObjectPage(msgspec.Struct):
    items: list[ObjectRecord]
    next_cursor: str | None


class PublicationPage(msgspec.Struct):
    items: list[Publication]
    next_cursor: str | None
