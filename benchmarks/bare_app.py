"""Baselines on the same uvicorn stack as the box, with no middleware, database or
lifespan: `/bare` (one JSON GET, the baseline every ratio is taken against) and
the framework floors of the object routes: `GET /bare/objects/{id}` (a guard, two
chained dependencies, a path parameter and a 1 KB object record) and `PUT
/bare/objects` (the same with the object's JSON body decoded), with no auth work and
no SQL."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Controller, Litestar, get, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath

from telentir_box.store.models import ObjectRecord, ObjectWrite  # the box's own types

RECORD = ObjectRecord(
    id="obj_bench", metadata={}, created_at="2026-11-23T09:00:00.000Z", updated_at="2026-11-23T09:00:00.000Z",
    user_id="usr_bench", key_id="key_bench", auth_tag=secrets.token_hex(16), content=secrets.token_hex(1024),
    related_object_id=None,
)  # fmt: skip


@get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


async def allow(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    return None


def provide_runtime() -> str:
    return "runtime"


async def provide_caller(runtime: NamedDependency[str]) -> str:
    return "usr_bench"


class Objects(Controller):
    path = "/bare/objects"
    guards = [allow]

    @get("/{object_id:str}")
    async def get_object(
        self, runtime: NamedDependency[str], caller: NamedDependency[str], object_id: FromPath[str]
    ) -> ObjectRecord:
        return RECORD

    @put("/")
    async def put_object(
        self, runtime: NamedDependency[str], caller: NamedDependency[str], data: ObjectWrite
    ) -> ObjectRecord:
        return RECORD


app = Litestar(
    route_handlers=[bare, Objects],
    dependencies={
        "runtime": Provide(provide_runtime, sync_to_thread=False),
        "caller": Provide(provide_caller),
    },
)
