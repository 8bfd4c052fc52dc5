"""The runtime object: everything the process holds open (database, keyring, the
shared HTTP client, clock), built once at start from the config and injected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from telentir_box import __version__
from telentir_box.auth.apikeys import flush_api_key_use
from telentir_box.auth.identity import Identity, build_identity
from telentir_box.auth.passwords import Passwords
from telentir_box.auth.principal import Authenticator
from telentir_box.billing.checkout import StripeCheckout
from telentir_box.billing.state import Billing, push_call_charges_periodically
from telentir_box.config import Config
from telentir_box.connect.credits import Credits, build_credits, settle_abandoned_periodically
from telentir_box.crypto.keyring import Keyring
from telentir_box.datadir import initialise, load_cron_secret, load_keyring
from telentir_box.db.database import Database
from telentir_box.db.users import AUTH_STATE
from telentir_box.events.bus import Bus
from telentir_box.events.recheck import recheck_streams_periodically
from telentir_box.events.retention import prune_event_log_periodically
from telentir_box.events.tickets import StreamTickets
from telentir_box.integrations.runtime import Integrations, build_integrations
from telentir_box.jobs.scheduler import Jobs, build_jobs
from telentir_box.store.keygen import KeyGenerator
from telentir_box.telephony.elevenlabs import ElevenLabs
from telentir_box.telephony.knowledge import Knowledge
from telentir_box.telephony.link_fetch import LinkFetcher
from telentir_box.telephony.numbers import PhoneNumbers
from telentir_box.telephony.openai_tts import OpenAI
from telentir_box.telephony.personas import PersonaCatalog
from telentir_box.telephony.quotes import QuoteSigner
from telentir_box.telephony.twilio_client import build_twilio_client
from telentir_box.voice.service import Voice, build_voice
from telentir_box.web.budget import RequestBudget

log = logging.getLogger("telentir_box")
API_KEY_USE_FLUSH_SECONDS = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Box:
    config: Config
    db: Database
    keyring: Keyring
    http: httpx.AsyncClient
    authenticator: Authenticator
    passwords: Passwords
    identity: Identity
    bus: Bus
    tickets: StreamTickets
    credits: Credits
    keygen: KeyGenerator
    phone_numbers: PhoneNumbers
    personas: PersonaCatalog
    knowledge: Knowledge
    billing: Billing
    voice: Voice
    integrations: Integrations
    budget: RequestBudget
    clock: Callable[[], datetime] = utc_now
    # The one-time setup token's file, when this start created it.
    setup_token_file: Path | None = None
    # Set when the process starts to stop, so long-lived streams can end cleanly.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by every commit that changed auth state, so open streams are rechecked.
    auth_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The scheduled jobs; a server's app starts their scheduler (admin commands do not).
    jobs: Jobs = field(init=False)

    @classmethod
    async def start(cls, config: Config, clock: Callable[[], datetime] = utc_now) -> Box:
        db, report = await initialise(config)
        if report.changed:
            log.info(
                "data directory initialised",
                extra={"made": report.created, "migrations": report.migrations},
            )
        keyring = await load_keyring(config, db)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0), headers={"user-agent": f"telentir-box/{__version__}"}
        )
        twilio = build_twilio_client(config.twilio, http)
        elevenlabs = ElevenLabs(config.elevenlabs, http)
        authenticator = Authenticator(db, keyring.session_secret, keyring.derive("api-key-pepper"))
        credits = build_credits(db, config.billing, http)
        stripe_checkout = StripeCheckout(config.billing, http) if config.billing.stripe_secret_key else None
        billing = Billing(db, config.billing, credits, stripe_checkout, clock)
        integrations = build_integrations(db, keyring, http, config.integrations)

        def now() -> datetime:
            # `box.clock` read at each call: whatever sets it later moves the jobs'
            # periods and the ages of the recordings they expire alike.
            return box.clock()

        box = cls(
            config=config,
            db=db,
            keyring=keyring,
            http=http,
            authenticator=authenticator,
            passwords=Passwords(config.auth),
            identity=build_identity(config, keyring, http),
            bus=Bus(config.events),
            tickets=StreamTickets(keyring.derive("event-tickets")),
            credits=credits,
            setup_token_file=report.setup_token_file,
            keygen=KeyGenerator(config.store.server_generations_per_hour),
            phone_numbers=PhoneNumbers(
                db,
                twilio,
                QuoteSigner(keyring, config.twilio.quote_ttl_seconds),
                config.server.public_url,
            ),
            personas=PersonaCatalog(
                elevenlabs,
                OpenAI(config.openai, http),
                config.personas.cache_seconds,
            ),
            knowledge=Knowledge(db, LinkFetcher(http, config.knowledge), config.knowledge),
            billing=billing,
            voice=build_voice(config, db, keyring, twilio, elevenlabs, billing, integrations.queue, now),
            integrations=integrations,
            budget=RequestBudget(config.ratelimit.requests_per_minute),
            clock=clock,
        )
        box.jobs = build_jobs(
            config.jobs,
            config.billing,
            db,
            box.identity.mailer,
            await load_cron_secret(db, keyring.master_key),
            now,
        )
        db.on_touched = box._state_changed
        db.on_commit = box.bus.publish
        box.spawn(box.bus.run(box.stopping), "event-bus")
        box.spawn(recheck_streams_periodically(box.bus, db, box.clock, box.auth_changed), "stream-recheck")
        box.spawn(prune_event_log_periodically(db, config.events, box.clock), "event-retention")
        box.spawn(box._flush_api_key_use_periodically(), "api-key-last-use")
        box.spawn(settle_abandoned_periodically(box.credits), "credit-recovery")
        box.spawn(push_call_charges_periodically(box.billing), "call-charge-recovery")
        box.spawn(box.voice.sweep_periodically(), "call-sweep")
        box.spawn(box.integrations.outbox.run(), "integration-outbox")
        return box

    def log_start_notes(self) -> None:
        """What the operator of a server must know; admin commands stay quiet."""
        if self.setup_token_file is not None:
            log.warning(
                "first start: create the super admin with POST /api/setup-super-admin"
                " and the one-time setup token in the file named here",
                extra={"setup_token_file": str(self.setup_token_file)},
            )
        if self.identity.sms.console:
            log.warning("Twilio is not configured: phone verification codes are only logged (dev only)")
        if not self.identity.mailer.configured:
            log.warning(
                "SMTP is not configured: password reset links and report emails are only"
                " logged (dev only); configure [smtp] in production"
            )

    def _state_changed(self, touched: set[str]) -> None:
        self.authenticator.clear_cache(touched)
        if AUTH_STATE in touched:
            self.auth_changed.set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background task for the life of the box; stop() cancels it."""
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _flush_api_key_use_periodically(self) -> None:
        while True:
            await asyncio.sleep(API_KEY_USE_FLUSH_SECONDS)
            try:
                await flush_api_key_use(self.db, self.authenticator)
            except Exception:
                log.exception("could not record API key use")

    async def stop(self) -> None:
        self.stopping.set()
        await self.jobs.stop()
        self.bus.close_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await flush_api_key_use(self.db, self.authenticator)
        await self.http.aclose()
        await self.db.close()
