"""The baseline for bench_health: one Litestar route with no middleware, no database
and no lifespan, so the gap to /api/health is what telentir-box adds."""

from __future__ import annotations

from litestar import Litestar, get


@get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[bare])
