"""Signing in: login, registration under the configured policy, finishing 2FA, the
one-time super-admin setup, and the description GET /api/auth gives of the caller."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from telentir_box.auth import totp
from telentir_box.auth.accounts import (
    PENDING_2FA_TTL,
    ROLES,
    check_phone,
    normalise_email,
    start_session,
)
from telentir_box.auth.audit import record_audit
from telentir_box.auth.passwords import check_password_policy
from telentir_box.auth.principal import Principal
from telentir_box.datadir import SECRETS_PURPOSE, SETUP_TOKEN, discard_setup_token_file
from telentir_box.db import identity as identity_repo
from telentir_box.db import secrets as secrets_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from telentir_box.db.users import UserRow
from telentir_box.errors import Conflict, Forbidden, SetupComplete, Unauthorized, ValidationFailed
from telentir_box.ids import new_id

if TYPE_CHECKING:
    from telentir_box.box import Box


@dataclass(frozen=True)
class SignedIn:
    status: str  # ok, phone_not_verified or 2fa_required
    token: str
    ttl: timedelta


@dataclass(frozen=True)
class Registration:
    first_name: str
    last_name: str
    email: str
    phone: str
    password: str
    confirm_password: str
    remember: bool = False
    invite_token: str | None = None


def session_ttl(box: Box, remember: bool) -> timedelta:
    auth = box.config.auth
    return timedelta(days=auth.remember_ttl_days) if remember else timedelta(hours=auth.session_ttl_hours)


def status_of(phone_verified: bool, two_factor_pending: bool = False) -> str:
    if two_factor_pending:
        return "2fa_required"
    return "ok" if phone_verified else "phone_not_verified"


def check_confirmation(password: str, confirm: str) -> None:
    if not hmac.compare_digest(password.encode(), confirm.encode()):
        raise ValidationFailed("Field `confirmPassword` does not match `password`")
    check_password_policy(password)


async def login(box: Box, email: str, password: str, remember: bool, ip: str) -> SignedIn:
    email = email.strip().lower()
    attempt = box.identity.limiter.attempt(f"login:{email}", f"login-ip:{ip}")
    async with box.db.reading() as conn:
        user = await users_repo.get_user_by_email(conn, email)
    if not await box.passwords.verify(user.password_hash if user else None, password) or user is None:
        user_id = user.id if user else None
        # Only a known account's own email is kept: what was typed for an unknown one may
        # be a password typed into the wrong field.
        detail = {"email": user.email} if user else None
        await record_audit(box.db, "login_failed", user_id=user_id, ip=ip, detail=detail)
        if attempt.locked:
            await record_audit(box.db, "lockout", user_id=user_id, ip=ip, detail={"scope": "login"})
        raise Unauthorized("Invalid email or password")
    attempt.forgive(attempt.keys[0])
    ttl = session_ttl(box, remember)
    token = await start_session(
        box.db, box.authenticator, user.id, box.clock(), ttl, pending_2fa=user.totp_enabled
    )
    await record_audit(box.db, "login_ok", user_id=user.id, ip=ip, detail={"2fa": user.totp_enabled})
    cookie_ttl = min(ttl, PENDING_2FA_TTL) if user.totp_enabled else ttl
    return SignedIn(status_of(user.phone_verified, user.totp_enabled), token, cookie_ttl)


async def register(box: Box, form: Registration, ip: str) -> SignedIn:
    policy = box.config.auth.registration
    if policy == "closed":
        raise Forbidden("Registration is closed")
    if policy == "invite" and not form.invite_token:
        raise Forbidden("Registration needs an invite")
    check_confirmation(form.password, form.confirm_password)
    email = normalise_email(form.email)
    phone = check_phone(form.phone)
    invite_hash = box.identity.codes.hash(form.invite_token) if form.invite_token else None
    if invite_hash is not None:
        await check_invite(box, invite_hash, email, ip)
    else:
        await count_registration(box, ip)
    password_hash = await box.passwords.hash(form.password)
    user_id = new_id("usr")

    async def write(tx: Transaction) -> None:
        role = "member"
        if invite_hash is not None:
            invite = await identity_repo.use_auth_token(tx, invite_hash, "invite", iso(box.clock()))
            if invite is None or (invite.email and invite.email != email):
                raise Forbidden("The invite is not valid for this email")
            role = invite.role
        created = await users_repo.insert_user(
            tx,
            user_id=user_id,
            email=email,
            password_hash=password_hash,
            role=role,
            first_name=form.first_name.strip(),
            last_name=form.last_name.strip(),
            phone=phone,
        )
        if not created:
            raise Conflict("An account with this email already exists")
        await identity_repo.insert_audit(tx, "registered", user_id=user_id, ip=ip, detail={"role": role})

    await box.db.write(write)
    ttl = session_ttl(box, form.remember)
    token = await start_session(box.db, box.authenticator, user_id, box.clock(), ttl)
    return SignedIn("phone_not_verified", token, ttl)


async def count_registration(box: Box, ip: str) -> None:
    """Admit one sign-up without an invite from `ip`, or raise 429. Counted (never
    forgiven) before the argon2 hash, so one address can neither mint accounts nor
    spend the box's CPU without bound; an invite bounds its own sign-up instead."""
    attempt = box.identity.registrations.attempt(f"register-ip:{ip}")
    if attempt.locked:
        await record_audit(box.db, "lockout", ip=ip, detail={"scope": "register"})


