"""HubSpot: upsert the caller as a contact (found by email, then phone) and log the
call on it. The call carries the delivery's idempotency key as hs_call_external_id and
is looked up by it first, so a resend after a crash does not log it twice."""

from __future__ import annotations

from typing import Any

from telentir_box.config import HubSpotConfig
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.providers import Delivery, DeliveryFailed, ProviderApi, required_settings

# HUBSPOT_DEFINED association type "call to contact".
CALL_TO_CONTACT = 194
_STATUS = {"completed": "COMPLETED", "no-answer": "NO_ANSWER", "busy": "BUSY", "failed": "FAILED"}


class HubSpot:
    name = "hubspot"
    authorize_extra: dict[str, str] = {}

    def __init__(self, config: HubSpotConfig) -> None:
        self._config = config

    def config(self) -> HubSpotConfig:
        return self._config

    def missing_setting(self) -> str | None:
        return required_settings(self._config) or (None if self._config.api_base else "api_base")

    async def account(self, api: ProviderApi, token: dict[str, Any]) -> dict[str, str]:
        details = await api.request("GET", f"{self._config.api_base}/account-info/v3/details")
        return {"portal_id": str(details.get("portalId", ""))}

    def build(self, call: FinishedCall) -> Delivery | None:
        first, last = call.first_and_last_name
        contact = {
            "email": call.contact_email,
            "phone": call.contact_phone,
            "firstname": first,
            "lastname": last,
        }
        properties = {
            "hs_timestamp": call.started_at.isoformat(),
            "hs_call_title": f"{call.direction.capitalize()} call",
            "hs_call_body": call.summary,
            "hs_call_duration": str(call.duration_seconds * 1000),
            "hs_call_direction": call.direction.upper(),
            "hs_call_status": _STATUS.get(call.outcome, "COMPLETED"),
            "hs_call_disposition": call.outcome,
            "hs_call_from_number": call.from_number,
            "hs_call_to_number": call.to_number,
        }
        return Delivery("crm_call", {"contact": {k: v for k, v in contact.items() if v}, "call": properties})

    async def deliver(
        self, api: ProviderApi, account: dict[str, str], payload: dict[str, Any], key: str
    ) -> None:
        base = f"{self._config.api_base}/crm/v3/objects"
        if await _find(api, f"{base}/calls", [("hs_call_external_id", key)]):
            return
        contact_id = await self._upsert_contact(api, base, payload["contact"])
        body: dict[str, Any] = {"properties": {**payload["call"], "hs_call_external_id": key}}
        if contact_id:
            body["associations"] = [
                {
                    "to": {"id": contact_id},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}
                    ],
                }
            ]
        await api.request("POST", f"{base}/calls", json=body)

    async def _upsert_contact(self, api: ProviderApi, base: str, contact: dict[str, str]) -> str | None:
        keys = [(name, contact[name]) for name in ("email", "phone") if contact.get(name)]
        if not keys:
            return None
        found = await _find(api, f"{base}/contacts", keys)
        if found:
            return found
        try:
            created = await api.request("POST", f"{base}/contacts", json={"properties": contact})
        except DeliveryFailed as failed:
            if failed.status != 409:  # made meanwhile by someone else: find it again
                raise
            return await _find(api, f"{base}/contacts", keys)
        return str(created["id"])


async def _find(api: ProviderApi, url: str, keys: list[tuple[str, str]]) -> str | None:
    """The id of the first object matching any of `keys` (one filter group each: OR)."""
    groups = [{"filters": [{"propertyName": name, "operator": "EQ", "value": value}]} for name, value in keys]
    answer = await api.request("POST", f"{url}/search", json={"filterGroups": groups, "limit": 1})
    results = (answer or {}).get("results") or []
    return str(results[0]["id"]) if results else None
