"""The single team: invites (single-use tokens carrying a role), listing members,
changing roles and removing members, never leaving the team without an owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from telentir_box.auth.accounts import ROLES, normalise_email
from telentir_box.auth.codes import generate_token
from telentir_box.auth.principal import Principal
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from telentir_box.db.users import UserRow
from telentir_box.errors import Conflict, Forbidden, NotFound, ValidationFailed
from telentir_box.ids import is_valid_id

if TYPE_CHECKING:
    from telentir_box.box import Box


@dataclass(frozen=True)
class Invite:
    token: str
    email: str
    role: str
    expires_at: str


def _check_role(role: str, actor: Principal) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Field `role` must be one of {', '.join(ROLES)}")
    if role == "owner" and actor.role != "owner" and not actor.super_admin:
        raise Forbidden("Only an owner can grant the owner role")


async def create_invite(box: Box, actor: Principal, email: str, role: str) -> Invite:
    _check_role(role, actor)
    email = normalise_email(email)
    token = generate_token("tbi")
    expires = iso(box.clock() + timedelta(days=box.config.auth.invite_ttl_days))

    async def write(tx: Transaction) -> None:
        await identity_repo.insert_auth_token(
            tx,
            box.identity.codes.hash(token),
            "invite",
            expires,
            email=email,
            role=role,
            created_by=actor.user_id,
        )
        await identity_repo.insert_audit(
            tx, "invite_created", actor_id=actor.user_id, detail={"email": email, "role": role}
        )

    await box.db.write(write)
    return Invite(token, email, role, expires)


def describe_member(user: UserRow) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "role": user.role,
        "phoneVerified": user.phone_verified,
        "twoFactorConfigured": user.totp_enabled,
        "created_at": user.created_at,
    }


async def list_members(box: Box) -> list[UserRow]:
    async with box.db.reading() as conn:
        return await users_repo.list_users(conn)


async def _member(tx: Transaction, member_id: str) -> UserRow:
    user = await users_repo.get_user(tx.conn, member_id) if is_valid_id(member_id, "usr") else None
    if user is None:
        raise NotFound("Member not found")
    return user


async def set_member_role(box: Box, actor: Principal | None, member_id: str, role: str) -> UserRow:
    """`actor` None is the offline admin CLI."""
    if actor is not None:
        _check_role(role, actor)
    elif role not in ROLES:
        raise ValidationFailed(f"Field `role` must be one of {', '.join(ROLES)}")

    async def write(tx: Transaction) -> UserRow:
        user = await _member(tx, member_id)
        if actor is not None and user.role == "owner" and actor.role != "owner" and not actor.super_admin:
            raise Forbidden("Only an owner can change an owner's role")
        await users_repo.set_role(tx, user.id, role)
        if user.role == "owner" and await users_repo.count_owners(tx) == 0:
            raise Conflict("The team must keep at least one owner")
        await identity_repo.insert_audit(
            tx,
            "role_changed",
            user_id=user.id,
            actor_id=actor.user_id if actor else None,
            detail={"from": user.role, "to": role},
        )
        return await _member(tx, member_id)

    return await box.db.write(write)


async def remove_member(box: Box, actor: Principal, member_id: str) -> None:
    async def write(tx: Transaction) -> None:
        user = await _member(tx, member_id)
        if user.role == "owner" and actor.role != "owner" and not actor.super_admin:
            raise Forbidden("Only an owner can remove an owner")
        await users_repo.delete_user(tx, user.id)
        if user.role == "owner" and await users_repo.count_owners(tx) == 0:
            raise Conflict("The team must keep at least one owner")
        await identity_repo.insert_audit(
            tx, "member_removed", user_id=user.id, actor_id=actor.user_id, detail={"email": user.email}
        )

    await box.db.write(write)
