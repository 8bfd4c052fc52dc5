"""The OpenAPI schema's shared parts, added in one place to what Litestar derives from
the handlers, so that a client generated from it builds only requests the box accepts
and reads every answer:

- the security schemes, and on each operation the ones its guards accept;
- the one error body {error, code, message} on every error status, in place of
  Litestar's own error shape, and the statuses each guard, request body and parameter
  implies (a handler names the ones particular to it with `errors(...)`);
- request bodies closed to unknown fields, as the Structs decode them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
    Tag,
)
from litestar.routes import HTTPRoute

from telentir_box.errors import (
    AppError,
    CrossSiteRefused,
    Forbidden,
    HeadersTooLarge,
    NotFound,
    PayloadTooLarge,
    PhoneVerificationRequired,
    RateLimited,
    TwoFactorRequired,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from telentir_box.web.errors import handle_exception_with_status

BEARER, COOKIE, TICKET, CRON = "bearer", "cookie", "ticket", "cron"
SECURITY_SCHEMES = {
    BEARER: SecurityScheme(
        type="http",
        scheme="bearer",
        description="`Authorization: Bearer <token>`: a session token from sign-in, or an API key"
        " (`tbx_...`) from POST /api/api-keys",
    ),
    COOKIE: SecurityScheme(
        type="apiKey",
        name="token",
        security_scheme_in="cookie",
        description="The HttpOnly session cookie sign-in sets; requests that change something are"
        " refused (403 CSRF_REJECTED) from an origin other than the box's or a configured CORS origin",
    ),
    TICKET: SecurityScheme(
        type="apiKey",
        name="ticket",
        security_scheme_in="query",
        description="A single-use ticket from POST /api/events/ticket, for event-stream clients that"
        " cannot send headers",
    ),
    CRON: SecurityScheme(
        type="http",
        scheme="bearer",
        description="`Authorization: Bearer <cron secret>`: [jobs] cron_secret, else the one generated at"
        " init (`telentir-box admin cron-secret`)",
    ),
}
_SIGNED_IN = [{BEARER: []}, {COOKIE: []}]
_RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
    description="Seconds to wait before trying again (sent with the sign-in and account limits)",
)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class Access(msgspec.Struct, frozen=True):
    """What a guard asks of the caller: the credentials it takes and how it refuses."""

    security: tuple[str, ...]
    refusals: tuple[type[AppError], ...]


_SESSION = (Unauthorized, TwoFactorRequired)
# By the guard's qualified name: a guard missing here stops the app at start, so a new
# guard cannot leave its routes undocumented.
# Guards that check a request's body type, not who calls: their refusals (403 from a
# foreign origin, 415) are listed by _shared_errors.
BODY_GUARDS = {"requires_first_party.<locals>.guard", "requires_multipart"}
GUARD_ACCESS = {
    "requires_auth": Access((BEARER, COOKIE), _SESSION),
    "requires_object_auth": Access((BEARER, COOKIE), (*_SESSION, PhoneVerificationRequired)),
    "requires_role.<locals>.guard": Access((BEARER, COOKIE), (*_SESSION, Forbidden)),
    "requires_super_admin": Access((BEARER, COOKIE), (*_SESSION, Forbidden)),
    "requires_stream_auth": Access((BEARER, COOKIE, TICKET), (*_SESSION, PhoneVerificationRequired)),
    "requires_cron_secret": Access((CRON,), (Unauthorized,)),
    # Everyone but the super admin is told the route does not exist.
    "requires_super_admin_or_hidden": Access((BEARER, COOKIE), (NotFound,)),
}


DESCRIPTION = (
    "The Telentir encrypted object store and back office of one self-hosted box. Sign in"
    " (or create an API key) under `auth`, then call the store with `Authorization: Bearer"
    " <API key or session token>`; the store needs a verified phone (403"
    " `PHONE_VERIFICATION_REQUIRED` until then). Every error answers `{error, code, message}`"
    ' (the sign-in routes add `status: "error"`).'
)
TAGS = [
    Tag(name="auth", description="Sign-in, sessions, passwords, 2FA, phone verification, API keys"),
    Tag(name="team", description="Members, invites and the audit trail (admins and owners)"),
    Tag(name="store", description="Servers, keys and encrypted objects; publishing"),
    Tag(name="events", description="Server-Sent Event streams of store changes"),
    Tag(name="connect", description="Connector ingestion and lead credits"),
    Tag(name="phone numbers", description="Numbers bought through Twilio, with signed price quotes"),
    Tag(name="inbound configurations", description="What answers a call to each number"),
    Tag(name="knowledge bases", description="Documents and links, their text extracted and searchable"),
    Tag(name="personas", description="The voices an agent can speak with, and spoken previews"),
    Tag(
        name="billing", description="Plan, usage, card, balance, Stripe Checkout and portal, Stripe webhooks"
    ),
    Tag(name="calls", description="Session calls placed by the client, and call usage"),
    Tag(name="webhooks", description="Twilio, ElevenLabs and Stripe callbacks, each signed by its sender"),
    Tag(name="jobs", description="Scheduled jobs over HTTP (cron secret), their runs, report preferences"),
    Tag(name="admin", description="Diagnostics for the super admin"),
    Tag(name="integrations", description="OAuth connections and what each delivers after a call"),
    Tag(name="system", description="Health"),
]


def errors(*kinds: type[AppError]) -> dict[int, ResponseSpec]:
    """`responses=` for a route decorator: the errors particular to that route (a conflict,
    a rate limit, an unknown id in the body...). The shared ones are added centrally."""
    return {kind.status: ResponseSpec(None, description=_describe([kind])) for kind in kinds}


# A character that Python's str.strip() keeps, spelled out: `\S` differs between Python
# and the ECMA regexes of JSON Schema (U+001C-U+001F, U+FEFF).
NOT_BLANK = "[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def documented(**keywords: Any) -> msgspec.Meta:
    """JSON-schema keywords for the OpenAPI schema only, on a field whose rule a service
    checks itself (after trimming or lower-casing, with its own message). Each must
    describe a subset of what the service accepts, so generated requests pass."""
    return msgspec.Meta(extra_json_schema={"extra": keywords})


def optional_auth() -> list[dict[str, list[str]]]:
    """`security=` for a route that answers anyone and says more to a signed-in caller."""
    return [{}, *_SIGNED_IN]


def complete_schema(app: Litestar) -> None:
    """Add the shared parts to `app`'s schema, once, before it is first served."""
    openapi = app.openapi_schema
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    schemas = components.schemas if components.schemas is not None else {}
    schemas.update({name: _error_schema(name) for name in ("ErrorBody", "AuthErrorBody")})
    components.schemas = schemas
    components.security_schemes = {**(components.security_schemes or {}), **SECURITY_SCHEMES}
    openapi.components = components
    for handler, method, operation in _operations(app):
        _complete_operation(handler, method, operation, schemas)


