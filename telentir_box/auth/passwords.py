"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from telentir_box.config import AuthConfig
from telentir_box.errors import ValidationFailed

MIN_LENGTH, MAX_LENGTH = 12, 1024


class Passwords:
    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
        )
        # Verifying against this when an account does not exist costs the same time
        # as a real check, so timing does not reveal which emails are registered.
        self._dummy = self._hasher.hash("telentir-box timing equaliser")

    async def hash(self, password: str) -> str:
        check_password_policy(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if len(password) > MAX_LENGTH:
            return False
        return await asyncio.to_thread(self._verify, password_hash or self._dummy, password) and bool(
            password_hash
        )

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def check_password_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationFailed(f"Password must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
