"""What the box had in clear when a call ended: the plain data every integration's
delivery is built from (never the user's encrypted store). The calls issue fills it
from the ElevenLabs post-call analysis and the Twilio call record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class AgreedMeeting:
    """A meeting the call's analysis says was agreed: when, how long, with whom."""

    start: datetime  # timezone-aware
    duration_minutes: int
    attendee_email: str
    attendee_name: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class FinishedCall:
    call_id: str
    direction: Literal["inbound", "outbound"]
    started_at: datetime  # timezone-aware
    duration_seconds: int
    outcome: str  # e.g. completed, no-answer, busy, failed, voicemail
    summary: str
    from_number: str = ""
    to_number: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    meeting: AgreedMeeting | None = None

    @property
    def first_and_last_name(self) -> tuple[str, str]:
        first, _, last = self.contact_name.strip().partition(" ")
        return (first, last.strip()) if last.strip() else ("", first)
