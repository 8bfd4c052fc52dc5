"""Which report emails a user receives: both until the user turns one off."""

from __future__ import annotations

from telentir_box.db import jobs as jobs_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.jobs import Preferences


async def get_preferences(db: Database, user_id: str) -> Preferences:
    async with db.reading() as conn:
        return await jobs_repo.get_preferences(conn, user_id)


async def set_preferences(db: Database, user_id: str, preferences: Preferences) -> Preferences:
    async def write(tx: Transaction) -> None:
        await jobs_repo.set_preferences(tx, user_id, preferences)

    await db.write(write)
    return preferences
