"""The guards every route uses to say who may call it, and the `principal`
dependency that hands the resolved caller to handlers.

- requires_auth: a valid session cookie, session Bearer or API key (401 UNAUTHORIZED);
  a session still waiting for its 2FA code is refused (401 TWO_FACTOR_REQUIRED) unless
  the route sets opt={"allow_2fa_pending": True}.
- requires_object_auth: requires_auth plus a verified phone (403 PHONE_VERIFICATION_REQUIRED).
- requires_role("admin"), requires_super_admin: 403 FORBIDDEN.

`admit` is the rule itself, shared with the object hot path (store/hot_path.py), which
answers its requests ahead of Litestar's guards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope

from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.errors import Forbidden, PhoneVerificationRequired, TwoFactorRequired, Unauthorized

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Any]
COOKIE = "token"
_ROLE_RANK = {"member": 0, "admin": 1, "owner": 2}


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The caller's credential: the Authorization header's, else the `token` cookie's."""
    return header_token(connection.scope) or connection.cookies.get(COOKIE) or None


def header_token(scope: Scope) -> str | None:
    # Read the raw ASGI headers: building Litestar's Headers object costs more than the
    # rest of an authenticated lookup. Header names arrive lower-cased.
    for name, raw in scope["headers"]:
        if name == b"authorization":
            scheme, _, value = raw.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            break
    return None


async def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Resolve (once per request) the caller, or None when there is no valid credential."""
    state = connection.scope.setdefault("state", {})
    if "principal" not in state:
        token = bearer_token(connection)
        box = connection.app.state.box
        principal = await box.authenticator.resolve(token) if token else None
        state["principal"] = principal
        if principal is not None:
            box.budget.spend(principal)
    return state["principal"]


def admit(principal: Principal | None, *, allow_2fa_pending: bool = False, phone: bool = False) -> Principal:
    """The access rule of the guards below, in one place: a caller, past its 2FA step
    unless the route allows otherwise, and with a verified phone where `phone`."""
    if principal is None:
        raise Unauthorized()
    if principal.two_factor_pending and not allow_2fa_pending:
        raise TwoFactorRequired()
    if phone and not principal.phone_verified:
        raise PhoneVerificationRequired()
    return principal


async def requires_auth(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    admit(await current_principal(connection), allow_2fa_pending=handler.opt.get("allow_2fa_pending", False))


async def requires_object_auth(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    admit(
        await current_principal(connection),
        allow_2fa_pending=handler.opt.get("allow_2fa_pending", False),
        phone=True,
    )


def requires_role(minimum: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        await requires_auth(connection, handler)
        principal = connection.scope["state"]["principal"]
        if _ROLE_RANK[principal.role] < _ROLE_RANK[minimum] and not principal.super_admin:
            raise Forbidden()

    return guard


async def requires_super_admin(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    await requires_auth(connection, handler)
    if not connection.scope["state"]["principal"].super_admin:
        raise Forbidden()


async def provide_principal(request: Request[Any, Any, Any], box: NamedDependency[Box]) -> Principal:
    """For handlers behind one of the guards above: the caller they admitted.

    Depending on `box` is deliberate: Litestar resolves independent dependencies of a
    request concurrently in an anyio task group, which costs more than the handler
    itself; a chain resolves one after the other, inline."""
    del box
    principal = await current_principal(request)
    if principal is None:
        raise Unauthorized()
    return principal
