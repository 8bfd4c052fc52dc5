"""RSA key generation on a caller's behalf (`POST /api/servers` with mode "generate"):
limited per user, one at a time, off the event loop."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.auth.ratelimit import RateLimiter
from telentir_box.crypto import rsa as rsa_keys

WINDOW_SECONDS = 3600.0


class KeyGenerator:
    """A key costs a core for tens of milliseconds or more. OpenSSL releases the GIL
    while it works, so the event loop keeps running beside it, but every generation
    queued at once on the default thread pool would take its threads (and both cores)
    from the database's fsyncs and password hashing: one runs at a time, the rest wait
    here, in the order they came. The per-user limit makes a flood cost its sender."""

    def __init__(self, per_hour: int) -> None:
        self._one_at_a_time = asyncio.Semaphore(1)
        self._limiter = RateLimiter(
            per_hour, WINDOW_SECONDS, message="Too many generated servers; try again later"
        )

    def admit(self, user_id: str) -> None:
        """Count one generation for `user_id`, or raise 429 RATE_LIMITED (Retry-After).
        Call it only once the request is known to be valid: refusals cost nothing."""
        self._limiter.attempt(f"generate:{user_id}")

    async def generate(self) -> rsa.RSAPrivateKey:
        async with self._one_at_a_time:
            return await asyncio.to_thread(rsa_keys.generate_private_key)
