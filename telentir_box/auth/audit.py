"""The auth audit trail: one row per authentication event. Inside a write, call
db.identity.insert_audit with the change; on its own (a failed login) use record_audit."""

from __future__ import annotations

from typing import Any

from telentir_box.db import identity as identity_repo
from telentir_box.db.database import Database, Transaction


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
