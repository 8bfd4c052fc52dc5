"""The voice back office's parts, built once from the config with the box's shared
database, keyring and provider clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from telentir_box.billing.state import Billing
from telentir_box.config import CallsConfig, Config
from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as repo
from telentir_box.db.database import Database
from telentir_box.integrations.deliveries import DeliveryQueue
from telentir_box.telephony.elevenlabs import ElevenLabs
from telentir_box.telephony.twilio_client import TwilioClient
from telentir_box.voice.calls import CallLedger, iso_before
from telentir_box.voice.elevenlabs_webhooks import ElevenLabsWebhooks
from telentir_box.voice.personalize import Personalizer
from telentir_box.voice.seams import CallHooks
from telentir_box.voice.session import WEBHOOK_PATHS, CallPlacer
from telentir_box.voice.twilio_webhooks import TwilioWebhooks

log = logging.getLogger("telentir_box.calls")
SWEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Voice:
    ledger: CallLedger
    placer: CallPlacer
    twilio_webhooks: TwilioWebhooks
    elevenlabs_webhooks: ElevenLabsWebhooks
    personalizer: Personalizer
    limits: CallsConfig

    async def sweep(self, now: datetime) -> None:
        """Calls whose callbacks stopped coming are made final with what the box has;
        webhooks that never found their call are dropped."""
        limits = self.limits
        async with self.ledger.db.reading() as conn:
            stale = await repo.list_open_calls_started_before(
                conn, iso_before(now, limits.finalize_after_seconds)
            )
        for call_id in stale:
            await self.ledger.finalize_now(call_id)
        before = iso_before(now, limits.unmatched_webhook_seconds)
        await self.ledger.db.write(lambda tx: repo.drop_waiting_webhooks_before(tx, before))

    async def sweep_periodically(self) -> None:
        while True:
            try:
                await self.sweep(datetime.now(UTC))
            except Exception:
                log.exception("calls not swept")
            await asyncio.sleep(SWEEP_SECONDS)


def webhook_url(config: Config, name: str) -> str:
    return config.server.public_url.rstrip("/") + WEBHOOK_PATHS[name]


def build_voice(
    config: Config,
    db: Database,
    keyring: Keyring,
    twilio: TwilioClient | None,
    elevenlabs: ElevenLabs,
    billing: Billing | None,
    deliveries: DeliveryQueue | None,
    clock: Callable[[], datetime],
) -> Voice:
    ledger = CallLedger(db, keyring, CallHooks(billing, deliveries, clock))
    return Voice(
        ledger=ledger,
        placer=CallPlacer(db, keyring, ledger, twilio, elevenlabs, config.calls, config.server.public_url),
        twilio_webhooks=TwilioWebhooks(
            db, keyring, ledger, twilio, elevenlabs, config.calls, webhook_url(config, "recording")
        ),
        elevenlabs_webhooks=ElevenLabsWebhooks(db, keyring, ledger, config.calls),
        personalizer=Personalizer(db, keyring, ledger),
        limits=config.calls,
    )
