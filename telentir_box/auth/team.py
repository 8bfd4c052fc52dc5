"""The single team: invites (single-use tokens carrying a role), listing members,
changing roles and removing members, never leaving the team without an owner or a
super admin.

Rank, highest first: super admin (the flag, whatever the role), owner, admin, member.
Through the API a caller grants roles up to their own rank and changes or removes only
members strictly below them (or themselves), so nobody can act on a peer or on someone
above them. The offline admin CLI (no actor) is the operator's and skips the ranks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from telentir_box.auth.accounts import ROLES, normalise_email
from telentir_box.auth.codes import generate_token
from telentir_box.auth.principal import Principal
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database, Transaction
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


ROLE_RANK = {"member": 0, "admin": 1, "owner": 2}
SUPER_ADMIN_RANK = 3


def rank(role: str, super_admin: bool) -> int:
    return SUPER_ADMIN_RANK if super_admin else ROLE_RANK[role]


def _check_role_name(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Field `role` must be one of {', '.join(ROLES)}")


def _check_grant(role: str, actor_rank: int) -> None:
    if ROLE_RANK[role] > actor_rank:
        raise Forbidden("You can only grant roles up to your own")


def _check_authority(actor_id: str, actor_rank: int, target: UserRow) -> None:
    if target.id != actor_id and rank(target.role, target.super_admin) >= actor_rank:
        raise Forbidden("You can only change or remove members below you")


async def _actor_rank(tx: Transaction, actor: Principal) -> int:
    """The caller's rank as this transaction sees it: a demotion committed a moment ago
    (possibly in the same group of writes) counts, whatever a cache still holds."""
    row = await users_repo.get_user(tx.conn, actor.user_id)
    if row is None:
        raise Forbidden()
    return rank(row.role, row.super_admin)


async def _keep_the_top(tx: Transaction, before: UserRow) -> None:
    """Raise (rolling the change back) if it left the box without an owner or super admin."""
    if before.role == "owner" and await users_repo.count_owners(tx) == 0:
        raise Conflict("The team must keep at least one owner")
    if before.super_admin and await users_repo.count_super_admins(tx) == 0:
        raise Conflict("The box must keep at least one super admin")


async def create_invite(box: Box, actor: Principal, email: str, role: str) -> Invite:
    _check_role_name(role)
    _check_grant(role, rank(actor.role, actor.super_admin))
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


async def set_member_role(db: Database, actor: Principal | None, member_id: str, role: str) -> UserRow:
    """`actor` None is the offline admin CLI: no ranks, but the last owner stays."""
    _check_role_name(role)

    async def write(tx: Transaction) -> UserRow:
        user = await _member(tx, member_id)
        if actor is not None:
            actor_rank = await _actor_rank(tx, actor)
            _check_authority(actor.user_id, actor_rank, user)
            _check_grant(role, actor_rank)
        await users_repo.set_role(tx, user.id, role)
        await _keep_the_top(tx, user)
        await identity_repo.insert_audit(
            tx,
            "role_changed",
            user_id=user.id,
            actor_id=actor.user_id if actor else None,
            detail={"from": user.role, "to": role},
        )
        return await _member(tx, member_id)

    return await db.write(write)


async def remove_member(db: Database, actor: Principal, member_id: str) -> None:
    async def write(tx: Transaction) -> None:
        user = await _member(tx, member_id)
        _check_authority(actor.user_id, await _actor_rank(tx, actor), user)
        await users_repo.delete_user(tx, user.id)
        await _keep_the_top(tx, user)
        await identity_repo.insert_audit(
            tx, "member_removed", user_id=user.id, actor_id=actor.user_id, detail={"email": user.email}
        )

    await db.write(write)