async def check_invite(box: Box, invite_hash: bytes, email: str, ip: str) -> None:
    """Refuse a bad invite before the password is hashed, so junk invites cost an
    attacker more than they cost the box, and count the failures per address. The
    write still claims the invite, which settles two registrations racing for it."""
    attempt = box.identity.limiter.attempt(f"invite-ip:{ip}")
    async with box.db.reading() as conn:
        invite = await identity_repo.find_auth_token(conn, invite_hash, "invite", iso(box.clock()))
    if invite is None or (invite.email and invite.email != email):
        raise Forbidden("The invite is not valid for this email")
    attempt.forgive()


async def finish_two_factor(
    box: Box, principal: Principal, code: str | None, recovery_code: str | None, ip: str
) -> SignedIn:
    """Trade a 2FA-pending session for a full one with the same expiry."""
    if not principal.two_factor_pending or principal.session_id is None:
        raise ValidationFailed("This session is not waiting for a two-factor code")
    await totp.check_second_factor(box, principal.user_id, code, recovery_code, ip)
    async with box.db.reading() as conn:
        expires_at = await users_repo.session_expiry(conn, principal.session_id)
    if expires_at is None:
        raise Unauthorized()
    ttl = datetime.fromisoformat(expires_at) - box.clock()

    async def write(tx: Transaction) -> None:
        await users_repo.revoke_session(tx, principal.session_id or "")

    await box.db.write(write)
    token = await start_session(box.db, box.authenticator, principal.user_id, box.clock(), ttl)
    return SignedIn(status_of(principal.phone_verified), token, ttl)


async def setup_super_admin(
    box: Box, setup_token: str, email: str, password: str, names: tuple[str, str], ip: str
) -> SignedIn:
    """Create the first owner and super admin; the setup token works exactly once."""
    attempt = box.identity.limiter.attempt(f"setup-ip:{ip}")
    sealer = box.keyring.sealer(SECRETS_PURPOSE)
    async with box.db.reading() as conn:
        sealed = await secrets_repo.get_secret(conn, SETUP_TOKEN)
    if sealed is None:
        attempt.forgive()
        raise SetupComplete()
    if not hmac.compare_digest(sealer.open(sealed, b"setup"), setup_token.encode()):
        await record_audit(box.db, "setup_failed", ip=ip)
        raise Forbidden("Invalid setup token")
    attempt.forgive()
    email = normalise_email(email)
    password_hash = await box.passwords.hash(password)
    user_id = new_id("usr")

    async def write(tx: Transaction) -> None:
        # Deleting the secret in the same transaction as creating the owner makes the
        # token single-use even when two requests race; a super admin made another way
        # (`admin create-user --super-admin`) ends it too.
        deleted = await secrets_repo.delete_secret(tx, SETUP_TOKEN)
        if not deleted or await users_repo.super_admin_exists(tx.conn):
            raise SetupComplete()
        if not await users_repo.insert_user(
            tx,
            user_id=user_id,
            email=email,
            password_hash=password_hash,
            role="owner",
            first_name=names[0].strip(),
            last_name=names[1].strip(),
            super_admin=True,
        ):
            raise Conflict("An account with this email already exists")
        await identity_repo.insert_audit(tx, "super_admin_created", user_id=user_id, ip=ip)

    await box.db.write(write)
    discard_setup_token_file(box.config.data_dir)
    ttl = session_ttl(box, False)
    token = await start_session(box.db, box.authenticator, user_id, box.clock(), ttl)
    return SignedIn("phone_not_verified", token, ttl)


async def describe(box: Box, principal: Principal | None) -> dict[str, Any] | None:
    if principal is None:
        return None
    async with box.db.reading() as conn:
        user = await users_repo.get_user(conn, principal.user_id)
    return describe_user(user, principal) if user else None


def describe_user(user: UserRow, principal: Principal) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "phoneVerified": user.phone_verified,
        "twoFactorPassed": not principal.two_factor_pending,
        "twoFactorConfigured": user.totp_enabled,
        "role": user.role if user.role in ROLES else "member",
        "superAdmin": user.super_admin,
    }


async def end_session(box: Box, principal: Principal) -> None:
    async def write(tx: Transaction) -> None:
        await users_repo.revoke_session(tx, principal.session_id or "")
        await identity_repo.insert_audit(tx, "logout", user_id=principal.user_id)

    await box.db.write(write)
