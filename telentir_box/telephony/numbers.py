"""Phone numbers: search with signed price quotes, purchase through Twilio with the box's
webhooks set, Twilio addresses, and the user's numbers (list, get, rename, release)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from telentir_box.db import telephony as repo
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.errors import NotFound, PublicUrlNotConfigured, ValidationFailed
from telentir_box.ids import is_valid_id, new_id
from telentir_box.telephony.models import (
    AddressBody,
    Capabilities,
    Country,
    PhoneNumberMetadata,
    PhoneNumberPatch,
    PhoneNumberRecord,
    PhoneNumberReference,
    PhoneNumberSearchResult,
    Price,
    PurchaseBody,
    QuotedPrice,
)
from telentir_box.telephony.quotes import Quote, QuotedNumber, QuoteSigner, QuoteUsed
from telentir_box.telephony.twilio_client import (
    AddressInput,
    AvailableNumber,
    BoughtNumber,
    MonthlyPrice,
    NumberType,
    TwilioClient,
    TwilioNotConfigured,
)

log = logging.getLogger("telentir_box.telephony")
PROVIDERS = ("twilio",)
SEARCH_LIMIT = 20
NUMBER_PREFIX = "num"
VOICE_WEBHOOK = "/api/webhooks/twilio/voice"
STATUS_WEBHOOK = "/api/webhooks/twilio/status"


class PhoneNumbers:
    def __init__(
        self, db: Database, twilio: TwilioClient | None, quotes: QuoteSigner, public_url: str
    ) -> None:
        self._db = db
        self._twilio = twilio
        self._quotes = quotes
        self._public_url = public_url.rstrip("/")
        # Quotes being bought with right now: a second concurrent use is refused before
        # it reaches Twilio (the recorded jti refuses any later one).
        self._in_flight: set[str] = set()

    def providers(self) -> list[str]:
        return list(PROVIDERS) if self._twilio is not None else []

    def _provider(self, provider: str) -> TwilioClient:
        if provider not in PROVIDERS:
            raise NotFound("Unknown phone number provider")
        if self._twilio is None:
            raise TwilioNotConfigured()
        return self._twilio

    async def countries(self, provider: str) -> list[Country]:
        offers = await self._provider(provider).list_countries()
        return [Country(name=o.name, code=o.code, types=o.types) for o in offers]

    async def search(
        self, user_id: str, provider: str, country: str, number_type: NumberType
    ) -> list[PhoneNumberSearchResult]:
        twilio = self._provider(provider)
        country = country.upper()
        found, prices = await asyncio.gather(
            twilio.search(country, number_type, SEARCH_LIMIT), twilio.monthly_prices(country)
        )
        price = prices.get(number_type)
        return [self._search_result(user_id, n, number_type, country, price) for n in found]

    def _search_result(
        self,
        user_id: str,
        found: AvailableNumber,
        number_type: NumberType,
        country: str,
        price: MonthlyPrice | None,
    ) -> PhoneNumberSearchResult:
        quoted = None
        if price is not None:
            number = QuotedNumber(
                provider="twilio",
                phone_number=found.phone_number,
                name=found.friendly_name[:200],
                number_type=number_type,
                iso_country=country,
                currency=price.currency,
                amount=f"{price.amount:f}",
            )
            quoted = QuotedPrice(
                currency=price.currency, amount=float(price.amount), jwt=self._quotes.sign(user_id, number)
            )
        return PhoneNumberSearchResult(
            name=found.friendly_name,
            phoneNumber=found.phone_number,
            capabilities=Capabilities(**found.capabilities),
            addressRequirements=found.address_requirements,
            latitude=found.latitude,
            longitude=found.longitude,
            locality=found.locality,
            price=quoted,
        )

    async def purchase(self, user_id: str, body: PurchaseBody) -> str:
        """Buy the quoted number; the new number's id. Single use of the quote holds by
        recording its jti in the transaction that records the number."""
        twilio = self._provider("twilio")
        if not self._public_url:
            raise PublicUrlNotConfigured()
        quote = self._quotes.verify(body.jwt, user_id)
        async with self._db.reading() as conn:
            if await repo.quote_spent(conn, quote.jti):
                raise QuoteUsed()
            if body.addressSid and not await repo.address_exists(conn, user_id, body.addressSid):
                raise NotFound("Address not found")
        if quote.jti in self._in_flight:
            raise QuoteUsed()
        self._in_flight.add(quote.jti)
        try:
            bought = await twilio.buy(
                quote.number.phone_number,
                voice_url=self._public_url + VOICE_WEBHOOK,
                status_url=self._public_url + STATUS_WEBHOOK,
                address_sid=body.addressSid,
            )
            try:
                return await self._db.write(lambda tx: _record_purchase(tx, quote, body, bought))
            except BaseException:
                await _give_back(twilio, bought.sid)
                raise
        finally:
            self._in_flight.discard(quote.jti)

    async def save_address(self, user_id: str, body: AddressBody) -> str:
        """Register the address with Twilio (for numbers that need one); its SID."""
        twilio = self._provider("twilio")
        async with self._db.reading() as conn:
            user = await users_repo.get_user(conn, user_id)
        account_name = (f"{user.first_name} {user.last_name}".strip() or user.email) if user else ""
        sid = await twilio.create_address(
            AddressInput(
                customer_name=body.friendlyName or account_name,
                street=body.street,
                city=body.city,
                region=body.region,
                postal_code=body.postalCode,
                iso_country=body.isoCountry.upper(),
                friendly_name=body.friendlyName,
                emergency_enabled=body.emergencyEnabled,
                auto_correct_address=body.autoCorrectAddress,
                street_secondary=body.streetSecondary,
            )
        )
        await self._db.write(lambda tx: repo.insert_address(tx, user_id, sid))
        return sid

    async def list_numbers(self, user_id: str) -> list[PhoneNumberRecord]:
        async with self._db.reading() as conn:
            rows = await repo.list_phone_numbers(conn, user_id)
        return [number_record(row) for row in rows]

    async def get_number(self, user_id: str, number_id: str) -> PhoneNumberRecord:
        return number_record(await self._row(user_id, number_id))

    async def update_number(self, user_id: str, number_id: str, patch: PhoneNumberPatch) -> PhoneNumberRecord:
        fields = {
            name: value
            for name in ("name", "description")
            if (value := getattr(patch, name)) is not msgspec.UNSET
        }
        if not fields:
            raise ValidationFailed("Nothing to update: give `name` or `description`")
        row = None
        if is_valid_id(number_id, NUMBER_PREFIX):
            row = await self._db.write(lambda tx: repo.update_phone_number(tx, user_id, number_id, fields))
        if row is None:
            raise NotFound("Phone number not found")
        return number_record(row)

    async def delete_number(self, user_id: str, number_id: str) -> None:
        """Release the number at Twilio, then forget it."""
        twilio = self._provider("twilio")
        row = await self._row(user_id, number_id)
        await twilio.release(row.sid)
        await self._db.write(lambda tx: repo.delete_phone_number(tx, user_id, number_id))

    async def _row(self, user_id: str, number_id: str) -> repo.PhoneNumberRow:
        row = None
        if is_valid_id(number_id, NUMBER_PREFIX):
            async with self._db.reading() as conn:
                row = await repo.get_phone_number(conn, user_id, number_id)
        if row is None:
            raise NotFound("Phone number not found")
        return row


async def _give_back(twilio: TwilioClient, sid: str) -> None:
    """Release a number bought but not recorded, so the account does not pay for a
    number nobody sees; the purchase's own error is the one the caller gets."""
    log.warning("releasing a number bought but not recorded", extra={"sid": sid})
    try:
        await asyncio.shield(twilio.release(sid))
    except Exception:
        log.exception("could not release a number bought but not recorded", extra={"sid": sid})


