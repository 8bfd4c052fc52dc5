"""The one Twilio module: the twilio library's transport over the box's shared httpx
client (so calls never block the event loop), rebased onto [twilio] api_base, and the
number calls the box makes (countries, search, pricing, purchase, release, addresses),
answering plain values and the box's own errors."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from telentir_box.config import TwilioConfig
from telentir_box.errors import AppError, NotFound, UpstreamFailed

log = logging.getLogger("telentir_box.twilio")
TWILIO_API = "https://api.twilio.com"
NumberType = Literal["local", "toll_free", "mobile"]
NUMBER_TYPES: tuple[NumberType, ...] = ("local", "toll_free", "mobile")
# Pricing v1 names the types with a space; the search resource says TollFree.
_PRICING_TYPES: dict[str, NumberType] = {"local": "local", "toll free": "toll_free", "mobile": "mobile"}


class TwilioNotConfigured(AppError):
    code, status, default_message = (
        "TWILIO_NOT_CONFIGURED",
        503,
        "Twilio is not configured: set [twilio] account_sid and auth_token",
    )


class TwilioRejected(AppError):
    code, status, default_message = "TWILIO_REJECTED", 400, "Twilio refused the request"


class HttpxTwilioTransport(AsyncHttpClient):
    """The twilio library's transport, carried by the box's httpx client. With an
    api_base other than Twilio's own, every Twilio host (api, pricing) is sent there:
    its paths do not collide, so one local server or proxy serves them all."""

    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        super().__init__(logger=log, is_async=True)
        self._http = http
        base = api_base.rstrip("/")
        self._base = None if base == TWILIO_API else base

    def _rebase(self, uri: str) -> str:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if self._base is None or not (host == "twilio.com" or host.endswith(".twilio.com")):
            return uri
        return self._base + uri[len(f"{parts.scheme}://{parts.netloc}") :]

    async def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the twilio transport interface
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        response = await self._http.request(
            method,
            self._rebase(uri),
            params=params,  # type: ignore[arg-type]
            data=data,  # type: ignore[arg-type]
            headers=headers,
            auth=auth,
            timeout=timeout or 30.0,
            follow_redirects=allow_redirects,
        )
        return TwilioResponse(response.status_code, response.text, response.headers)


def twilio_configured(config: TwilioConfig) -> bool:
    return bool(config.account_sid and config.auth_token)


@dataclass(frozen=True, slots=True)
class CountryOffer:
    name: str
    code: str
    types: list[NumberType]


@dataclass(frozen=True, slots=True)
class AvailableNumber:
    friendly_name: str
    phone_number: str
    locality: str | None
    latitude: float | None
    longitude: float | None
    address_requirements: str | None
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True)
class MonthlyPrice:
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class BoughtNumber:
    sid: str
    phone_number: str
    friendly_name: str | None
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True)
class AddressInput:
    customer_name: str
    street: str
    city: str
    region: str
    postal_code: str
    iso_country: str
    friendly_name: str | None
    emergency_enabled: bool | None
    auto_correct_address: bool | None
    street_secondary: str | None


class TwilioClient:
    def __init__(self, config: TwilioConfig, http: httpx.AsyncClient) -> None:
        self._transport = HttpxTwilioTransport(http, config.api_base)
        self._http = http
        self._auth = (config.account_sid, config.auth_token)
        self._client = Client(config.account_sid, config.auth_token, http_client=self._transport)

    async def place_call(
        self, *, to: str, from_: str, voice_url: str, status_url: str, recording_url: str
    ) -> str:
        """Dial `to` from `from_`, recording the call; Twilio fetches `voice_url` for
        what to do once answered. Answers the CallSid."""
        async with _calling("place the call"):
            call = await self._client.api.v2010.account.calls.create_async(
                to=to,
                from_=from_,
                url=voice_url,
                method="POST",
                status_callback=status_url,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                status_callback_method="POST",
                record=True,
                recording_status_callback=recording_url,
                recording_status_callback_event=["completed", "absent"],
                recording_status_callback_method="POST",
                machine_detection="Enable",
                timeout=30,
            )
        if not call.sid:
            raise UpstreamFailed("Twilio answered the call without an id")
        return call.sid

    async def fetch_recording(self, recording_url: str, max_bytes: int) -> bytes:
        """The MP3 of a recording named by a (signed) recording callback. Only a Twilio
        URL is fetched, with the account's credentials, following Twilio's redirects."""
        url = self._transport._rebase(recording_url)
        if url == recording_url and not _is_twilio_host(recording_url):
            raise UpstreamFailed("The recording URL is not Twilio's")
        try:
            async with self._http.stream(
                "GET", url + ".mp3", auth=self._auth, follow_redirects=True, timeout=120.0
            ) as response:
                if response.status_code != 200:
                    raise UpstreamFailed(f"Twilio answered {response.status_code} for the recording")
                audio = bytearray()
                async for chunk in response.aiter_bytes():
                    audio += chunk
                    if len(audio) > max_bytes:
                        raise UpstreamFailed("The recording is larger than the box accepts")
        except httpx.HTTPError as exc:
            log.warning("Twilio recording not fetched", extra={"error": type(exc).__name__})
            raise UpstreamFailed("Twilio failed to send the recording") from None
        return bytes(audio)

    async def delete_recording(self, sid: str) -> None:
        try:
            async with _calling("delete the recording"):
                await self._client.api.v2010.account.recordings(sid).delete_async()
        except NotFound:
            log.info("Twilio no longer had the recording", extra={"sid": sid})

    async def list_countries(self) -> list[CountryOffer]:
        async with _calling("list the countries it sells numbers in"):
            countries = await self._client.api.v2010.account.available_phone_numbers.list_async()
        offers = []
        for country in countries:
            uris = country.subresource_uris or {}
            types = [t for t in NUMBER_TYPES if t in uris]
            if types and country.country_code:
                offers.append(
                    CountryOffer(country.country or country.country_code, country.country_code, types)
                )
        return offers

    async def search(self, country: str, number_type: NumberType, limit: int) -> list[AvailableNumber]:
        resource = self._client.api.v2010.account.available_phone_numbers(country)
        listing = {"local": resource.local, "toll_free": resource.toll_free, "mobile": resource.mobile}
        async with _calling(f"search {number_type} numbers in {country}"):
            found = await listing[number_type].list_async(voice_enabled=True, limit=limit)
        return [
            AvailableNumber(
                friendly_name=n.friendly_name or n.phone_number,
                phone_number=n.phone_number,
                locality=n.locality or None,
                latitude=_coordinate(n.latitude),
                longitude=_coordinate(n.longitude),
                address_requirements=n.address_requirements,
                capabilities=capability_flags(n.capabilities),
            )
            for n in found
            if n.phone_number
        ]

    async def monthly_prices(self, country: str) -> dict[NumberType, MonthlyPrice]:
        async with _calling(f"price numbers in {country}"):
            pricing = await self._client.pricing.v1.phone_numbers.countries(country).fetch_async()
        prices: dict[NumberType, MonthlyPrice] = {}
        for entry in pricing.phone_number_prices or []:
            number_type = _PRICING_TYPES.get(str(entry.get("number_type", "")).lower())
            amount = _decimal_or_none(entry.get("current_price") or entry.get("base_price"))
            if number_type and amount is not None and pricing.price_unit:
                prices[number_type] = MonthlyPrice(pricing.price_unit, amount)
        return prices

    async def buy(
        self,
        phone_number: str,
        *,
        voice_url: str,
        status_url: str,
        address_sid: str | None,
    ) -> BoughtNumber:
        async with _calling(f"sell the number {phone_number}"):
            bought = await self._client.api.v2010.account.incoming_phone_numbers.create_async(
                phone_number=phone_number,
                voice_url=voice_url,
                voice_method="POST",
                status_callback=status_url,
                status_callback_method="POST",
                address_sid=address_sid,
            )
        return BoughtNumber(
            sid=bought.sid,
            phone_number=bought.phone_number or phone_number,
            friendly_name=bought.friendly_name,
            capabilities=capability_flags(bought.capabilities),
        )

    async def release(self, sid: str) -> None:
        """Give the number back to Twilio; one Twilio no longer has is already released."""
        try:
            async with _calling("release the number"):
                await self._client.api.v2010.account.incoming_phone_numbers(sid).delete_async()
        except NotFound:
            log.warning("Twilio no longer had the number being released", extra={"sid": sid})

    async def create_address(self, address: AddressInput) -> str:
        async with _calling("register the address"):
            created = await self._client.api.v2010.account.addresses.create_async(
                customer_name=address.customer_name,
                street=address.street,
                city=address.city,
                region=address.region,
                postal_code=address.postal_code,
                iso_country=address.iso_country,
                friendly_name=address.friendly_name,
                emergency_enabled=address.emergency_enabled,
                auto_correct_address=address.auto_correct_address,
                street_secondary=address.street_secondary,
            )
        if not created.sid:
            raise UpstreamFailed("Twilio answered the address without an id")
        return created.sid


def _is_twilio_host(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def build_twilio_client(config: TwilioConfig, http: httpx.AsyncClient) -> TwilioClient | None:
    return TwilioClient(config, http) if twilio_configured(config) else None


def capability_flags(raw: Any) -> dict[str, bool]:
    # Available numbers have said "SMS"/"MMS" where owned numbers say "sms"/"mms".
    folded = {str(k).lower(): bool(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return {name: folded.get(name, False) for name in ("voice", "sms", "mms")}


@asynccontextmanager
async def _calling(what: str) -> AsyncIterator[None]:
    """Turn Twilio's failures into the box's errors. Twilio's own message names the
    account and its URLs, so the client sees only what failed and Twilio's error code."""
    try:
        yield
    except TwilioException as exc:
        status, code = _refusal(exc)
        log.warning("Twilio refused a call", extra={"what": what, "status": status, "error": str(exc)})
        if status == 404:
            raise NotFound(f"Twilio could not {what}: not found") from None
        if status in (401, 403):
            raise UpstreamFailed("Twilio refused the box's credentials") from None
        if status is not None and 400 <= status < 500:
            raise TwilioRejected(f"Twilio refused to {what} (Twilio error {code})") from None
        raise UpstreamFailed(f"Twilio failed to {what}") from None
    except httpx.HTTPError as exc:
        log.warning("Twilio could not be reached", extra={"what": what, "error": str(exc)})
        raise UpstreamFailed(f"Twilio failed to {what}") from None


def _refusal(exc: TwilioException) -> tuple[int | None, object]:
    """The HTTP status and Twilio error code behind `exc`. A list page that is not a 200
    raises a bare TwilioException carrying the response, not a TwilioRestException."""
    if isinstance(exc, TwilioRestException):
        return exc.status, exc.code
    response = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(response, TwilioResponse):
        return None, None
    try:
        code = json.loads(response.text).get("code")
    except (ValueError, AttributeError):
        code = None
    return response.status_code, code or response.status_code


def _decimal_or_none(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _coordinate(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None