def _operations(app: Litestar) -> Iterable[tuple[HTTPRouteHandler, str, Operation]]:
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for method, (handler, _) in route.route_handler_map.items():
            operation = getattr(item, method.lower(), None)
            if isinstance(operation, Operation):
                yield handler, method, operation


def _complete_operation(
    handler: HTTPRouteHandler, method: str, operation: Operation, schemas: dict[str, Schema]
) -> None:
    access = _access(handler)
    if access is not None:
        operation.security = [{name: []} for name in access.security]
    kinds = _shared_errors(handler, method, operation, access)
    responses = operation.responses if operation.responses is not None else {}
    for status, group in _by_status(kinds).items():
        responses[str(status)] = _merged(responses.get(str(status)), group)
    body = "AuthErrorBody" if _adds_status(handler) else "ErrorBody"
    for status, response in responses.items():
        if status == "204" and isinstance(response, OpenAPIResponse):
            response.content = None  # no body at all, not a JSON null
        if status.isdigit() and int(status) >= 400 and isinstance(response, OpenAPIResponse):
            response.content = {"application/json": OpenAPIMediaType(schema=_ref(body))}
        if status == "429" and isinstance(response, OpenAPIResponse):
            response.headers = {"Retry-After": _RETRY_AFTER}
    operation.responses = dict(sorted(responses.items()))
    _close_request_body(operation, schemas)


