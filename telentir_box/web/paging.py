"""The `limit` query parameter every cursor-paginated listing takes, and its rule."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from telentir_box.errors import ValidationFailed

MAX_PAGE = 1000
# A listing's `next_cursor`, passed back as it came (an empty one starts from the top).
Cursor = Annotated[
    str | None,
    QueryParameter(
        required=False, pattern=r"^[0-9]{0,18}$", description="a `next_cursor` this listing returned"
    ),
]
Limit = Annotated[
    int | None, QueryParameter(required=False, ge=1, le=MAX_PAGE, description=f"page size (1-{MAX_PAGE})")
]


def page_size(limit: int | None, default: int) -> int:
    """The page size a listing asked for, or `default`; out of range is a 400."""
    if limit is None:
        return default
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"`limit` must be between 1 and {MAX_PAGE}")
    return limit
