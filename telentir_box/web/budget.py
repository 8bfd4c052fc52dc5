"""The API's request budget per credential: a token bucket per session or API key
(`[ratelimit] requests_per_minute`, bursts up to the same figure), charged once per
request when the caller is resolved, by the Litestar guards and the object hot path
alike. Past it: 429 RATE_LIMITED with Retry-After, X-RateLimit-Limit,
X-RateLimit-Remaining and X-RateLimit-Reset (seconds until the bucket is full again).
Answers within the budget carry none of them: three more headers on every answer cost
the object hot path more than the budget itself. Requests that resolve no credential (webhooks, the health
check, sign-in, which has its own limits) are not charged.

Per process and in memory, like every rate limit of the box (DESIGN: rate limits are
the state a process may keep to itself)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from telentir_box.auth.principal import Principal
from telentir_box.errors import RateLimited

# Buckets are a key and two floats; past this many the oldest half is forgotten (a
# forgotten bucket starts full, so only a caller holding that many live credentials gains).
MAX_BUCKETS = 100_000


class RequestBudget:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        # credential id -> [tokens left, when last charged]; insertion order is age.
        self._buckets: dict[str, list[float]] = {}

    def spend(self, principal: Principal) -> None:
        """Charge one request to the caller's credential; RateLimited when it has none left."""
        if not self.limit:
            return
        key = principal.api_key_id or principal.session_id or principal.user_id
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_oldest()
            bucket = self._buckets[key] = [float(self.limit), now]
        else:
            bucket[0] = min(float(self.limit), bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] < 1.0:
            raise RateLimited(
                f"Too many requests for this credential: at most {self.limit} a minute",
                headers={
                    "Retry-After": str(math.ceil((1.0 - bucket[0]) / self._rate)),
                    "X-RateLimit-Limit": str(self.limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil((self.limit - bucket[0]) / self._rate)),
                },
            )
        bucket[0] -= 1.0

    def _forget_oldest(self) -> None:
        keys = list(self._buckets)
        for key in keys[: len(keys) // 2]:
            del self._buckets[key]