def _access(handler: HTTPRouteHandler) -> Access | None:
    accesses = []
    for guard in handler.resolve_guards():
        name = getattr(guard, "__qualname__", repr(guard))
        if name in BODY_GUARDS:
            continue
        if name not in GUARD_ACCESS:
            raise RuntimeError(f"guard {name} of {handler} is not described in web/openapi.py GUARD_ACCESS")
        accesses.append(GUARD_ACCESS[name])
    return accesses[-1] if accesses else None


def _shared_errors(
    handler: HTTPRouteHandler, method: str, operation: Operation, access: Access | None
) -> list[type[AppError]]:
    # Any request may carry a header block past the connection's limits; a credential
    # may spend its request budget ([ratelimit] requests_per_minute).
    kinds: list[type[AppError]] = [*(access.refusals if access else ()), HeadersTooLarge]
    if access is not None:
        kinds.append(RateLimited)
    if operation.request_body is not None:
        kinds += [ValidationFailed, PayloadTooLarge, UnsupportedMediaType]
    parameters = operation.parameters or []
    if parameters:
        kinds.append(ValidationFailed)
    if any(getattr(p, "param_in", None) == "path" for p in parameters):
        kinds.append(NotFound)
    if method in _UNSAFE:  # whatever the route, when the request carries the session cookie
        kinds.append(CrossSiteRefused)
    return kinds


def _by_status(kinds: Iterable[type[AppError]]) -> dict[int, list[type[AppError]]]:
    grouped: dict[int, list[type[AppError]]] = {}
    for kind in kinds:
        if kind not in grouped.setdefault(kind.status, []):
            grouped[kind.status].append(kind)
    return grouped


def _merged(declared: Any, kinds: list[type[AppError]]) -> OpenAPIResponse:
    """The shared errors of a status, with those the handler declared by `errors()`;
    Litestar's own description of a status (its 400) is replaced."""
    shared = _describe(kinds)
    if isinstance(declared, OpenAPIResponse) and declared.description.startswith(shared.split(":")[0] + ":"):
        codes = [part for part in shared.split(": ", 1)[1].split("; ") if part not in declared.description]
        return OpenAPIResponse(description="; ".join([declared.description, *codes]))
    return OpenAPIResponse(description=shared)


def _describe(kinds: Iterable[type[AppError]]) -> str:
    kinds = list(kinds)
    phrase = HTTPStatus(kinds[0].status).phrase
    return f"{phrase}: " + "; ".join(f"`{kind.code}` ({kind.default_message})" for kind in kinds)


def _adds_status(handler: HTTPRouteHandler) -> bool:
    handlers: dict[Any, Callable[..., Any]] = handler.resolve_exception_handlers()
    return handlers.get(Exception) is handle_exception_with_status


def _close_request_body(operation: Operation, schemas: dict[str, Schema]) -> None:
    """Every request Struct forbids unknown fields: say so, so no client sends one."""
    body = operation.request_body
    content = getattr(body, "content", None) or {}
    for media in content.values():
        for ref in _refs(media.schema):
            schema = schemas.get(ref.ref.rsplit("/", 1)[-1])
            if schema is not None and schema.properties is not None:
                schema.additional_properties = False


def _refs(schema: Schema | Reference | None) -> list[Reference]:
    if isinstance(schema, Reference):
        return [schema]
    if isinstance(schema, Schema):
        return [ref for part in (schema.one_of or []) + (schema.any_of or []) for ref in _refs(part)]
    return []


def _ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


def _error_schema(name: str) -> Schema:
    """Every error answer: `error` and `message` carry the same text (`message` is what
    Telentir's clients read); `code` is stable and meant for programs."""
    properties = {
        "error": Schema(type="string", description="The message, for clients that read `error`"),
        "code": Schema(type="string", description="Stable machine-readable code, e.g. NOT_FOUND"),
        "message": Schema(type="string", description="Human-readable message"),
    }
    if name == "AuthErrorBody":
        # The sign-in routes (/api/auth/*, /api/setup-super-admin) answer Telentir's login
        # shape, which adds "status": "error"; see web/errors.handle_exception_with_status.
        properties["status"] = Schema(type="string", const="error", description="Telentir's login shape")
    return Schema(title=name, type="object", properties=properties, required=sorted(properties))
