"""Request and response shapes of /api/phone-numbers and /api/inbound-configurations,
spelled exactly as the Telentir client sends and reads them (telentir-wire.md 6),
mixed case included."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from telentir_box.telephony.twilio_client import NumberType


def _text(max_length: int, min_length: int = 0) -> Any:
    return msgspec.Meta(min_length=min_length, max_length=max_length)


Id = Annotated[str, _text(100, 1)]
Name = Annotated[str, _text(200, 1)]
Description = Annotated[str, _text(2000)]
# An agent's avatar may be an inline image (data URL); the body limit bounds it too.
Avatar = Annotated[str, _text(262_144)]
Relations = Annotated[dict[str, Annotated[str, _text(200)]], msgspec.Meta(max_length=50)]
MAX_HUMAN_AGENTS = 50


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# ---- phone numbers -------------------------------------------------------------------


class Capabilities(msgspec.Struct):
    voice: bool
    sms: bool
    mms: bool


class Price(msgspec.Struct):
    currency: str
    amount: float


class QuotedPrice(msgspec.Struct):
    currency: str
    amount: float
    jwt: str


class PhoneNumberSearchResult(msgspec.Struct):
    name: str
    phoneNumber: str
    capabilities: Capabilities
    addressRequirements: str | None
    latitude: float | None
    longitude: float | None
    locality: str | None
    price: QuotedPrice | None


class Country(msgspec.Struct):
    name: str
    code: str
    types: list[NumberType]


class PhoneNumberReference(msgspec.Struct):
    type: str
    sid: str


class PhoneNumberMetadata(msgspec.Struct):
    capabilities: Capabilities
    price: Price
    iso_country: str
    number_type: NumberType
    address_sid: str | None


class PhoneNumberRecord(msgspec.Struct):
    id: str
    user_id: str
    name: str
    description: str | None
    phone_number: str
    # A number bought through the box answers inbound calls and places outbound ones.
    type: Literal["inbound", "outbound", "both"]
    reference: PhoneNumberReference
    metadata: PhoneNumberMetadata
    inbound_configuration_id: str | None
    created_at: str
    updated_at: str


class PurchaseBody(_Strict):
    jwt: Annotated[str, _text(8192, 1)]
    description: Description | None = None
    addressSid: Annotated[str, msgspec.Meta(pattern="^AD[0-9a-fA-F]{32}$")] | None = None


class AddressBody(_Strict):
    street: Annotated[str, _text(200, 1)]
    city: Annotated[str, _text(100, 1)]
    region: Annotated[str, _text(100, 1)]
    postalCode: Annotated[str, _text(20, 1)]
    isoCountry: Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{2}$")]
    friendlyName: Annotated[str, _text(200, 1)] | None = None
    emergencyEnabled: bool | None = None
    autoCorrectAddress: bool | None = None
    streetSecondary: Annotated[str, _text(200)] | None = None


class PhoneNumberPatch(_Strict):
    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET


# ---- inbound configurations ----------------------------------------------------------


class _Agent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True, tag_field="type"):
    id: Id
    avatar: Avatar
    firstName: Annotated[str, _text(100)]
    lastName: Annotated[str, _text(100)]
    language: Annotated[str, _text(35, 1)]
    relations: Relations | None = None


class HumanAgent(_Agent, tag="human"):
    phoneNumber: Annotated[str, _text(32, 1)]


class AiAgent(_Agent, tag="ai"):
    persona: Annotated[str, _text(200, 1)]


Agent = HumanAgent | AiAgent
HumanAgents = Annotated[list[Agent], msgspec.Meta(max_length=MAX_HUMAN_AGENTS)]


class PromptText(_Strict):
    text: Annotated[str, _text(100_000, 1)]


class Pathway(_Strict, omit_defaults=True):
    id: Id
    name: Annotated[str, _text(200)]
    nodes: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=2000)]
    edges: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=4000)]
    description: Annotated[str, _text(2000)] | None = None
    status: Annotated[str, _text(20)] | None = None
    relations: Relations | None = None


class PromptSource(_Strict, tag_field="type", tag="prompt"):
    prompt: PromptText


class PathwaySource(_Strict, tag_field="type", tag="pathway"):
    pathway: Pathway | None


Source = PromptSource | PathwaySource


class InboundConfigurationBody(_Strict):
    name: Name
    agent: Agent
    source: Source
    humanAgents: HumanAgents = []
    description: Description | None = None
    knowledge_base_id: Id | None = None


class InboundConfigurationPatch(_Strict):
    """Fields present are set, null included; humanAgents null means none."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    knowledge_base_id: Id | UnsetType | None = UNSET
    agent: Agent | UnsetType = UNSET
    source: Source | UnsetType = UNSET
    humanAgents: HumanAgents | UnsetType | None = UNSET


class InboundConfiguration(msgspec.Struct):
    id: str
    user_id: str
    name: str
    description: str | None
    knowledge_base_id: str | None
    metadata: dict[str, Any]
    agent: Agent
    humanAgents: list[Agent]
    source: Source
    created_at: str
    updated_at: str


class PhoneNumberAction(_Strict):
    action: Literal["attach", "detach"]
    phone_number_id: Id


class PhoneNumberActionResult(msgspec.Struct):
    ok: bool
    phone_number: PhoneNumberRecord
