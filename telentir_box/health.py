"""GET /api/health: is the process up and can it read its database."""

from __future__ import annotations

import logging

import msgspec
from litestar import get
from litestar.di import NamedDependency

from telentir_box import __version__
from telentir_box.box import Box

log = logging.getLogger("telentir_box.health")


class Health(msgspec.Struct):
    status: str
    version: str
    database: str


@get("/health", summary="Liveness and database check", tags=["system"])
async def health(box: NamedDependency[Box]) -> Health:
    try:
        async with box.db.reading() as conn:
            await conn.execute_fetchall("SELECT 1")
        database = "ok"
    except Exception:
        log.exception("health check: database unreachable")
        database = "unavailable"
    return Health(status="ok" if database == "ok" else "degraded", version=__version__, database=database)
