"""Which events a stream wants: its channel (one type or all) and the query filters,
mapped to payload fields as telentir-wire.md section 5 gives them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from telentir_box.events.bus import Frame

EVENT_TYPES = (
    "key_created",
    "key_deleted",
    "object_created",
    "object_updated",
    "object_deleted",
    "publish",
    "unpublish",
    # The box's own, beyond the store's wire: an integration whose refresh token the
    # provider refused (integrations/tokens.py); payload {provider, error}.
    "integration_broken",
)
# Per channel: query filter -> the payload field it compares (userId is the stream's owner).
FILTER_FIELDS: dict[str, dict[str, str]] = {
    "key_created": {"keyId": "key_id"},
    "key_deleted": {"keyId": "key_id"},
    "object_created": {"objectId": "id", "relatedId": "related_object_id"},
    "object_updated": {"objectId": "object_id"},
    "object_deleted": {"objectId": "object_id"},
    "publish": {"type": "type", "relatedId": "related_id", "objectId": "object_id"},
    "unpublish": {"type": "type", "relatedId": "related_id"},
    "integration_broken": {},
}
FILTER_NAMES = ("userId", "objectId", "keyId", "relatedId", "type")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """`types` is the channel (one type, or every type); `fields` the payload filters.
    A filter that does not apply to an event's type excludes it: `objectId=X` on the
    all-types stream never yields key events."""

    types: frozenset[str]
    fields: tuple[tuple[str, str], ...] = ()
    matches_nothing: bool = False

    def accepts(self, frame: Frame) -> bool:
        event_type = frame.event.type
        if self.matches_nothing or event_type not in self.types:
            return False
        if not self.fields:
            return True
        mapping = FILTER_FIELDS[event_type]
        payload = frame.payload
        for name, value in self.fields:
            field = mapping.get(name)
            if field is None or payload.get(field) != value:
                return False
        return True


def build_filter(channel: str | None, query: Mapping[str, str], user_id: str) -> EventFilter:
    """The filter for one stream; `channel` None means every type. The caller has
    already checked the names and sizes of the query values."""
    types = frozenset(EVENT_TYPES if channel is None else (channel,))
    fields = tuple((name, query[name]) for name in FILTER_NAMES if name != "userId" and name in query)
    # A stream only ever carries its owner's events, so naming anyone else selects nothing.
    foreign_user = "userId" in query and query["userId"] != user_id
    return EventFilter(types=types, fields=fields, matches_nothing=foreign_user)


def allowed_filters(channel: str | None) -> set[str]:
    if channel is None:
        return set(FILTER_NAMES)
    return {"userId", *FILTER_FIELDS[channel]}
