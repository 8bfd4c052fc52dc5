"""GET /api/debug/db: the database's health for the super admin. Everyone else gets a
404, as if the route did not exist, and `[admin] debug_endpoints = false` removes it."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from telentir_box.auth.guards import current_principal
from telentir_box.box import Box
from telentir_box.db.diagnostics import DatabaseReport, diagnose
from telentir_box.errors import NotFound


async def requires_super_admin_or_hidden(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    principal = await current_principal(connection)
    if principal is None or principal.two_factor_pending or not principal.super_admin:
        raise NotFound()


@get(
    "/debug/db",
    guards=[requires_super_admin_or_hidden],
    summary="Database health for the super admin: latency, schema, WAL and file size, integrity",
    tags=["admin"],
)
async def debug_db(box: NamedDependency[Box]) -> DatabaseReport:
    return await diagnose(box.db)


debug_routes = [debug_db]
