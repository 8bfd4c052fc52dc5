"""Google Calendar: the event a call agreed on, in the connected account's calendar.
A call with no agreed meeting sends nothing. The event id is derived from the delivery's
idempotency key, so a resend after a crash is Google's 409, not a second event."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from telentir_box.config import GoogleCalendarConfig
from telentir_box.integrations.calls import FinishedCall
from telentir_box.integrations.providers import Delivery, DeliveryFailed, ProviderApi, required_settings


class GoogleCalendar:
    name = "google_calendar"
    authorize_extra = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}

    def __init__(self, config: GoogleCalendarConfig) -> None:
        self._config = config

    def config(self) -> GoogleCalendarConfig:
        return self._config

    def missing_setting(self) -> str | None:
        return required_settings(self._config) or (None if self._config.api_base else "api_base")

    def _calendar_url(self) -> str:
        return f"{self._config.api_base}/calendar/v3/calendars/{quote(self._config.calendar_id, safe='')}"

    async def account(self, api: ProviderApi, token: dict[str, Any]) -> dict[str, str]:
        calendar = await api.request("GET", self._calendar_url())
        return {"email": str(calendar.get("id", "")), "calendar": self._config.calendar_id}

    def build(self, call: FinishedCall) -> Delivery | None:
        meeting = call.meeting
        if meeting is None:
            return None
        end = meeting.start + timedelta(minutes=meeting.duration_minutes)
        who = meeting.attendee_name or call.contact_name or meeting.attendee_email
        return Delivery(
            "calendar_event",
            {
                "summary": meeting.title or f"Meeting with {who}",
                "description": call.summary,
                "start": {"dateTime": meeting.start.isoformat()},
                "end": {"dateTime": end.isoformat()},
                "attendees": [{"email": meeting.attendee_email}],
            },
        )

    async def deliver(
        self, api: ProviderApi, account: dict[str, str], payload: dict[str, Any], key: str
    ) -> None:
        event = {**payload, "id": event_id(key)}
        try:
            await api.request(
                "POST", self._calendar_url() + "/events", params={"sendUpdates": "all"}, json=event
            )
        except DeliveryFailed as failed:
            if failed.status != 409:  # 409: this event id exists, i.e. an earlier attempt landed
                raise


def event_id(key: str) -> str:
    """A Google event id (base32hex: 0-9 and a-v, 5 to 1024 characters) for `key`."""
    digest = hashlib.sha256(key.encode()).digest()[:20]
    return base64.b32hexencode(digest).decode().lower().rstrip("=")
