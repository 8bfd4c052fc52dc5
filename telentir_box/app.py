"""create_app(config) -> the Litestar application: routes under /api, the error
format, request context middleware, CORS, OpenAPI and the Box lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from telentir_box import __version__
from telentir_box.admin.routes import debug_routes
from telentir_box.auth.guards import provide_principal
from telentir_box.auth.team_routes import identity_routes
from telentir_box.billing.routes import billing_routes
from telentir_box.box import Box
from telentir_box.config import Config
from telentir_box.connect.routes import connect_routes
from telentir_box.events.routes import event_routes
from telentir_box.health import health
from telentir_box.integrations.routes import integration_routes
from telentir_box.jobs.routes import job_routes
from telentir_box.store.hot_path import object_hot_path
from telentir_box.store.routes import store_routes
from telentir_box.telephony.inbound_routes import inbound_configuration_routes
from telentir_box.telephony.knowledge_routes import knowledge_routes
from telentir_box.telephony.number_routes import phone_number_routes
from telentir_box.telephony.persona_routes import persona_routes
from telentir_box.voice.routes import call_routes
from telentir_box.web import openapi
from telentir_box.web.allow import options_answer
from telentir_box.web.csrf import requires_first_party
from telentir_box.web.docs import SCHEMA_PATH, OfflineSwaggerPlugin, docs_router
from telentir_box.web.errors import handle_exception
from telentir_box.web.middleware import request_context_middleware


def create_app(
    config: Config, extra_routes: Sequence[ControllerRouterHandler] = (), box: Box | None = None
) -> Litestar:
    """`extra_routes` mounts more handlers under /api (embedding, and tests that need a
    route which fails on purpose). A `box` given is used as is and stopped by whoever
    started it (server.serve starts it before listening, so start failures are one line)."""

    # The running box, also kept as app.state.box. Requests read it here: a read through
    # Litestar's State goes through a Python __getattr__ (half a microsecond a request).
    running = box

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        nonlocal running
        if box is not None:
            app.state.box = box
            box.jobs.start()
            try:
                yield
            finally:
                await box.jobs.stop()
            return
        started = await Box.start(config)
        started.log_start_notes()
        app.state.box = running = started
        started.jobs.start()
        try:
            yield
        finally:
            await started.stop()

    def provide_box() -> Box:
        # A closure, not `state: State`: Litestar would build a State copy per request.
        assert running is not None, "the box runs only within the app's lifespan"
        return running

    api = Router(
        path="/api",
        route_handlers=[
            health,
            *event_routes,
            *identity_routes,
            *store_routes,
            *connect_routes,
            *phone_number_routes,
            *inbound_configuration_routes,
            *persona_routes,
            *knowledge_routes(config.knowledge),
            *billing_routes,
            *call_routes,
            *job_routes,
            *(debug_routes if config.admin.debug_endpoints else []),
            *integration_routes,
            *extra_routes,
        ],
    )
    cors = (
        CORSConfig(allow_origins=config.server.cors_origins, allow_credentials=True)
        if config.server.cors_origins
        else None
    )
    app = Litestar(
        route_handlers=[api],
        lifespan=[lifespan],
        dependencies={
            "box": Provide(provide_box, sync_to_thread=False),
            "principal": Provide(provide_principal),
        },
        exception_handlers={Exception: handle_exception},
        # Ahead of every route's own guards: a cross-site request is refused before it
        # is authenticated, a body of the wrong type before it is read.
        guards=[requires_first_party(config.server)],
        cors_config=cors,
        request_max_body_size=config.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="telentir-box",
            version=__version__,
            description=openapi.DESCRIPTION,
            tags=openapi.TAGS,
            path=SCHEMA_PATH,
            render_plugins=[OfflineSwaggerPlugin()],
            openapi_router=docs_router(),
        ),
        logging_config=None,  # logs.configure_logging owns the handlers
        debug=False,
    )
    openapi.complete_schema(app)
    # Route middleware never sees unmatched paths (404/405) or CORS preflights; wrapping
    # the app's outermost handler gives every response its request id and headers, those
    # of the object hot path included.
    https = config.server.public_url.startswith("https://")
    hot_path = object_hot_path(options_answer(app, app.asgi_handler, cors=cors is not None), provide_box)
    app.asgi_handler = request_context_middleware(https=https)(hot_path)
    return app
