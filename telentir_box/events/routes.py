"""HTTP for event streams: GET /api/events/{type} and /api/events (every type) as
Server-Sent Events, and POST /api/events/ticket for clients that cannot send headers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.db.timestamps import iso
from telentir_box.digits import parse_digits
from telentir_box.errors import NotFound, RateLimited, Unauthorized, ValidationFailed
from telentir_box.events.credentials import credential_id
from telentir_box.events.filters import EVENT_TYPES, FILTER_NAMES, allowed_filters, build_filter
from telentir_box.events.stream import EventStream, StreamRequest
from telentir_box.web.openapi import errors

MAX_FILTER_CHARS = 200
MAX_EVENT_ID_DIGITS = 18
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_RESPONSE = {
    200: ResponseSpec(
        str,
        media_type="text/event-stream",
        description="Server-Sent Events: `id:` (the event id), `event:` (the type) and `data:`"
        " (the JSON payload) per event, `:` keep-alive comments, and `event: error` before the"
        " server ends the stream",
        generate_examples=False,
    )
}


STREAM_QUERY = (
    "Filters (query): "
    + ", ".join(f"`{name}`" for name in FILTER_NAMES)
    + f", each 1-{MAX_FILTER_CHARS} characters and only those that apply to the stream's type"
    " (400 otherwise). Resume after an event with the `Last-Event-ID` header or `lastEventId`."
    " Clients that cannot send headers pass `ticket` (POST /api/events/ticket) instead."
)
Channel = Annotated[str, Parameter(description="an event type", schema_extra={"enum": list(EVENT_TYPES)})]


class EventTicket(msgspec.Struct):
    """Pass as `?ticket=` to one event stream request, within 60 s."""

    ticket: str
    expires_at: str


async def requires_stream_auth(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A `?ticket=` alone decides who calls (and a bad one is refused); otherwise the
    usual object_auth from the Bearer header or the `token` cookie."""
    ticket = connection.query_params.get("ticket")
    if ticket is None:
        await requires_object_auth(connection, handler)
        return
    box: Box = connection.app.state.box
    principal = await box.tickets.redeem(box.db, ticket, box.clock())
    if principal is None:
        raise Unauthorized("Invalid, used or expired event stream ticket")
    connection.scope.setdefault("state", {})["principal"] = principal


def parse_stream_request(
    request: Request[Any, Any, Any], channel: str | None, principal: Principal
) -> StreamRequest:
    query = {name: request.query_params[name] for name in FILTER_NAMES if name in request.query_params}
    unknown = sorted(set(query) - allowed_filters(channel))
    if unknown:
        raise ValidationFailed(f"Filter {unknown[0]} does not apply to {channel} events")
    for name, value in query.items():
        if not value or len(value) > MAX_FILTER_CHARS:
            raise ValidationFailed(f"Filter {name} must be 1 to {MAX_FILTER_CHARS} characters")
    last = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or None
    resume_after = parse_digits(last, MAX_EVENT_ID_DIGITS) if last is not None else None
    if last is not None and resume_after is None:
        raise ValidationFailed("Last-Event-ID must be an event id (a non-negative integer)")
    return StreamRequest(
        user_id=principal.user_id,
        channel=channel,
        event_filter=build_filter(channel, query, principal.user_id),
        resume_after=resume_after,
        credential_id=credential_id(principal),
    )


def _event_stream(
    request: Request[Any, Any, Any], box: Box, principal: Principal, channel: str | None
) -> EventStream:
    return EventStream(box.bus, box.db, parse_stream_request(request, channel, principal), SSE_HEADERS)


@get(
    "/events",
    guards=[requires_stream_auth],
    media_type="text/event-stream",
    responses={**SSE_RESPONSE, **errors(RateLimited)},
    summary="Stream every event type (SSE)",
    description=STREAM_QUERY,
    tags=["events"],
)
async def stream_all_events(
    request: Request[Any, Any, Any], box: NamedDependency[Box], principal: NamedDependency[Principal]
) -> EventStream:
    return _event_stream(request, box, principal, None)


@get(
    "/events/{channel:str}",
    guards=[requires_stream_auth],
    media_type="text/event-stream",
    responses={**SSE_RESPONSE, **errors(RateLimited)},
    summary="Stream one event type (SSE)",
    description=STREAM_QUERY,
    tags=["events"],
)
async def stream_events(
    channel: Channel,
    request: Request[Any, Any, Any],
    box: NamedDependency[Box],
    principal: NamedDependency[Principal],
) -> EventStream:
    if channel not in EVENT_TYPES:
        raise NotFound("Unknown event type")
    return _event_stream(request, box, principal, channel)


@post(
    "/events/ticket",
    guards=[requires_object_auth],
    status_code=201,
    summary="Issue a single-use event stream ticket, valid for 60 s",
    tags=["events"],
)
async def create_event_ticket(
    box: NamedDependency[Box], principal: NamedDependency[Principal]
) -> EventTicket:
    ticket, expires = box.tickets.issue(principal, box.clock())
    return EventTicket(ticket=ticket, expires_at=iso(expires))


event_routes = [stream_all_events, stream_events, create_event_ticket]
