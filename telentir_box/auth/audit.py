"""The auth audit trail: one row per authentication event. Inside a write, call
db.identity.insert_audit with the change; on its own (a failed login) use record_audit.
Reading it back (list_audit) shows only the detail fields known to hold no secret."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from telentir_box.db import identity as identity_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.identity import AuditRow
from telentir_box.digits import parse_digits
from telentir_box.errors import ValidationFailed
from telentir_box.ids import is_valid_id

DEFAULT_PAGE = 100
_EVENT = re.compile(r"^[a-z0-9_]{1,64}$")
# Detail fields shown to readers of the trail. An allow-list, so a field added to some
# future event stays hidden until someone has checked it carries no token or code.
_SHOWN = frozenset(
    {
        "api_keys_revoked",
        "by",
        "count",
        "email",
        "from",
        "key_id",
        "role",
        "scope",
        "sessions_revoked",
        "to",
        "2fa",
    }
)


class AuditPage(msgspec.Struct):
    items: list[AuditRow]
    next_cursor: str | None


async def record_audit(
    db: Database,
    event: str,
    *,
    user_id: str | None = None,
    actor_id: str | None = None,
    ip: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    async def write(tx: Transaction) -> None:
        await identity_repo.insert_audit(tx, event, user_id=user_id, actor_id=actor_id, ip=ip, detail=detail)

    await db.write(write)


async def list_audit(
    db: Database, *, user_id: str | None, event: str | None, cursor: str | None, size: int
) -> AuditPage:
    """One page of `size` rows of the trail, newest first; `cursor` is a page's next_cursor."""
    before = _check_filters(user_id, event, cursor)
    async with db.reading() as conn:
        rows = await identity_repo.page_audit(
            conn, user_id=user_id, event=event, before=before, limit=size + 1
        )
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage([_entry(row) for row in rows], str(rows[-1].id) if more else None)


def _check_filters(user_id: str | None, event: str | None, cursor: str | None) -> int | None:
    """Junk is refused rather than matched against nothing; returns the cursor's id."""
    if user_id is not None and not is_valid_id(user_id, "usr"):
        raise ValidationFailed("`user_id` must be a user id (usr_...)")
    if event is not None and not _EVENT.fullmatch(event):
        raise ValidationFailed("`event` must be an event name such as login_failed")
    if cursor is None or cursor == "":
        return None
    position = parse_digits(cursor, 18)
    if position is None:
        raise ValidationFailed("`cursor` is not a cursor this listing returned")
    return position


def _entry(row: AuditRow) -> AuditRow:
    return msgspec.structs.replace(row, detail=_public(row.detail))


def _public(detail: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in detail.items() if key in _SHOWN}
