"""One-time secrets handed to people (phone codes, recovery codes, reset and invite
tokens): how they are generated, and the keyed hash that is all the database keeps."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class CodeHasher:
    """HMAC-SHA256 under a master-key-derived pepper: a stolen database alone does not
    let anyone test guesses of six-digit codes offline."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def hash(self, code: str) -> bytes:
        return hmac.new(self._pepper, code.strip().encode(), hashlib.sha256).digest()


def generate_digits(count: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def generate_recovery_code() -> str:
    raw = secrets.token_hex(5)  # 40 bits, one use, and only after the password
    return f"{raw[:5]}-{raw[5:]}"


def generate_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"
