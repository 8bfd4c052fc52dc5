"""server-crypto's stream-chunk shape (telentir-wire.md 2.2, 8.3): bytes encrypted
under a fresh AES-256-GCM key and IV, the key wrapped with RSA-OAEP-SHA256 for one
public key; every part standard base64, the tag carried apart from the ciphertext."""

from __future__ import annotations

import base64
import secrets

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telentir_box.crypto import rsa as rsa_keys

IV_BYTES = 12
TAG_BYTES = 16


class ChunkHeader(msgspec.Struct):
    key: str
    iv: str


class ChunkContent(msgspec.Struct):
    authTag: str
    content: str


class EncryptedChunk(msgspec.Struct):
    header: ChunkHeader
    content: ChunkContent


def encrypt_chunk(public_key: rsa.RSAPublicKey, data: bytes) -> EncryptedChunk:
    """`data` readable only by the holder of `public_key`'s private key. The key and IV
    are fresh for every chunk, so no GCM nonce is ever reused."""
    aes, iv = AESGCM.generate_key(256), secrets.token_bytes(IV_BYTES)
    out = AESGCM(aes).encrypt(iv, data, None)
    return EncryptedChunk(
        header=ChunkHeader(key=_b64(rsa_keys.wrap(public_key, aes)), iv=_b64(iv)),
        content=ChunkContent(authTag=_b64(out[-TAG_BYTES:]), content=_b64(out[:-TAG_BYTES])),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
