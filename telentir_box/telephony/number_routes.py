"""HTTP routes of /api/phone-numbers: thin adapters over the phone-number service.
The static paths (/search, /address) win over /{number_id}, as the client needs."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, MediaType, delete, get, patch, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.errors import NotFound, UpstreamFailed
from telentir_box.telephony.models import (
    AddressBody,
    Country,
    PhoneNumberPatch,
    PhoneNumberRecord,
    PhoneNumberSearchResult,
    PurchaseBody,
)
from telentir_box.telephony.quotes import QuoteInvalid, QuoteUsed
from telentir_box.telephony.twilio_client import NumberType, TwilioNotConfigured, TwilioRejected
from telentir_box.web.openapi import errors

CountryCode = Annotated[
    str, QueryParameter(pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2 country code")
]
TypeQuery = Annotated[NumberType, QueryParameter(name="type", description="local, toll_free or mobile")]


def json_string(value: str) -> str:
    """The client reads these answers as JSON: a quoted string. Litestar sends a `str`
    as it is, so the quoting is done here."""
    return msgspec.json.encode(value).decode()


class PhoneNumberController(Controller):
    path = "/phone-numbers"
    guards = [requires_object_auth]
    tags = ["phone numbers"]

    @get("", summary="The caller's phone numbers")
    async def list_numbers(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[PhoneNumberRecord]:
        return await box.phone_numbers.list_numbers(principal.user_id)

    @put(
        "",
        summary="Buy the number a price quote names; answers its id as a JSON string",
        media_type=MediaType.JSON,
        responses=errors(QuoteInvalid, NotFound, QuoteUsed, UpstreamFailed, TwilioNotConfigured),
    )
    async def purchase(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[PurchaseBody]
    ) -> str:
        return json_string(await box.phone_numbers.purchase(principal.user_id, data))

    @put(
        "/address",
        summary="Register an address with Twilio; answers its SID as a JSON string",
        media_type=MediaType.JSON,
        responses=errors(TwilioRejected, UpstreamFailed, TwilioNotConfigured),
    )
    async def save_address(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[AddressBody]
    ) -> str:
        return json_string(await box.phone_numbers.save_address(principal.user_id, data))

    @get("/search", summary="The providers the box can buy numbers from (empty without Twilio)")
    async def list_providers(self, box: NamedDependency[Box]) -> list[str]:
        return box.phone_numbers.providers()

    @get(
        "/search/{provider:str}/countries",
        summary="Countries with the number types on offer",
        responses=errors(TwilioNotConfigured, UpstreamFailed),
    )
    async def list_countries(self, box: NamedDependency[Box], provider: FromPath[str]) -> list[Country]:
        return await box.phone_numbers.countries(provider)

    @get(
        "/search/{provider:str}",
        summary="Numbers for sale, each with its monthly price and a signed quote",
        responses=errors(TwilioNotConfigured, UpstreamFailed),
    )
    async def search(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        provider: FromPath[str],
        country: CountryCode,
        number_type: TypeQuery,
    ) -> list[PhoneNumberSearchResult]:
        return await box.phone_numbers.search(principal.user_id, provider, country, number_type)

    @get("/{number_id:str}", summary="One of the caller's phone numbers")
    async def get_number(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], number_id: FromPath[str]
    ) -> PhoneNumberRecord:
        return await box.phone_numbers.get_number(principal.user_id, number_id)

    @patch("/{number_id:str}", summary="Rename a number or change its description")
    async def update_number(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        number_id: FromPath[str],
        data: JSONBody[PhoneNumberPatch],
    ) -> PhoneNumberRecord:
        return await box.phone_numbers.update_number(principal.user_id, number_id, data)

    @delete(
        "/{number_id:str}",
        summary="Release the number at Twilio and forget it",
        responses=errors(TwilioNotConfigured, UpstreamFailed),
    )
    async def delete_number(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], number_id: FromPath[str]
    ) -> None:
        await box.phone_numbers.delete_number(principal.user_id, number_id)


phone_number_routes = [PhoneNumberController]
