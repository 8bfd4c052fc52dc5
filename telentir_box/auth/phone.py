"""Phone verification: a six-digit code sent by SMS, kept hashed with an expiry, a
limit on wrong guesses and a pause between sends; the admin override lives here too."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from telentir_box.auth.accounts import check_phone, normalise_email
from telentir_box.auth.audit import record_audit
from telentir_box.auth.codes import generate_digits
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.timestamps import iso
from telentir_box.errors import NotFound, RateLimited, ValidationFailed

if TYPE_CHECKING:
    from telentir_box.box import Box


async def send_code(box: Box, user_id: str, phone: str | None) -> None:
    phone = check_phone(phone) if phone else None
    # The resend slot is claimed before anything is awaited, so of concurrent sends only
    # one can pass; it is given back if no text went out, so the user may retry at once.
    claim = box.identity.resends.attempt(f"resend:{user_id}")
    try:
        await _send_code(box, user_id, phone)
    except Exception:
        claim.forgive()
        raise


async def _send_code(box: Box, user_id: str, phone: str | None) -> None:
    auth = box.config.auth
    async with box.db.reading() as conn:
        user = await users_repo.get_user(conn, user_id)
        pending = await identity_repo.get_phone_code(conn, user_id)
    if user is None:
        raise NotFound("User not found")
    target = phone or user.phone
    if not target:
        raise ValidationFailed("Field `phone` is required: no phone number is registered")
    now = box.clock()
    if pending is not None:
        # Still checked: the in-memory slot does not survive a restart, the sent_at does.
        wait = (datetime.fromisoformat(pending.sent_at) + timedelta(seconds=auth.phone_resend_seconds)) - now
        if wait.total_seconds() > 0:
            raise RateLimited(
                "A code was sent moments ago; wait before asking for another",
                headers={"Retry-After": str(max(1, int(wait.total_seconds()) + 1))},
            )
    box.identity.texts.attempt(f"text-user:{user_id}", f"text-to:{target}")  # never forgiven
    code = generate_digits(6)
    code_hash = box.identity.codes.hash(code)
    expires = now + timedelta(seconds=auth.phone_code_ttl_seconds)

    async def write(tx: Transaction) -> None:
        await identity_repo.put_phone_code(tx, user_id, target, code_hash, iso(now), iso(expires))

    await box.db.write(write)
    try:
        await box.identity.sms.send(target, f"Your telentir-box verification code is {code}")
    except Exception:
        await _forget_code(box, user_id, code_hash)
        raise


async def _forget_code(box: Box, user_id: str, code_hash: bytes) -> None:
    """Drop a code whose text never left, so its sent_at does not hold back a retry."""

    async def write(tx: Transaction) -> None:
        await identity_repo.delete_phone_code(tx, user_id, code_hash)

    await box.db.write(write)


async def verify_code(box: Box, user_id: str, code: str, ip: str) -> None:
    attempt = box.identity.limiter.attempt(f"phone:{user_id}", f"phone-ip:{ip}")
    code_hash = box.identity.codes.hash(code)
    now = iso(box.clock())
    max_attempts = box.config.auth.phone_code_attempts

    async def write(tx: Transaction) -> bool:
        pending = await identity_repo.get_phone_code(tx.conn, user_id)
        if pending is None or pending.expires_at <= now:
            return False
        if not hmac.compare_digest(pending.code_hash, code_hash):
            if await identity_repo.count_phone_attempt(tx, user_id) >= max_attempts:
                await identity_repo.delete_phone_code(tx, user_id)
            return False
        await identity_repo.delete_phone_code(tx, user_id)
        await users_repo.set_phone_verified(tx, user_id, pending.phone)
        await identity_repo.insert_audit(tx, "phone_verified", user_id=user_id, ip=ip)
        return True

    if not await box.db.write(write):
        if attempt.locked:
            await record_audit(box.db, "lockout", user_id=user_id, ip=ip, detail={"scope": "phone"})
        raise ValidationFailed("Invalid or expired code")
    attempt.forgive(attempt.keys[0])


async def verify_phone_by_admin(box: Box, email: str) -> bool:
    async with box.db.reading() as conn:
        user = await users_repo.get_user_by_email(conn, normalise_email(email))
    if user is None:
        return False

    async def write(tx: Transaction) -> bool:
        await identity_repo.insert_audit(tx, "phone_verified", user_id=user.id, detail={"by": "admin"})
        return await users_repo.set_phone_verified(tx, user.id)

    return await box.db.write(write)
