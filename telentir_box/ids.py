"""Opaque ids with a type prefix (usr_, key_, obj_, srv_, ak_, ...).

An id is the creation time in milliseconds (11 hex digits) followed by 96 random bits.
Ids are never secrets and grant nothing (every lookup also checks the owner); the time
prefix is there for SQLite: new ids sort after older ones, so inserting one touches
the last page of each index on an id instead of a random page, and a group commit
writes a few index pages rather than one per row."""

from __future__ import annotations

import re
import secrets
import time

_ID = re.compile(r"^[a-z]{2,5}_[A-Za-z0-9_-]{16,64}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:011x}{secrets.token_urlsafe(12)}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """Shape check before any lookup, so junk never reaches the database."""
    if not _ID.fullmatch(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
