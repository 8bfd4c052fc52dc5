"""Decimal digits in text from outside (codes, cursors, ids in headers): ASCII 0-9 only.
str.isdigit and int() also take other scripts' digits ('١٢٣', '²'), which then fail
further on (hmac.compare_digest raises on non-ASCII text) or mean something else."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def is_digits(text: str, max_length: int) -> bool:
    """`text` is 1 to `max_length` ASCII digits, nothing else (no sign, no spaces)."""
    return len(text) <= max_length and _DIGITS.fullmatch(text) is not None


def parse_digits(text: str, max_length: int) -> int | None:
    """The number `text` writes in 1 to `max_length` ASCII digits, else None."""
    return int(text) if is_digits(text, max_length) else None
