"""What the ElevenLabs agent is told about a call: the conversation-initiation data
(providers.md 2.12), from the session payload of an outbound call or, for an inbound
call, from the number's inbound configuration and what the user published to the box
(a published contact whose phone matches the caller). Also answers the personalization
webhook, POST /api/webhooks/elevenlabs/personalize."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

import msgspec

from telentir_box.crypto.keyring import Keyring
from telentir_box.db import calls as repo
from telentir_box.db import objects as objects_repo
from telentir_box.db import telephony as numbers_repo
from telentir_box.db.database import Database
from telentir_box.errors import AppError, NotFound, ServiceUnavailable, ValidationFailed
from telentir_box.store.publish import Unreadable, read_publication
from telentir_box.voice.calls import CallLedger, Live

log = logging.getLogger("telentir_box.calls")
# A team publishes its contacts to the box for calls; past this many the caller is not
# looked for (personalization runs while the phone rings).
MAX_CONTACTS_SCANNED = 2000


class PersonalizeNotConfigured(ServiceUnavailable):
    code, default_message = (
        "PERSONALIZE_NOT_CONFIGURED",
        "Personalization is not configured: set [elevenlabs] personalize_secret",
    )


class WebhookUnauthorized(AppError):
    code, status, default_message = "WEBHOOK_UNAUTHORIZED", 401, "The webhook's credential is not valid"


class PersonalizeRequest(msgspec.Struct):
    """What ElevenLabs posts; other keys are tolerated."""

    caller_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    agent_id: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    called_number: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    call_sid: Annotated[str, msgspec.Meta(max_length=64)] | None = None


def check_personalize_secret(secret: str, header_secret: str | None, authorization: str | None) -> None:
    """`x-webhook-secret: <secret>` or `Authorization: Bearer <secret>`, compared in constant time."""
    if not secret:
        raise PersonalizeNotConfigured()
    offered = header_secret
    if offered is None and authorization and authorization[:7].lower() == "bearer ":
        offered = authorization[7:].strip()
    if offered is None or not hmac.compare_digest(offered.encode(), secret.encode()):
        raise WebhookUnauthorized()


def initiation_data(live: Live) -> dict[str, Any]:
    """conversation_initiation_client_data for register-call and personalization."""
    agent = live.agent
    contact = live.contact
    override: dict[str, Any] = {
        "agent": {"prompt": {"prompt": prompt_text(live.source)}, "language": agent.get("language", "en")},
    }
    if agent.get("voiceId"):
        override["tts"] = {"voice_id": agent["voiceId"]}
    variables = {
        "contact_name": contact.get("name") or "",
        "contact_phone": contact.get("phone") or "",
        "agent_name": f"{agent.get('firstName', '')} {agent.get('lastName', '')}".strip(),
    }
    return {"dynamic_variables": variables, "conversation_config_override": override}


def prompt_text(source: dict[str, Any]) -> str:
    if source.get("type") == "prompt":
        return str(source["prompt"]["text"])
    pathway = source.get("pathway") or {}
    return (
        f"Follow the conversational pathway '{pathway.get('name', '')}'. "
        f"Nodes: {msgspec.json.encode(pathway.get('nodes', [])).decode()} "
        f"Edges: {msgspec.json.encode(pathway.get('edges', [])).decode()}"
    )


async def published_contact(
    db: Database, keyring: Keyring, user_id: str, phone: str
) -> dict[str, Any] | None:
    """The user's published contact whose phone is `phone` ({id, name, phone}), if any."""
    async with db.reading() as conn:
        publications = await objects_repo.list_publications(
            conn, user_id, "contacts", after_seq=0, limit=MAX_CONTACTS_SCANNED
        )
    for publication in publications:
        try:
            contact = await read_publication(db, keyring, user_id, "contacts", publication.related_id)
        except (NotFound, Unreadable):
            continue
        if isinstance(contact, dict) and _same_phone(contact.get("phone"), phone):
            found = {"id": publication.related_id, "phone": phone}
            if isinstance(contact.get("name"), str):
                found["name"] = contact["name"]
            return found
    return None


def _same_phone(candidate: Any, phone: str) -> bool:
    if not isinstance(candidate, str):
        return False
    digits = "".join(c for c in candidate if c.isdigit() or c == "+")
    return digits == phone


def inbound_live(
    configuration: numbers_repo.InboundConfigurationRow,
    number: tuple[str, str],
    caller: str,
    contact: dict[str, Any] | None,
) -> Live:
    """The live details of an inbound call answered by `configuration` on `number` (id, phone)."""
    agent = msgspec.json.decode(configuration.agent)
    humans = msgspec.json.decode(configuration.human_agents)
    persona = agent.get("persona", "") if isinstance(agent, dict) else ""
    if persona.startswith("elevenlabs-"):
        agent["voiceId"] = persona[len("elevenlabs-") :]
    return Live(
        contact=contact or {"phone": caller},
        phone={"id": number[0], "number": number[1]},
        agents=[
            {"id": a.get("id", ""), "name": f"{a.get('firstName', '')} {a.get('lastName', '')}".strip()}
            for a in [agent, *humans]
        ],
        agent=agent,
        source=msgspec.json.decode(configuration.source),
        knowledgeBase=configuration.knowledge_base_id,
    )


class Personalizer:
    def __init__(self, db: Database, keyring: Keyring, ledger: CallLedger) -> None:
        self.db = db
        self.keyring = keyring
        self.ledger = ledger

    async def answer(self, raw_body: bytes) -> dict[str, Any]:
        try:
            request = msgspec.json.decode(raw_body, type=PersonalizeRequest)
        except msgspec.DecodeError as exc:
            raise ValidationFailed(f"The personalization request is not valid: {exc}") from None
        live = await self._live(request)
        if live is None:
            return {"type": "conversation_initiation_client_data", "dynamic_variables": {}}
        return {"type": "conversation_initiation_client_data", **initiation_data(live)}

    async def _live(self, request: PersonalizeRequest) -> Live | None:
        async with self.db.reading() as conn:
            row = await repo.get_call_by_sid(conn, request.call_sid) if request.call_sid else None
            if row is not None:
                return self.ledger.open_live(row)
            found = await repo.find_number(conn, request.called_number) if request.called_number else None
            if found is None or found[2] is None:
                return None
            configuration = await numbers_repo.get_configuration(conn, found[1], found[2])
        if configuration is None:
            return None
        caller = request.caller_id or ""
        contact = await published_contact(self.db, self.keyring, found[1], caller) if caller else None
        return inbound_live(configuration, (found[0], request.called_number or ""), caller, contact)
