"""Inbound configurations: what answers a call to a number (agent, prompt or pathway,
human agents, knowledge base), and which of the user's numbers each answers for. A
number answers for at most one configuration; deleting one detaches its numbers."""

from __future__ import annotations

from typing import Any

import msgspec

from telentir_box.db import telephony as repo
from telentir_box.db.connection import Connection
from telentir_box.db.database import Database, Transaction
from telentir_box.errors import Conflict, NotFound, ValidationFailed
from telentir_box.ids import is_valid_id, new_id
from telentir_box.telephony.models import (
    Agent,
    InboundConfiguration,
    InboundConfigurationBody,
    InboundConfigurationPatch,
    PhoneNumberAction,
    PhoneNumberActionResult,
    Source,
)
from telentir_box.telephony.numbers import NUMBER_PREFIX, number_record

CONFIGURATION_PREFIX = "inb"
# Body field -> column, for the fields a replace or a patch sets.
_COLUMNS = {
    "name": "name",
    "description": "description",
    "knowledge_base_id": "knowledge_base_id",
    "agent": "agent",
    "humanAgents": "human_agents",
    "source": "source",
}
_JSON_COLUMNS = {"agent", "human_agents", "source"}


async def list_configurations(db: Database, user_id: str) -> list[InboundConfiguration]:
    async with db.reading() as conn:
        rows = await repo.list_configurations(conn, user_id)
    return [configuration_view(row) for row in rows]


async def get_configuration(db: Database, user_id: str, config_id: str) -> InboundConfiguration:
    row = None
    if is_valid_id(config_id, CONFIGURATION_PREFIX):
        async with db.reading() as conn:
            row = await repo.get_configuration(conn, user_id, config_id)
    if row is None:
        raise NotFound("Inbound configuration not found")
    return configuration_view(row)


async def create_configuration(
    db: Database, user_id: str, body: InboundConfigurationBody
) -> InboundConfiguration:
    config_id = new_id(CONFIGURATION_PREFIX)
    columns = _columns(_body_fields(body))

    async def insert(tx: Transaction) -> repo.InboundConfigurationRow:
        await _check_knowledge_base(tx.conn, user_id, body.knowledge_base_id)
        row = repo.InboundConfigurationRow(
            id=config_id,
            user_id=user_id,
            metadata="{}",
            created_at=tx.now,
            updated_at=tx.now,
            **columns,
        )
        await repo.insert_configuration(tx, row)
        return row

    return configuration_view(await db.write(insert))


async def replace_configuration(
    db: Database, user_id: str, config_id: str, body: InboundConfigurationBody
) -> InboundConfiguration:
    return await _update(db, user_id, config_id, _body_fields(body))


async def patch_configuration(
    db: Database, user_id: str, config_id: str, patch: InboundConfigurationPatch
) -> InboundConfiguration:
    fields = {name: value for name in _COLUMNS if (value := getattr(patch, name)) is not msgspec.UNSET}
    if not fields:
        raise ValidationFailed("Empty patch: give at least one field to change")
    if "humanAgents" in fields and fields["humanAgents"] is None:
        fields["humanAgents"] = []
    return await _update(db, user_id, config_id, fields)


async def delete_configuration(db: Database, user_id: str, config_id: str) -> None:
    deleted = is_valid_id(config_id, CONFIGURATION_PREFIX) and await db.write(
        lambda tx: repo.delete_configuration(tx, user_id, config_id)
    )
    if not deleted:
        raise NotFound("Inbound configuration not found")


async def act_on_number(
    db: Database, user_id: str, config_id: str, body: PhoneNumberAction
) -> PhoneNumberActionResult:
    """Attach a number to the configuration, or detach it. A number attached to another
    configuration is a 409: it must be detached there first."""
    if not is_valid_id(config_id, CONFIGURATION_PREFIX):
        raise NotFound("Inbound configuration not found")

    async def act(tx: Transaction) -> repo.PhoneNumberRow:
        if await repo.get_configuration(tx.conn, user_id, config_id) is None:
            raise NotFound("Inbound configuration not found")
        number = None
        if is_valid_id(body.phone_number_id, NUMBER_PREFIX):
            number = await repo.get_phone_number(tx.conn, user_id, body.phone_number_id)
        if number is None:
            raise NotFound("Phone number not found")
        if number.inbound_configuration_id not in (None, config_id):
            raise Conflict(
                "The phone number answers for another inbound configuration: detach it there first"
            )
        target = config_id if body.action == "attach" else None
        updated = await repo.set_number_configuration(tx, user_id, number.id, target)
        assert updated is not None  # read in this same transaction
        return updated

    return PhoneNumberActionResult(ok=True, phone_number=number_record(await db.write(act)))


async def _update(db: Database, user_id: str, config_id: str, fields: dict[str, Any]) -> InboundConfiguration:
    if not is_valid_id(config_id, CONFIGURATION_PREFIX):
        raise NotFound("Inbound configuration not found")
    columns = _columns(fields)

    async def update(tx: Transaction) -> repo.InboundConfigurationRow | None:
        await _check_knowledge_base(tx.conn, user_id, fields.get("knowledge_base_id"))
        return await repo.update_configuration(tx, user_id, config_id, columns)

    row = await db.write(update)
    if row is None:
        raise NotFound("Inbound configuration not found")
    return configuration_view(row)


async def _check_knowledge_base(conn: Connection, user_id: str, kb_id: str | None) -> None:
    # Another user's knowledge base is, for this caller, one that does not exist.
    if kb_id is not None and not await repo.knowledge_base_exists(conn, user_id, kb_id):
        raise NotFound("Knowledge base not found")


def _body_fields(body: InboundConfigurationBody) -> dict[str, Any]:
    return {name: getattr(body, name) for name in _COLUMNS}


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Body fields as column values: the agent, human agents and source as JSON text."""
    columns = {}
    for name, value in fields.items():
        column = _COLUMNS[name]
        columns[column] = msgspec.json.encode(value).decode() if column in _JSON_COLUMNS else value
    return columns


def configuration_view(row: repo.InboundConfigurationRow) -> InboundConfiguration:
    return InboundConfiguration(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        description=row.description,
        knowledge_base_id=row.knowledge_base_id,
        metadata=msgspec.json.decode(row.metadata),
        agent=msgspec.json.decode(row.agent, type=Agent),  # type: ignore[arg-type]
        humanAgents=msgspec.json.decode(row.human_agents, type=list[Agent]),  # type: ignore[arg-type]
        source=msgspec.json.decode(row.source, type=Source),  # type: ignore[arg-type]
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
