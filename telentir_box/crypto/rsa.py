"""RSA server keypairs as the Telentir wire carries them: RSA-OAEP (SHA-256, MGF1-SHA-256,
no label) for wrapping AES keys; DER SPKI / PKCS#8 in unpadded base64url; a JWK view."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from telentir_box.crypto.encoding import decode_base64url, encode_base64url

MIN_BITS = 2048
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def generate_private_key(bits: int = MIN_BITS) -> rsa.RSAPrivateKey:
    """CPU-heavy (tens to hundreds of ms): call it from a worker thread."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(der: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(der: bytes) -> rsa.RSAPublicKey:
    """Parse a DER SPKI and insist on a usable RSA key of at least MIN_BITS."""
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise ValueError("not a DER SubjectPublicKeyInfo") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < MIN_BITS:
        raise ValueError(f"RSA key is {key.key_size} bits; at least {MIN_BITS} are required")
    return key


def parse_spki(text: str) -> rsa.RSAPublicKey:
    return load_public_key(decode_base64url(text))


def spki_text(key: rsa.RSAPublicKey) -> str:
    return encode_base64url(public_key_der(key))


def jwk(key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The JWK that the browser client produces for the same key (RS256 verify key)."""
    numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "n": encode_base64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": encode_base64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        "alg": "RS256",
        "ext": True,
        "key_ops": ["verify"],
    }


def wrap(key: rsa.RSAPublicKey, secret: bytes) -> bytes:
    return key.encrypt(secret, OAEP)


def unwrap(key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    return key.decrypt(wrapped, OAEP)
