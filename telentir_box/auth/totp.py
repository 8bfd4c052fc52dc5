"""Two-factor authentication with TOTP (pyotp: SHA1, 6 digits, 30 s): enabling,
confirming with ten hashed one-time recovery codes (replaceable later), checking a code
once only, and turning it off. The secret is sealed under the master key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import pyotp

from telentir_box.auth.audit import record_audit
from telentir_box.auth.codes import generate_recovery_code
from telentir_box.auth.ratelimit import Attempt
from telentir_box.db import identity as identity_repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Transaction
from telentir_box.db.users import UserRow
from telentir_box.digits import is_digits
from telentir_box.errors import Conflict, NotFound, ValidationFailed

if TYPE_CHECKING:
    from telentir_box.box import Box

ISSUER = "telentir-box"
SEAL_PURPOSE = "totp-secrets"
RECOVERY_CODES = 10
CODE_DIGITS = 6
# One step either side tolerates clock drift between phone and box.
DRIFT_STEPS = 1


@dataclass(frozen=True)
class Enrolment:
    url: str
    secret: str


async def _user(box: Box, user_id: str) -> UserRow:
    async with box.db.reading() as conn:
        user = await users_repo.get_user(conn, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def _secret(box: Box, user: UserRow) -> str:
    assert user.totp_secret_sealed is not None
    return box.keyring.sealer(SEAL_PURPOSE).open(user.totp_secret_sealed, user.id.encode()).decode()


async def enable(box: Box, user_id: str) -> Enrolment:
    """Start enrolment: a new secret, kept pending until a code confirms it."""
    user = await _user(box, user_id)
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already on")
    secret = pyotp.random_base32()
    sealed = box.keyring.sealer(SEAL_PURPOSE).seal(secret.encode(), user.id.encode())

    async def write(tx: Transaction) -> None:
        await users_repo.set_totp_secret(tx, user.id, sealed, enabled=False)

    await box.db.write(write)
    url = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(url, secret)


def _matching_step(box: Box, secret: str, code: str) -> int | None:
    code = code.strip()
    if not is_digits(code, CODE_DIGITS):
        return None  # refused as any wrong code is; compare_digest takes only ASCII text
    otp = pyotp.TOTP(secret)
    now_step = otp.timecode(box.clock())
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            return step
    return None


async def _claim_code(box: Box, tx: Transaction, user: UserRow, code: str) -> bool:
    step = _matching_step(box, _secret(box, user), code)
    return step is not None and await users_repo.claim_totp_step(tx, user.id, step)


def _new_recovery_codes(box: Box) -> tuple[list[str], list[bytes]]:
    """A fresh set of recovery codes (for the user, once) and their keyed hashes (to store)."""
    codes = [generate_recovery_code() for _ in range(RECOVERY_CODES)]
    return codes, [box.identity.codes.hash(c) for c in codes]


async def confirm(box: Box, user_id: str, code: str, ip: str) -> list[str]:
    """Turn 2FA on with a first valid code; returns the recovery codes (shown once)."""
    user = await _user(box, user_id)
    if user.totp_enabled or user.totp_secret_sealed is None:
        raise Conflict("Start with POST /api/auth/2fa/enable")
    attempt = box.identity.limiter.attempt(f"2fa:{user_id}")
    codes, hashes = _new_recovery_codes(box)

    async def write(tx: Transaction) -> bool:
        if not await _claim_code(box, tx, user, code):
            return False
        await users_repo.set_totp_secret(tx, user.id, user.totp_secret_sealed, enabled=True)
        await identity_repo.replace_recovery_codes(tx, user.id, hashes)
        await identity_repo.insert_audit(tx, "2fa_enabled", user_id=user.id, ip=ip)
        return True

    if not await box.db.write(write):
        raise ValidationFailed("Invalid two-factor code")
    attempt.forgive()
    return codes


async def _refuse_code(box: Box, attempt: Attempt, user_id: str, ip: str) -> NoReturn:
    await record_audit(box.db, "2fa_failed", user_id=user_id, ip=ip)
    if attempt.locked:
        await record_audit(box.db, "lockout", user_id=user_id, ip=ip, detail={"scope": "2fa"})
    raise ValidationFailed("Invalid two-factor code")


async def check_second_factor(
    box: Box, user_id: str, code: str | None, recovery_code: str | None, ip: str
) -> None:
    """Accept a fresh TOTP code or an unused recovery code, each once only."""
    if not (code or recovery_code):
        raise ValidationFailed("Field `code` or `recoveryCode` is required")
    user = await _user(box, user_id)
    if not user.totp_enabled:
        raise Conflict("Two-factor authentication is off")
    attempt = box.identity.limiter.attempt(f"2fa:{user_id}", f"2fa-ip:{ip}")
    recovery_hash = box.identity.codes.hash(recovery_code.lower()) if recovery_code else None

    async def write(tx: Transaction) -> bool:
        if recovery_hash is not None:
            ok = await identity_repo.use_recovery_code(tx, user.id, recovery_hash)
        else:
            ok = await _claim_code(box, tx, user, code or "")
        if ok:
            used = "recovery_code" if recovery_hash else "totp"
            await identity_repo.insert_audit(tx, "2fa_passed", user_id=user.id, ip=ip, detail={"by": used})
        return ok

    if not await box.db.write(write):
        await _refuse_code(box, attempt, user.id, ip)
    attempt.forgive(attempt.keys[0])


async def regenerate_recovery_codes(box: Box, user_id: str, code: str, ip: str) -> list[str]:
    """Replace every recovery code with a fresh set, returned once. Needs a current TOTP
    code, not a recovery code: one leaked code must not be worth ten new ones. Guesses
    count against the same limits as signing in with a code."""
    if not (await _user(box, user_id)).totp_enabled:
        raise Conflict("Two-factor authentication is off; turn it on with POST /api/auth/2fa/enable")
    attempt = box.identity.limiter.attempt(f"2fa:{user_id}", f"2fa-ip:{ip}")
    codes, hashes = _new_recovery_codes(box)

    async def write(tx: Transaction) -> bool:
        # Read again inside the write: 2FA turned off meanwhile must not get codes back.
        user = await users_repo.get_user(tx.conn, user_id)
        if user is None or not user.totp_enabled or not await _claim_code(box, tx, user, code):
            return False
        await identity_repo.replace_recovery_codes(tx, user.id, hashes)
        detail = {"count": len(hashes)}
        await identity_repo.insert_audit(
            tx, "recovery_codes_regenerated", user_id=user.id, ip=ip, detail=detail
        )
        return True

    if not await box.db.write(write):
        await _refuse_code(box, attempt, user_id, ip)
    attempt.forgive(attempt.keys[0])
    return codes


async def reset(box: Box, user_id: str, code: str, ip: str) -> None:
    """Turn 2FA off; needs a current code (or a recovery code) like signing in does."""
    await check_second_factor(box, user_id, code, None, ip)
    await disable(box, user_id, actor_id=user_id, ip=ip)


async def disable(box: Box, user_id: str, *, actor_id: str | None, ip: str = "") -> bool:
    async def write(tx: Transaction) -> bool:
        done = await users_repo.set_totp_secret(tx, user_id, None, enabled=False)
        await identity_repo.replace_recovery_codes(tx, user_id, [])
        await identity_repo.insert_audit(tx, "2fa_disabled", user_id=user_id, actor_id=actor_id, ip=ip)
        return done

    return await box.db.write(write)
