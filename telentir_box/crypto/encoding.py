"""Strict decoders for the encodings on the wire: hex, base64 and base64url.
Each raises ValueError for anything that is not exactly that encoding."""

from __future__ import annotations

import base64
import binascii
import re

_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def decode_hex(text: str) -> bytes:
    # unhexlify, unlike bytes.fromhex, accepts no whitespace; both errors are ValueErrors.
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise ValueError("not even-length hexadecimal") from None


def decode_base64(text: str) -> bytes:
    if len(text) % 4 or not _B64.fullmatch(text):
        raise ValueError("not standard padded base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not standard padded base64") from exc


def decode_base64url(text: str) -> bytes:
    """Base64url with or without padding; standard base64 too, as the client's parser allows."""
    text = text.strip().replace("+", "-").replace("/", "_")
    if not _B64URL.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        raise ValueError("not base64url")
    unpadded = text.rstrip("=")
    return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))


def encode_base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
