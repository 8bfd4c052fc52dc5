"""Lead credits: the plan allowance per billing period and a prepaid balance (the
local ledger, or the Stripe customer's credit), clamped, reserved before a
/get-leads stream and settled after it, so the books always balance."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from telentir_box.config import BillingConfig
from telentir_box.connect.stripe_billing import StripeBilling, StripeFailed
from telentir_box.db import billing as billing_repo
from telentir_box.db import credits as repo
from telentir_box.db.connection import Connection
from telentir_box.db.credits import LedgerEntry, ReservationRow
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import UpstreamFailed, ValidationFailed
from telentir_box.ids import new_id

log = logging.getLogger("telentir_box.credits")
MAX_GRANT = 10_000_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def period_key(moment: datetime, period: str = "monthly") -> str:
    """The billing period a moment falls in, e.g. "2026-11" for a monthly plan."""
    return moment.strftime("%Y-%m")


def process_holder(pid: int | None = None) -> str:
    """Names a running process across pid reuse: its pid and its start time in ticks."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        started = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        started = ""
    return f"{pid}:{started}"


def holder_alive(holder: str) -> bool:
    pid_text, _, _ = holder.partition(":")
    if not holder or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return process_holder(int(pid_text)) == holder


# The current period's key and lead allowance, read in the transaction that reserves:
# billing sets this from the team's plan; without it the config's allowance and the
# calendar month apply.
LeadTerms = Callable[[Connection], Awaitable[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class Summary:
    period: str
    allowance: int
    used: int
    balance: int
    currency: str
    entries: list[LedgerEntry]


class Credits:
    """The credits service; `stripe` is set when Stripe holds the prepaid balance."""

    def __init__(
        self,
        db: Database,
        billing: BillingConfig,
        clock: Callable[[], datetime],
        stripe: StripeBilling | None = None,
    ) -> None:
        self.db = db
        self.billing = billing
        self.clock = clock
        self.stripe = stripe
        self.holder = process_holder()
        self.terms: LeadTerms = self._config_terms
        # Stripe's balance is read outside the database, so a reservation's debit must
        # have landed before the next reservation reads it: one at a time.
        self._stripe_reserving = asyncio.Lock()

    def period(self) -> str:
        return period_key(self.clock(), self.billing.period)

    async def _config_terms(self, conn: Connection) -> tuple[str, int]:
        return self.period(), self.billing.lead_allowance

    async def prepaid_balance(self) -> int:
        if self.stripe is not None:
            try:
                return await self.stripe.prepaid_credits()
            except StripeFailed as exc:
                raise UpstreamFailed("the billing service is unavailable") from exc
        return await self.db.read(repo.prepaid_balance)

    async def prepaid_cents(self) -> int:
        """The prepaid balance as money, in cents of the billing currency."""
        if self.stripe is not None:
            try:
                return await self.stripe.balance_cents()
            except StripeFailed as exc:
                raise UpstreamFailed("the billing service is unavailable") from exc
        return await self.prepaid_balance() * self.billing.lead_price_cents

    async def reserve(self, user_id: str, requested: int) -> ReservationRow | None:
        """Clamp `requested` to remaining allowance + prepaid and hold that many credits;
        None when nothing is available (nothing is written then)."""
        if self.stripe is None:
            return await self._reserve(user_id, requested, stripe_credits=0)
        async with self._stripe_reserving:
            return await self._reserve(user_id, requested, stripe_credits=await self.prepaid_balance())

    async def _reserve(self, user_id: str, requested: int, stripe_credits: int) -> ReservationRow | None:
        async def hold(tx: Transaction) -> ReservationRow | None:
            period, allowance = await self.terms(tx.conn)
            allowance_left = max(0, allowance - await repo.allowance_held(tx.conn, period))
            if self.stripe is not None:
                awaiting = await repo.prepaid_awaiting_stripe(tx.conn)
                awaiting += await billing_repo.credits_awaiting_stripe(tx.conn)
                prepaid = max(0, stripe_credits - awaiting)
            else:
                prepaid = max(0, await repo.prepaid_balance(tx.conn))
            granted = min(requested, allowance_left + prepaid)
            if granted <= 0:
                return None
            from_allowance = min(granted, allowance_left)
            row = ReservationRow(
                id=new_id("lcr"),
                user_id=user_id,
                period=period,
                requested=requested,
                allowance_reserved=from_allowance,
                prepaid_reserved=granted - from_allowance,
                leads_stored=0,
                stripe_state="pending" if self.stripe is not None and granted > from_allowance else "none",
                holder=self.holder,
                created_at="",
                settled_at=None,
            )
            await repo.insert_reservation(tx, row)
            for source, amount in (("allowance", row.allowance_reserved), ("prepaid", row.prepaid_reserved)):
                if amount:
                    await repo.insert_entry(
                        tx, "reserve", source, amount, period, user_id=user_id, reservation_id=row.id
                    )
            return row

        row = await self.db.write(hold)
        if row is not None and row.stripe_state == "pending":
            try:
                await self._debit(row)
            except StripeFailed as exc:
                await self.settle_quietly(row.id)
                raise UpstreamFailed("the billing service is unavailable; nothing was reserved") from exc
        return row

    async def _debit(self, row: ReservationRow) -> None:
        assert self.stripe is not None
        try:
            await self.stripe.debit(row.id, row.prepaid_reserved)
        except StripeFailed as exc:
            if exc.rejected:
                await self.db.write(lambda tx: repo.set_stripe_state(tx, row.id, "void"))
            raise
        await self.db.write(lambda tx: repo.set_stripe_state(tx, row.id, "debited"))

    async def settle(self, reservation_id: str) -> None:
        """Consume what was stored and refund the rest; safe to repeat. Raises
        StripeFailed (the reservation stays open for a later attempt)."""
        row = await self.db.read(repo.get_reservation, reservation_id)
        if row is None or row.settled_at is not None:
            return
        if row.stripe_state == "pending" and self.stripe is not None:
            try:
                await self._debit(row)  # the same key: it happened once, or it happens now
            except StripeFailed as exc:
                if not exc.rejected:
                    raise
            row = await self.db.read(repo.get_reservation, reservation_id)
            assert row is not None
        from_allowance = min(row.leads_stored, row.allowance_reserved)
        from_prepaid = row.leads_stored - from_allowance
        refund_prepaid = row.prepaid_reserved - from_prepaid
        if row.stripe_state == "debited" and refund_prepaid and self.stripe is not None:
            await self.stripe.credit_back(row.id, refund_prepaid)

        async def book(tx: Transaction) -> None:
            if not await repo.mark_settled(tx, row.id):
                return
            moves = (
                ("consume", "allowance", from_allowance),
                ("consume", "prepaid", from_prepaid),
                ("refund", "allowance", row.allowance_reserved - from_allowance),
                ("refund", "prepaid", refund_prepaid),
            )
            for kind, source, amount in moves:
                if amount:
                    await repo.insert_entry(
                        tx, kind, source, amount, row.period, user_id=row.user_id, reservation_id=row.id
                    )

        await self.db.write(book)

    async def settle_quietly(self, reservation_id: str) -> bool:
        """Settle, or release the reservation to the recovery sweep if Stripe fails."""
        try:
            await self.settle(reservation_id)
            return True
        except StripeFailed:
            log.warning(
                "could not settle a lead credit reservation; it will be retried",
                extra={"reservation_id": reservation_id},
            )
            await self.db.write(lambda tx: repo.release_holder(tx, reservation_id))
            return False

    async def settle_abandoned(self) -> int:
        """Settle reservations whose process is gone (a crash) or which were released
        after a failed settlement; returns how many were settled."""
        settled = 0
        for row in await self.db.read(repo.open_reservations):
            if row.holder == self.holder or holder_alive(row.holder):
                continue
            if await self.settle_quietly(row.id):
                settled += 1
        return settled

    async def grant(self, user_id: str, credits: int, note: str = "") -> None:
        if not 0 < credits <= MAX_GRANT:
            raise ValidationFailed(f"credits must be between 1 and {MAX_GRANT}")
        if self.stripe is not None:
            grant_id = new_id("grt")
            try:
                await self.stripe.grant(grant_id, credits)
            except StripeFailed as exc:
                raise UpstreamFailed("the billing service is unavailable") from exc
            note = f"{note} ({grant_id})".strip()
        period = self.period()
        await self.db.write(
            lambda tx: repo.insert_entry(tx, "grant", "prepaid", credits, period, user_id=user_id, note=note)
        )

    async def summary(self, user_id: str | None, limit: int = 50) -> Summary:
        balance = await self.prepaid_balance()
        async with self.db.reading() as conn:
            period, allowance = await self.terms(conn)
            used = await repo.allowance_held(conn, period)
            entries = await repo.recent_entries(conn, user_id, limit)
        return Summary(period, allowance, used, balance, self.billing.currency, entries)


async def record_leads_stored(tx: Transaction, reservation_id: str, count: int) -> None:
    """Inside the transaction that stores the leads, so the count survives a crash exactly."""
    await repo.add_leads_stored(tx, reservation_id, count)


RECOVERY_INTERVAL_SECONDS = 60.0


def build_credits(db: Database, billing: BillingConfig, http: httpx.AsyncClient) -> Credits:
    stripe = StripeBilling(billing, http) if StripeBilling.configured(billing) else None
    return Credits(db, billing, utc_now, stripe)


async def settle_abandoned_periodically(credits: Credits) -> None:
    """At start (reservations a crash left open), then now and then (ones whose
    settlement failed because Stripe was unreachable)."""
    while True:
        try:
            settled = await credits.settle_abandoned()
            if settled:
                log.warning("settled lead credit reservations left open", extra={"count": settled})
        except Exception:
            log.exception("could not settle abandoned lead credit reservations")
        await asyncio.sleep(RECOVERY_INTERVAL_SECONDS)
