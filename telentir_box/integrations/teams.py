"""Microsoft Teams: post the call's summary to the configured channel or chat through
Microsoft Graph, as the user who connected. Microsoft has no token revocation endpoint
and Graph takes no idempotency key for messages."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from telentir_box.config import MicrosoftTeamsConfig
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.providers import Delivery, ProviderApi, required_settings


class MicrosoftTeams:
    name = "microsoft_teams"
    authorize_extra: dict[str, str] = {}

    def __init__(self, config: MicrosoftTeamsConfig) -> None:
        self._config = config

    def config(self) -> MicrosoftTeamsConfig:
        return self._config

    def missing_setting(self) -> str | None:
        missing = required_settings(self._config)
        if missing is None and not (self._config.chat_id or self._config.channel_id):
            return "chat_id or team_id and channel_id"
        return missing

    def target(self) -> str:
        """The Graph path of the channel or chat messages are posted to."""
        config = self._config
        if config.chat_id:
            return f"/v1.0/chats/{quote(config.chat_id, safe='')}/messages"
        team, channel = quote(config.team_id, safe=""), quote(config.channel_id, safe="")
        return f"/v1.0/teams/{team}/channels/{channel}/messages"

    async def account(self, api: ProviderApi, token: dict[str, Any]) -> dict[str, str]:
        me = await api.request("GET", f"{self._config.api_base}/v1.0/me")
        posts_to = (
            f"chat {self._config.chat_id}"
            if self._config.chat_id
            else (f"team {self._config.team_id} channel {self._config.channel_id}")
        )
        return {
            "user": str(me.get("userPrincipalName") or me.get("mail") or ""),
            "user_id": str(me.get("id", "")),
            "tenant": self._config.tenant,
            "posts_to": posts_to,
        }

    def build(self, call: FinishedCall) -> Delivery | None:
        who = call.contact_name or call.contact_phone or call.contact_email or "unknown caller"
        minutes, seconds = divmod(call.duration_seconds, 60)
        content = (
            f"<p><b>{html.escape(call.direction.capitalize())} call with {html.escape(who)}</b>"
            f" ({minutes}m {seconds:02d}s, {html.escape(call.outcome)})</p>"
            f"<p>{html.escape(call.summary)}</p>"
        )
        return Delivery("message", {"target": self.target(), "content": content})

    async def deliver(
        self, api: ProviderApi, account: dict[str, str], payload: dict[str, Any], key: str
    ) -> None:
        body = {"body": {"contentType": "html", "content": payload["content"]}}
        await api.request("POST", self._config.api_base + payload["target"], json=body)
