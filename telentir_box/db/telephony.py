"""Repository for telephony: phone numbers, their Twilio addresses, spent price quotes
and inbound configurations. Every query names the owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telentir_box.db.connection import Connection, Row
from telentir_box.db.database import Transaction


@dataclass(frozen=True, slots=True)
class PhoneNumberRow:
    id: str
    user_id: str
    name: str
    description: str | None
    phone_number: str
    provider: str
    sid: str
    number_type: str
    iso_country: str
    capabilities: str
    price_currency: str
    price_amount: str
    address_sid: str | None
    inbound_configuration_id: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class InboundConfigurationRow:
    id: str
    user_id: str
    name: str
    description: str | None
    knowledge_base_id: str | None
    metadata: str
    agent: str
    human_agents: str
    source: str
    created_at: str
    updated_at: str


_NUMBER_COLUMNS = (
    "id, user_id, name, description, phone_number, provider, sid, number_type, iso_country,"
    " capabilities, price_currency, price_amount, address_sid, inbound_configuration_id,"
    " created_at, updated_at"
)
_CONFIGURATION_COLUMNS = (
    "id, user_id, name, description, knowledge_base_id, metadata, agent, human_agents, source,"
    " created_at, updated_at"
)
# The columns a PATCH may set, so no caller-made name ever reaches the SQL text.
NUMBER_PATCHABLE = frozenset({"name", "description"})
CONFIGURATION_PATCHABLE = frozenset(
    {"name", "description", "knowledge_base_id", "agent", "human_agents", "source"}
)


def _number(r: Row) -> PhoneNumberRow:
    return PhoneNumberRow(*(r[i] for i in range(16)))


def _configuration(r: Row) -> InboundConfigurationRow:
    return InboundConfigurationRow(*(r[i] for i in range(11)))


async def list_phone_numbers(conn: Connection, user_id: str) -> list[PhoneNumberRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE user_id = ? ORDER BY created_at, id",
        (user_id,),
    )
    return [_number(r) for r in rows]


async def get_phone_number(conn: Connection, user_id: str, number_id: str) -> PhoneNumberRow | None:
    rows = await conn.execute_fetchall(
        f"SELECT {_NUMBER_COLUMNS} FROM phone_numbers WHERE id = ? AND user_id = ?", (number_id, user_id)
    )
    return _number(rows[0]) if rows else None


async def insert_phone_number(tx: Transaction, row: PhoneNumberRow) -> None:
    placeholders = ", ".join("?" * 16)
    await tx.conn.execute(
        f"INSERT INTO phone_numbers ({_NUMBER_COLUMNS}) VALUES ({placeholders})",
        (
            row.id,
            row.user_id,
            row.name,
            row.description,
            row.phone_number,
            row.provider,
            row.sid,
            row.number_type,
            row.iso_country,
            row.capabilities,
            row.price_currency,
            row.price_amount,
            row.address_sid,
            row.inbound_configuration_id,
            row.created_at,
            row.updated_at,
        ),
    )


async def update_phone_number(
    tx: Transaction, user_id: str, number_id: str, fields: dict[str, Any]
) -> PhoneNumberRow | None:
    row = await _update(tx, "phone_numbers", _NUMBER_COLUMNS, NUMBER_PATCHABLE, user_id, number_id, fields)
    return _number(row) if row else None


async def delete_phone_number(tx: Transaction, user_id: str, number_id: str) -> bool:
    cursor = await tx.conn.execute(
        "DELETE FROM phone_numbers WHERE id = ? AND user_id = ?", (number_id, user_id)
    )
    return cursor.rowcount > 0


async def set_number_configuration(
    tx: Transaction, user_id: str, number_id: str, configuration_id: str | None
) -> PhoneNumberRow | None:
    rows = await tx.conn.execute_fetchall(
        f"UPDATE phone_numbers SET inbound_configuration_id = ?, updated_at = ?"
        f" WHERE id = ? AND user_id = ? RETURNING {_NUMBER_COLUMNS}",
        (configuration_id, tx.now, number_id, user_id),
    )
    return _number(rows[0]) if rows else None


async def spend_quote(tx: Transaction, jti: str, user_id: str, expires_at: str) -> bool:
    """Record a quote as used; False when it already was. Spent quotes are forgotten
    once expired, since an expired quote is refused anyway."""
    await tx.conn.execute("DELETE FROM phone_number_quotes_used WHERE expires_at < ?", (tx.now,))
    cursor = await tx.conn.execute(
        "INSERT INTO phone_number_quotes_used (jti, user_id, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (jti) DO NOTHING",
        (jti, user_id, expires_at),
    )
    return cursor.rowcount > 0


async def quote_spent(conn: Connection, jti: str) -> bool:
    rows = await conn.execute_fetchall("SELECT 1 FROM phone_number_quotes_used WHERE jti = ?", (jti,))
    return bool(rows)


async def insert_address(tx: Transaction, user_id: str, sid: str) -> None:
    await tx.conn.execute(
        "INSERT INTO phone_number_addresses (sid, user_id) VALUES (?, ?) ON CONFLICT (sid) DO NOTHING",
        (sid, user_id),
    )


async def address_exists(conn: Connection, user_id: str, sid: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM phone_number_addresses WHERE sid = ? AND user_id = ?", (sid, user_id)
    )
    return bool(rows)


async def knowledge_base_exists(conn: Connection, user_id: str, kb_id: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM knowledge_bases WHERE id = ? AND user_id = ?", (kb_id, user_id)
    )
    return bool(rows)


async def list_configurations(conn: Connection, user_id: str) -> list[InboundConfigurationRow]:
    rows = await conn.execute_fetchall(
        f"SELECT {_CONFIGURATION_COLUMNS} FROM inbound_configurations WHERE user_id = ?"
        " ORDER BY created_at, id",
        (user_id,),
    )
    return [_configuration(r) for r in rows]


async def get_configuration(conn: Connection, user_id: str, config_id: str) -> InboundConfigurationRow | None:
    rows = await conn.execute_fetchall(
        f"SELECT {_CONFIGURATION_COLUMNS} FROM inbound_configurations WHERE id = ? AND user_id = ?",
        (config_id, user_id),
    )
    return _configuration(rows[0]) if rows else None


async def insert_configuration(tx: Transaction, row: InboundConfigurationRow) -> None:
    placeholders = ", ".join("?" * 11)
    await tx.conn.execute(
        f"INSERT INTO inbound_configurations ({_CONFIGURATION_COLUMNS}) VALUES ({placeholders})",
        (
            row.id,
            row.user_id,
            row.name,
            row.description,
            row.knowledge_base_id,
            row.metadata,
            row.agent,
            row.human_agents,
            row.source,
            row.created_at,
            row.updated_at,
        ),
    )


async def update_configuration(
    tx: Transaction, user_id: str, config_id: str, fields: dict[str, Any]
) -> InboundConfigurationRow | None:
    row = await _update(
        tx,
        "inbound_configurations",
        _CONFIGURATION_COLUMNS,
        CONFIGURATION_PATCHABLE,
        user_id,
        config_id,
        fields,
    )
    return _configuration(row) if row else None


async def delete_configuration(tx: Transaction, user_id: str, config_id: str) -> bool:
    """Delete a configuration and detach its numbers in the same transaction."""
    await tx.conn.execute(
        "UPDATE phone_numbers SET inbound_configuration_id = NULL, updated_at = ?"
        " WHERE inbound_configuration_id = ? AND user_id = ?",
        (tx.now, config_id, user_id),
    )
    cursor = await tx.conn.execute(
        "DELETE FROM inbound_configurations WHERE id = ? AND user_id = ?", (config_id, user_id)
    )
    return cursor.rowcount > 0


async def _update(
    tx: Transaction,
    table: str,
    columns: str,
    allowed: frozenset[str],
    user_id: str,
    row_id: str,
    fields: dict[str, Any],
) -> Row | None:
    if not fields.keys() <= allowed:
        raise ValueError(f"not patchable in {table}: {sorted(fields.keys() - allowed)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    rows = await tx.conn.execute_fetchall(
        f"UPDATE {table} SET {assignments}, updated_at = ? WHERE id = ? AND user_id = ? RETURNING {columns}",
        (*fields.values(), tx.now, row_id, user_id),
    )
    return rows[0] if rows else None
