"""Opaque random ids with a type prefix (usr_, key_, obj_, srv_, ak_, ...)."""

from __future__ import annotations

import re
import secrets

_ID = re.compile(r"^[a-z]{2,5}_[A-Za-z0-9_-]{16,64}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """Shape check before any lookup, so junk never reaches the database."""
    if not _ID.fullmatch(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
