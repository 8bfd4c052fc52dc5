"""HTTP routes of /api/inbound-configurations: thin adapters over the inbound service.
None of them needs Twilio."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.errors import Conflict, NotFound
from telentir_box.telephony import inbound
from telentir_box.telephony.models import (
    InboundConfiguration,
    InboundConfigurationBody,
    InboundConfigurationPatch,
    PhoneNumberAction,
    PhoneNumberActionResult,
)
from telentir_box.web.openapi import errors


class InboundConfigurationController(Controller):
    path = "/inbound-configurations"
    guards = [requires_object_auth]
    tags = ["inbound configurations"]

    @get("", summary="The caller's inbound configurations")
    async def list_configurations(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[InboundConfiguration]:
        return await inbound.list_configurations(box.db, principal.user_id)

    @put("", summary="Create an inbound configuration", responses=errors(NotFound))
    async def create_configuration(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[InboundConfigurationBody],
    ) -> InboundConfiguration:
        return await inbound.create_configuration(box.db, principal.user_id, data)

    @get("/{config_id:str}", summary="One inbound configuration")
    async def get_configuration(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], config_id: FromPath[str]
    ) -> InboundConfiguration:
        return await inbound.get_configuration(box.db, principal.user_id, config_id)

    @put("/{config_id:str}", summary="Replace an inbound configuration")
    async def replace_configuration(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        config_id: FromPath[str],
        data: JSONBody[InboundConfigurationBody],
    ) -> InboundConfiguration:
        return await inbound.replace_configuration(box.db, principal.user_id, config_id, data)

    @patch("/{config_id:str}", summary="Set the fields present (null included); an empty patch is a 400")
    async def patch_configuration(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        config_id: FromPath[str],
        data: JSONBody[InboundConfigurationPatch],
    ) -> InboundConfiguration:
        return await inbound.patch_configuration(box.db, principal.user_id, config_id, data)

    @post(
        "/{config_id:str}",
        status_code=200,
        summary="Attach a phone number to the configuration, or detach it",
        responses=errors(Conflict),
    )
    async def act_on_number(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        config_id: FromPath[str],
        data: JSONBody[PhoneNumberAction],
    ) -> PhoneNumberActionResult:
        return await inbound.act_on_number(box.db, principal.user_id, config_id, data)

    @delete("/{config_id:str}", summary="Delete an inbound configuration; its numbers are detached")
    async def delete_configuration(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], config_id: FromPath[str]
    ) -> None:
        await inbound.delete_configuration(box.db, principal.user_id, config_id)


inbound_configuration_routes = [InboundConfigurationController]
