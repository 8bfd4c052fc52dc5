"""What keeps another web page from riding a signed-in browser: a state-changing
request whose credential is the session cookie must come from the box's own origin or
an allowed one, and a JSON route reads only a body that says it is JSON.

Both rules make one app-wide guard, run before the route's own. A request whose
credential is an Authorization header (session Bearer or API key) cannot be forged by a
page without a CORS preflight, so the origin rule does not apply to it (nor to the
object hot path, which serves only such requests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.handlers.base import BaseRouteHandler
from litestar.params import BodyKwarg
from litestar.types import Scope

from telentir_box.auth.guards import COOKIE, Guard, header_token
from telentir_box.config import ServerConfig
from telentir_box.errors import CrossSiteRefused, UnsupportedMediaType

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def requires_first_party(server: ServerConfig) -> Guard:
    """The app-wide guard: a state-changing request passes the origin rule for `server`,
    then the body-type rule; any other request is not looked at."""
    check_origin = origin_rule(server)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if connection.scope["method"] in STATE_CHANGING:
            check_origin(connection)
            check_json_body(connection.scope, handler)

    return guard


def origin_rule(server: ServerConfig) -> Callable[[ASGIConnection[Any, Any, Any, Any]], None]:
    """Refuse a request signed in by cookie unless it comes from `public_url`'s origin
    (or, while that is unset, the origin it was sent to) or a `cors_origins` entry."""
    allowed = {origin_of(url) for url in [server.public_url, *server.cors_origins] if url}
    own_origin_from_host = not server.public_url

    def check(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        if not _rides_cookie(connection):
            return
        scope = connection.scope
        claimed = claimed_origin(scope)
        if claimed is None:
            raise CrossSiteRefused("A request signed in by cookie must say where it comes from (Origin)")
        if claimed in allowed or (own_origin_from_host and claimed == _request_origin(scope)):
            return
        raise CrossSiteRefused(f"Requests signed in by cookie are not accepted from {claimed}")

    return check


def check_json_body(scope: Scope, handler: BaseRouteHandler) -> None:
    """A route reading a JSON body refuses a body of another declared type (a form, or
    text/plain: what a page can send cross-site without asking). A body with no
    Content-Type is read as JSON only from a caller with an Authorization header."""
    if not _reads_json(handler) or not _has_body(scope):
        return
    content_type = _header(scope, b"content-type")
    if content_type is None and header_token(scope) is not None:
        return
    if content_type is None or not is_json_type(content_type):
        raise UnsupportedMediaType("The request body must be JSON (Content-Type: application/json)")


def is_json_type(content_type: str) -> bool:
    """application/json or any +json type, parameters (charset) allowed."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of `url`, lower-cased with the default port left out, as
    browsers write an Origin; None when it names no http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def claimed_origin(scope: Scope) -> str | None:
    """Where the browser says the request comes from: Origin, else Referer's origin.
    An opaque origin ("null") or a missing one claims nothing."""
    origin = _header(scope, b"origin")
    if origin is None:
        origin = _header(scope, b"referer")
    return origin_of(origin) if origin else None


def _request_origin(scope: Scope) -> str | None:
    host = _header(scope, b"host")
    return origin_of(f"{scope['scheme']}://{host}") if host else None


def _rides_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    # The header wins over the cookie (guards.bearer_token), so a cookie sent alongside
    # an Authorization header authenticates nothing.
    return header_token(connection.scope) is None and COOKIE in connection.cookies


def _reads_json(handler: BaseRouteHandler) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    body = data.kwarg_definition
    return not isinstance(body, BodyKwarg) or body.media_type == RequestEncodingType.JSON


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() != "0"
    return _header(scope, b"transfer-encoding") is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
