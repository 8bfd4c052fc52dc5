"""Brute-force limits: attempts counted per key (an account, a client address) in
memory; after `max_attempts` failures within the window the key is locked out for a while."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from telentir_box.errors import RateLimited

_PRUNE_AT = 100_000


class Attempt:
    """One guess, already counted as a failure when it was admitted. Call `forgive()`
    when it turns out right; a guess that is wrong (or crashes) simply stays counted."""

    __slots__ = ("_limiter", "_locks", "keys")

    def __init__(self, limiter: RateLimiter, keys: tuple[str, ...], locks: dict[str, float]) -> None:
        self._limiter = limiter
        self.keys = keys
        # The keys whose lockout this attempt started, with the lockout's end.
        self._locks = locks

    @property
    def locked(self) -> bool:
        """True if this attempt started a lockout (worth an audit row when it fails)."""
        return bool(self._locks)

    def forgive(self, *clear: str) -> None:
        """Take back this attempt's count; `clear` forgets those keys' failures entirely."""
        self._limiter._forgive(self)
        self._limiter.clear(*clear)


class RateLimiter:
    def __init__(
        self,
        max_attempts: int,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        message: str = "Too many failed attempts; try again later",
    ) -> None:
        self.max_attempts = max_attempts
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._message = message
        # key -> (attempts counted in the current window, window start, locked until)
        self._state: dict[str, tuple[int, float, float]] = {}

    def attempt(self, *keys: str) -> Attempt:
        """Admit one guess or raise 429 RATE_LIMITED (with Retry-After).

        The guess counts as a failure from this moment, before the caller awaits the
        check (argon2, the database): counting only after it would let any number of
        concurrent guesses through while the first ones are still being evaluated.
        No await happens in here, so admitting is atomic on the event loop."""
        now = self._clock()
        wait = max((self._state.get(key, (0, 0.0, 0.0))[2] - now for key in keys), default=0.0)
        if wait > 0:
            raise RateLimited(
                self._message,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        if len(self._state) > _PRUNE_AT:
            self._prune(now)
        locks: dict[str, float] = {}
        for key in keys:
            count, start, until = self._state.get(key, (0, now, 0.0))
            if now - start > self.lockout_seconds:
                count, start = 0, now
            count += 1
            if count >= self.max_attempts:
                count, until = 0, now + self.lockout_seconds
                locks[key] = until
            self._state[key] = (count, start, until)
        return Attempt(self, keys, locks)

    def clear(self, *keys: str) -> None:
        for key in keys:
            self._state.pop(key, None)

    def _forgive(self, attempt: Attempt) -> None:
        for key in attempt.keys:
            state = self._state.get(key)
            if state is None:
                continue
            count, start, until = state
            if key in attempt._locks and until == attempt._locks[key]:
                # This attempt's count is what tipped the key over: lift that lockout and
                # restore the failures that came before it.
                self._state[key] = (self.max_attempts - 1, start, 0.0)
            else:
                self._state[key] = (max(0, count - 1), start, until)

    def _prune(self, now: float) -> None:
        self._state = {
            key: value
            for key, value in self._state.items()
            if value[2] > now or now - value[1] <= self.lockout_seconds
        }