async def _record_purchase(tx: Transaction, quote: Quote, body: PurchaseBody, bought: BoughtNumber) -> str:
    expires_at = iso(datetime.fromtimestamp(quote.expires_at, UTC))
    if not await repo.spend_quote(tx, quote.jti, quote.user_id, expires_at):
        raise QuoteUsed()
    number = quote.number
    number_id = new_id(NUMBER_PREFIX)
    await repo.insert_phone_number(
        tx,
        repo.PhoneNumberRow(
            id=number_id,
            user_id=quote.user_id,
            name=number.name or number.phone_number,
            description=body.description,
            phone_number=number.phone_number,
            provider=number.provider,
            sid=bought.sid,
            number_type=number.number_type,
            iso_country=number.iso_country,
            capabilities=msgspec.json.encode(bought.capabilities).decode(),
            price_currency=number.currency,
            price_amount=number.amount,
            address_sid=body.addressSid,
            inbound_configuration_id=None,
            created_at=tx.now,
            updated_at=tx.now,
        ),
    )
    return number_id


def number_record(row: repo.PhoneNumberRow) -> PhoneNumberRecord:
    return PhoneNumberRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        description=row.description,
        phone_number=row.phone_number,
        type="both",
        reference=PhoneNumberReference(type=row.provider, sid=row.sid),
        metadata=PhoneNumberMetadata(
            capabilities=msgspec.json.decode(row.capabilities, type=Capabilities),
            price=Price(currency=row.price_currency, amount=float(Decimal(row.price_amount))),
            iso_country=row.iso_country,
            number_type=row.number_type,  # type: ignore[arg-type]
            address_sid=row.address_sid,
        ),
        inbound_configuration_id=row.inbound_configuration_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
