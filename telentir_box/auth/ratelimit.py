"""Brute-force limits: failed attempts counted per key (an account, a client address)
in memory; after `max_attempts` within the window the key is locked out for a while."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from telentir_box.errors import RateLimited

_PRUNE_AT = 100_000


class RateLimiter:
    def __init__(
        self, max_attempts: int, lockout_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_attempts = max_attempts
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        # key -> (failures in the current window, window start, locked until)
        self._state: dict[str, tuple[int, float, float]] = {}

    def check(self, *keys: str) -> None:
        """Raise 429 RATE_LIMITED (with Retry-After) if any key is locked out."""
        now = self._clock()
        wait = max((self._state.get(key, (0, 0.0, 0.0))[2] - now for key in keys), default=0.0)
        if wait > 0:
            raise RateLimited(
                "Too many failed attempts; try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def fail(self, *keys: str) -> bool:
        """Count a failure against each key; True if this failure started a lockout."""
        now = self._clock()
        if len(self._state) > _PRUNE_AT:
            self._prune(now)
        locked = False
        for key in keys:
            failures, start, until = self._state.get(key, (0, now, 0.0))
            if now - start > self.lockout_seconds:
                failures, start = 0, now
            failures += 1
            if failures >= self.max_attempts:
                failures, until, locked = 0, now + self.lockout_seconds, True
            self._state[key] = (failures, start, until)
        return locked

    def clear(self, *keys: str) -> None:
        for key in keys:
            self._state.pop(key, None)

    def _prune(self, now: float) -> None:
        self._state = {
            key: value
            for key, value in self._state.items()
            if value[2] > now or now - value[1] <= self.lockout_seconds
        }
