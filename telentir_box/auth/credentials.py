"""Passwords over their lifetime: changing one (which signs out the user's other
sessions) and resetting a forgotten one through a single-use emailed link (which also
signs out every session and revokes every API key)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from telentir_box.auth.audit import record_audit
from telentir_box.auth.codes import generate_token
from telentir_box.auth.login import check_confirmation
from telentir_box.auth.principal import Principal
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from telentir_box.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from telentir_box.box import Box

RESET_PATH = "/reset-password"


async def change_password(
    box: Box, principal: Principal, current: str, password: str, confirm: str, ip: str
) -> None:
    check_confirmation(password, confirm)
    attempt = box.identity.limiter.attempt(f"password:{principal.user_id}")
    async with box.db.reading() as conn:
        user = await users_repo.get_user(conn, principal.user_id)
    if user is None:
        raise NotFound("User not found")
    if not await box.passwords.verify(user.password_hash, current):
        await record_audit(box.db, "password_change_failed", user_id=user.id, ip=ip)
        raise ValidationFailed("Field `currentPassword` is not the current password")
    attempt.forgive()
    password_hash = await box.passwords.hash(password)

    async def write(tx: Transaction) -> None:
        await users_repo.set_password(tx, user.id, password_hash)
        await users_repo.revoke_user_sessions(tx, user.id, keep=principal.session_id)
        await identity_repo.insert_audit(tx, "password_changed", user_id=user.id, ip=ip)

    await box.db.write(write)


async def forgot_password(box: Box, email: str, ip: str) -> None:
    """Send a reset link if the account exists; the caller learns nothing either way."""
    email = email.strip().lower()
    # Every request counts (never forgiven), so the mailbox of a real account cannot be flooded.
    box.identity.limiter.attempt(f"reset:{email}", f"reset-ip:{ip}")
    async with box.db.reading() as conn:
        user = await users_repo.get_user_by_email(conn, email)
    if user is None:
        # The typed text is not kept: it may be anything, a password included.
        await record_audit(box.db, "password_reset_unknown", ip=ip)
        return
    token = generate_token("tbr")
    expires = box.clock() + timedelta(hours=box.config.auth.reset_ttl_hours)

    async def write(tx: Transaction) -> None:
        await identity_repo.insert_auth_token(
            tx, box.identity.codes.hash(token), "reset", iso(expires), user_id=user.id, email=user.email
        )
        await identity_repo.insert_audit(tx, "password_reset_requested", user_id=user.id, ip=ip)

    await box.db.write(write)
    server = box.config.server
    base = server.public_url.rstrip("/") or f"http://{server.host}:{server.port}"
    # A failure is logged by the mailer and not shown: an error here but not for unknown
    # emails would tell the caller which accounts exist.
    await box.identity.mailer.send(
        user.email,
        "Reset your telentir-box password",
        f"Someone asked to reset the password of this account.\n\n"
        f"To choose a new password, open (valid for {box.config.auth.reset_ttl_hours} hours, once):\n"
        f"{base}{RESET_PATH}?token={token}\n\nIf it was not you, ignore this message.\n",
    )


async def reset_password(box: Box, token: str, password: str, confirm: str, ip: str) -> None:
    check_confirmation(password, confirm)
    attempt = box.identity.limiter.attempt(f"reset-ip:{ip}")
    password_hash = await box.passwords.hash(password)
    token_hash = box.identity.codes.hash(token)
    now = iso(box.clock())

    async def write(tx: Transaction) -> bool:
        found = await identity_repo.use_auth_token(tx, token_hash, "reset", now)
        if found is None or found.user_id is None:
            return False
        await users_repo.set_password(tx, found.user_id, password_hash)
        sessions = await users_repo.revoke_user_sessions(tx, found.user_id)
        # Whoever took the account over may have minted API keys: a reset ends every
        # credential but the new password. A change (which needs the old password) keeps them.
        keys = await users_repo.delete_user_api_keys(tx, found.user_id)
        detail = {"sessions_revoked": sessions, "api_keys_revoked": keys}
        await identity_repo.insert_audit(tx, "password_reset", user_id=found.user_id, ip=ip, detail=detail)
        return True

    if not await box.db.write(write):
        raise ValidationFailed("The reset link is invalid, used or expired")
    attempt.forgive()
