"""HTTP routes for integrations, as the Renchi reference names them:
/api/integrations/{provider}/connect (POST answers {url}, GET redirects there),
/api/integrations/{provider}/callback (the provider sends the browser back here),
/api/integrations/{provider}/disconnect, /api/integrations/status, for team admins and
owners; and each user's deliveries: /api/integrations/deliveries and .../{id}/retry."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from telentir_box.auth.guards import current_principal, requires_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.integrations import connections
from telentir_box.integrations.connections import (
    ConnectFailed,
    Disconnected,
    IntegrationNotConfigured,
    ProviderStatus,
)
from telentir_box.integrations.deliveries import DeliveryView, delivery_view, list_deliveries
from telentir_box.web.openapi import errors, optional_auth
from telentir_box.web.paging import Limit, page_size

DEFAULT_PAGE = 50
MAX_QUERY_VALUE = 4096


class ConnectUrl(msgspec.Struct):
    url: str


class StatusView(msgspec.Struct):
    integrations: list[ProviderStatus]


class DeliveryPage(msgspec.Struct):
    items: list[DeliveryView]
    next_cursor: str | None


def redirect_uri(request: Request[Any, Any, Any], box: Box, provider: str) -> str:
    """The callback URL the provider sends the browser back to (register it with the
    provider): under [server] public_url, else the address this request came to."""
    base = box.config.server.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/api/integrations/{provider}/callback"


def dashboard_redirect(box: Box, provider: str, error: str | None) -> Redirect:
    url = box.config.integrations.dashboard_url
    outcome = {"integration": provider, "status": "error" if error else "connected"}
    if error:
        outcome["error"] = error
    return Redirect(url + ("&" if "?" in url else "?") + urlencode(outcome), status_code=302)


async def _authorization_url(
    request: Request[Any, Any, Any], box: Box, principal: Principal, provider: str
) -> str:
    """Where to send the caller's browser to connect `provider` (a fresh, bound state)."""
    uri = redirect_uri(request, box, provider)
    return await connections.start_connect(box.integrations.connections, principal.user_id, provider, uri)


class IntegrationController(Controller):
    path = "/integrations"
    tags = ["integrations"]

    @post(
        "/{provider:str}/connect",
        guards=[requires_role("admin")],
        status_code=200,
        summary="Start connecting an integration: the provider URL to send the browser to",
        responses=errors(IntegrationNotConfigured),
    )
    async def connect(
        self,
        request: Request[Any, Any, Any],
        provider: FromPath[str],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
    ) -> ConnectUrl:
        return ConnectUrl(await _authorization_url(request, box, principal, provider))

    @get(
        "/{provider:str}/connect",
        guards=[requires_role("admin")],
        status_code=302,
        summary="Start connecting an integration: redirects the browser to the provider",
        responses=errors(IntegrationNotConfigured),
    )
    async def connect_redirect(
        self,
        request: Request[Any, Any, Any],
        provider: FromPath[str],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
    ) -> Redirect:
        return Redirect(await _authorization_url(request, box, principal, provider), status_code=302)

    @get(
        "/{provider:str}/callback",
        status_code=302,
        security=optional_auth(),
        summary="The provider's redirect back: stores the connection, then redirects to the dashboard",
    )
    async def callback(
        self, request: Request[Any, Any, Any], provider: FromPath[str], box: NamedDependency[Box]
    ) -> Redirect:
        """Always a redirect to [integrations] dashboard_url with ?integration=&status=
        connected|error and, on error, error= (unauthorized, invalid_state,
        access_denied, provider_error, missing_code, exchange_failed,
        account_unavailable): nothing is stored unless it says connected."""
        parts = box.integrations.connections
        parts.provider(provider)  # an unknown provider is a 404
        principal = await current_principal(request)
        if principal is None or principal.two_factor_pending:
            return dashboard_redirect(box, provider, "unauthorized")
        query = {k: v for k, v in request.query_params.items() if len(v) <= MAX_QUERY_VALUE}
        try:
            await connections.finish_connect(parts, principal.user_id, provider, query)
        except ConnectFailed as failed:
            return dashboard_redirect(box, provider, failed.code)
        return dashboard_redirect(box, provider, None)

    @post(
        "/{provider:str}/disconnect",
        guards=[requires_role("admin")],
        status_code=200,
        summary="Disconnect an integration: revoke it where possible, drop its tokens and deliveries",
    )
    async def disconnect(
        self, provider: FromPath[str], box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> Disconnected:
        return await connections.disconnect(box.integrations.connections, principal.user_id, provider)

    @get(
        "/status",
        guards=[requires_role("admin")],
        summary="Every integration: connected or not, account, since when, scopes, last error, deliveries",
    )
    async def status(self, box: NamedDependency[Box], principal: NamedDependency[Principal]) -> StatusView:
        return StatusView(
            await connections.integration_status(box.integrations.connections, principal.user_id)
        )

    @get("/deliveries", guards=[requires_auth], summary="The caller's integration deliveries, newest first")
    async def deliveries(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        status: FromQuery[Literal["pending", "delivered", "dead"] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = None,
    ) -> DeliveryPage:
        items, next_cursor = await list_deliveries(
            box.db, principal.user_id, status, cursor, page_size(limit, DEFAULT_PAGE)
        )
        return DeliveryPage(items, next_cursor)

    @post(
        "/deliveries/{delivery_id:str}/retry",
        guards=[requires_auth],
        status_code=200,
        summary="Send a dead delivery again (its attempts start afresh)",
    )
    async def retry(
        self, delivery_id: FromPath[str], box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> DeliveryView:
        return delivery_view(await box.integrations.queue.retry(principal.user_id, delivery_id))


integration_routes = [IntegrationController]
