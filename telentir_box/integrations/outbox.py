"""The outbox's sender, a background task for the life of the box: it leases due
deliveries, sends each through its provider, and records the outcome. Retries back off
exponentially with jitter on 408, 425, 429 (never sooner than Retry-After) and 5xx or
an unreachable provider; any other 4xx, a broken connection or too many attempts is a
dead letter the user can retry. A delivered payload is deleted. A delivery leased by a
box that stopped mid-send is sent again once its lease runs out, and the provider's
idempotency key (see each provider module) keeps that from doubling it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from telentir_box.config import IntegrationsConfig
from telentir_box.crypto.sealing import Sealer
from telentir_box.db import integrations as repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.integrations.deliveries import DeliveryQueue, open_payload
from telentir_box.integrations.providers import DeliveryFailed, Provider, ProviderApi
from telentir_box.integrations.tokens import TokenKeeper

log = logging.getLogger("telentir_box.integrations")
# Idle, the sender looks for due rows this often (a write wakes it at once).
POLL_SECONDS = 1.0
MAX_RETRY_AFTER = 86_400.0
_jitter = random.Random()  # noqa: S311 - spreads retries, guards nothing


def backoff_seconds(config: IntegrationsConfig, attempts: int, retry_after: float | None) -> float:
    """Exponential in the attempts made, with full jitter over its upper half, capped;
    never sooner than the provider's Retry-After."""
    ceiling = min(config.retry_max_seconds, config.retry_base_seconds * 2 ** max(0, attempts - 1))
    delay = ceiling * _jitter.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


class Outbox:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        http: httpx.AsyncClient,
        config: IntegrationsConfig,
        providers: Mapping[str, Provider],
        tokens: TokenKeeper,
        queue: DeliveryQueue,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._http = http
        self._config = config
        self._providers = providers
        self._tokens = tokens
        self._queue = queue
        self._next_due = time.monotonic()
        # Figures for benchmarks and logs.
        self.delivered = 0
        self.retried = 0
        self.dead = 0

    async def run(self) -> None:
        batch = self._config.send_concurrency * 4
        limit = asyncio.Semaphore(self._config.send_concurrency)
        while True:
            try:
                claimed = await self._db.write(self._claimer(batch))
            except Exception:
                log.exception("could not claim deliveries")
                claimed = []
            if not claimed:
                await self._idle()
                continue

            async def send(row: repo.DeliveryRow) -> None:
                async with limit:
                    await self._send(row)

            await asyncio.gather(*(send(row) for row in claimed))

    def _claimer(self, batch: int):
        lease_until = iso(datetime.now(UTC) + timedelta(seconds=self._config.lease_seconds))

        async def claim(tx: Transaction) -> list[repo.DeliveryRow]:
            return await repo.claim_due(tx, batch, lease_until)

        return claim

    async def _idle(self) -> None:
        wait = min(POLL_SECONDS, max(0.01, self._next_due - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.wake.wait(), wait)
        self._queue.wake.clear()
        self._next_due = time.monotonic() + POLL_SECONDS

    async def _send(self, row: repo.DeliveryRow) -> None:
        try:
            await self._deliver(row)
        except DeliveryFailed as failed:
            await self._failed(row, failed)
            return
        except Exception as exc:  # a bug or a malformed answer: retried, then dead-lettered
            log.exception("delivery failed", extra={"delivery_id": row.id, "provider": row.provider})
            await self._failed(row, DeliveryFailed(f"internal error: {type(exc).__name__}"))
            return
        self.delivered += 1

        async def done(tx: Transaction) -> None:
            await repo.mark_delivered(tx, row.id)

        await self._db.write(done)

    async def _deliver(self, row: repo.DeliveryRow) -> None:
        provider = self._providers.get(row.provider)
        async with self._db.reading() as conn:
            integration = await repo.get_integration(conn, row.user_id, row.provider)
        if provider is None or integration is None or integration.status != "connected":
            raise DeliveryFailed(
                f"{row.provider} is not connected: connect it again, then retry", permanent=True
            )
        assert row.payload is not None
        payload = open_payload(self._sealer, row.id, row.payload)
        api = ProviderApi(self._http, self._tokens.source(integration.id))
        account = msgspec.json.decode(integration.account)
        await provider.deliver(api, account, payload, row.idempotency_key)

    async def _failed(self, row: repo.DeliveryRow, failed: DeliveryFailed) -> None:
        error = str(failed)
        if failed.retryable and row.attempts < self._config.max_attempts:
            self.retried += 1
            delay = backoff_seconds(self._config, row.attempts, failed.retry_after)
            self._next_due = min(self._next_due, time.monotonic() + delay)
            next_at = iso(datetime.now(UTC) + timedelta(seconds=delay))

            async def later(tx: Transaction) -> None:
                await repo.reschedule(tx, row.id, next_at, error)

            await self._db.write(later)
            return
        self.dead += 1
        log.warning(
            "delivery dead-lettered", extra={"delivery_id": row.id, "provider": row.provider, "error": error}
        )

        async def dead(tx: Transaction) -> None:
            await repo.mark_dead(tx, row.id, error)
            await repo.set_last_error(tx, row.user_id, row.provider, error)

        await self._db.write(dead)
