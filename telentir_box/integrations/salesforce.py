"""Salesforce: log the call as a completed call Task on the Contact or Lead matching the
caller's email or phone, creating a Lead when none does. API calls go to the org's
instance_url from the token answer. The Task's CallObject holds the delivery's
idempotency key and is queried first, so a resend does not log the call twice."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from telentir_box.config import SalesforceConfig
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.providers import Delivery, DeliveryFailed, ProviderApi, required_settings


class Salesforce:
    name = "salesforce"
    authorize_extra: dict[str, str] = {}

    def __init__(self, config: SalesforceConfig) -> None:
        self._config = config

    def config(self) -> SalesforceConfig:
        return self._config

    def missing_setting(self) -> str | None:
        return required_settings(self._config)

    async def account(self, api: ProviderApi, token: dict[str, Any]) -> dict[str, str]:
        instance_url = str(token.get("instance_url") or self._config.api_base)
        if urlsplit(instance_url).scheme not in ("https", "http") or not urlsplit(instance_url).hostname:
            raise DeliveryFailed("the token answer names no instance_url")
        # The identity URL is .../id/<org id>/<user id>.
        parts = str(token.get("id", "")).rstrip("/").split("/")
        org, user = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")
        return {"instance_url": instance_url.rstrip("/"), "org_id": org, "user_id": user}

    def build(self, call: FinishedCall) -> Delivery | None:
        first, last = call.first_and_last_name
        who = {
            "email": call.contact_email,
            "phone": call.contact_phone,
            "first_name": first,
            "last_name": last,
        }
        task = {
            "Subject": f"{call.direction.capitalize()} call",
            "Status": "Completed",
            "TaskSubtype": "Call",
            "CallType": call.direction.capitalize(),
            "CallDurationInSeconds": call.duration_seconds,
            "CallDisposition": call.outcome,
            "Description": call.summary,
            "ActivityDate": call.started_at.date().isoformat(),
        }
        return Delivery("crm_call", {"who": who, "task": task})

    async def deliver(
        self, api: ProviderApi, account: dict[str, str], payload: dict[str, Any], key: str
    ) -> None:
        base = f"{account['instance_url']}/services/data/{self._config.api_version}"
        if await _query_id(api, base, f"SELECT Id FROM Task WHERE CallObject = {soql(key)} LIMIT 1"):
            return
        who_id = await self._who(api, base, payload["who"])
        task = {**payload["task"], "WhoId": who_id, "CallObject": key}
        await api.request("POST", f"{base}/sobjects/Task", json=task)

    async def _who(self, api: ProviderApi, base: str, who: dict[str, str]) -> str:
        """The matching Contact, else Lead, else a new Lead."""
        conditions = [
            f"{field} = {soql(who[name])}"
            for field, name in (("Email", "email"), ("Phone", "phone"))
            if who[name]
        ]
        if conditions:
            where = " OR ".join(conditions)
            for sobject in ("Contact", "Lead"):
                found = await _query_id(api, base, f"SELECT Id FROM {sobject} WHERE {where} LIMIT 1")
                if found:
                    return found
        lead = {
            "FirstName": who["first_name"],
            "LastName": who["last_name"] or who["phone"] or who["email"] or "Unknown caller",
            "Company": "Unknown",
            "Email": who["email"] or None,
            "Phone": who["phone"] or None,
            "LeadSource": "Phone Inquiry",
        }
        created = await api.request("POST", f"{base}/sobjects/Lead", json=lead)
        return str(created["id"])


async def _query_id(api: ProviderApi, base: str, query: str) -> str | None:
    answer = await api.request("GET", f"{base}/query", params={"q": query})
    records = (answer or {}).get("records") or []
    return str(records[0]["Id"]) if records else None


def soql(value: str) -> str:
    """A SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
