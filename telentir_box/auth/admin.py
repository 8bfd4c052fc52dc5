"""Offline administration of accounts (the `telentir-box admin` commands): listing
users and, by email, resetting 2FA, verifying a phone, signing out, changing a role."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telentir_box.auth import phone, team, totp
from telentir_box.auth.accounts import normalise_email
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.users import UserRow
from telentir_box.errors import NotFound

if TYPE_CHECKING:
    from telentir_box.box import Box


async def find_user(box: Box, email: str) -> UserRow:
    async with box.db.reading() as conn:
        user = await users_repo.get_user_by_email(conn, normalise_email(email))
    if user is None:
        raise NotFound(f"no user with email {email}")
    return user


async def list_users(box: Box) -> list[dict[str, Any]]:
    return [
        {**team.describe_member(user), "superAdmin": user.super_admin}
        for user in await team.list_members(box)
    ]


async def reset_two_factor(box: Box, email: str) -> None:
    await totp.disable(box, (await find_user(box, email)).id, actor_id=None)


async def verify_phone(box: Box, email: str) -> None:
    if not await phone.verify_phone_by_admin(box, email):
        raise NotFound(f"no user with email {email}")


async def revoke_sessions(box: Box, email: str) -> int:
    user = await find_user(box, email)

    async def write(tx: Transaction) -> int:
        await identity_repo.insert_audit(tx, "sessions_revoked", user_id=user.id, detail={"by": "admin"})
        return await users_repo.revoke_user_sessions(tx, user.id)

    return await box.db.write(write)


async def set_role(box: Box, email: str, role: str) -> None:
    await team.set_member_role(box.db, None, (await find_user(box, email)).id, role)
