"""Accounts: creating users and starting/ending their sessions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from telentir_box.auth.passwords import Passwords
from telentir_box.auth.principal import Authenticator
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.errors import Conflict, ValidationFailed
from telentir_box.ids import new_id

ROLES = ("owner", "admin", "member")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # ASCII digits only (\d takes any script's)
# A token that can only finish 2FA is worth little to its holder but is one step from
# a full session: it expires soon, whatever lifetime the full session will get.
PENDING_2FA_TTL = timedelta(minutes=5)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.fullmatch(email):
        raise ValidationFailed("Field `email` must be an email address")
    return email


def check_phone(phone: str) -> str:
    phone = phone.strip()
    if not _E164.fullmatch(phone):
        raise ValidationFailed("Field `phone` must be an E.164 number such as +14155550100")
    return phone


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    role: str = "member"
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    super_admin: bool = False
    phone_verified: bool = False


async def create_user(db: Database, passwords: Passwords, new: NewUser) -> str:
    """Create a user; returns its id. Conflict if the email is registered."""
    email = normalise_email(new.email)
    if new.role not in ROLES:
        raise ValidationFailed(f"Field `role` must be one of {', '.join(ROLES)}")
    phone = check_phone(new.phone) if new.phone else ""
    password_hash = await passwords.hash(new.password)
    user_id = new_id("usr")

    async def write(tx: Transaction) -> bool:
        return await users_repo.insert_user(
            tx,
            user_id=user_id,
            email=email,
            password_hash=password_hash,
            role=new.role,
            first_name=new.first_name,
            last_name=new.last_name,
            phone=phone,
            super_admin=new.super_admin,
            phone_verified=new.phone_verified,
        )

    if not await db.write(write):
        raise Conflict("An account with this email already exists")
    return user_id


async def start_session(
    db: Database,
    auth: Authenticator,
    user_id: str,
    now: datetime,
    ttl: timedelta,
    *,
    pending_2fa: bool = False,
) -> str:
    """Record a session row and return its signed token (JWT with the row id as jti).

    A 2FA-pending session's row keeps the full expiry, which finishing 2FA hands on to
    the full session; its token expires after PENDING_2FA_TTL, and with it the session,
    since the token is the only way to use it."""
    session_id = new_id("ses")
    expires = now + ttl

    async def write(tx: Transaction) -> None:
        await users_repo.insert_session(tx, session_id, user_id, iso(expires), pending_2fa=pending_2fa)

    await db.write(write)
    token_expires = min(expires, now + PENDING_2FA_TTL) if pending_2fa else expires
    return auth.issue_token(user_id, session_id, token_expires)


async def end_session(db: Database, session_id: str) -> None:
    async def write(tx: Transaction) -> None:
        await users_repo.revoke_session(tx, session_id)

    await db.write(write)
