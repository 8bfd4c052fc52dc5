"""create_app(config) -> the Litestar application: routes under /api, the error
format, request context middleware, CORS, OpenAPI and the Box lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import ControllerRouterHandler

from telentir_box import __version__
from telentir_box.auth.guards import provide_principal
from telentir_box.auth.team_routes import identity_routes
from telentir_box.box import Box
from telentir_box.config import Config
from telentir_box.connect.routes import connect_routes
from telentir_box.events.routes import event_routes
from telentir_box.health import health
from telentir_box.integrations.routes import integration_routes
from telentir_box.store.hot_path import object_hot_path
from telentir_box.store.routes import store_routes
from telentir_box.web.csrf import requires_first_party
from telentir_box.web.errors import handle_exception
from telentir_box.web.middleware import request_context_middleware


def create_app(
    config: Config, extra_routes: Sequence[ControllerRouterHandler] = (), box: Box | None = None
) -> Litestar:
    """`extra_routes` mounts more handlers under /api (embedding, and tests that need a
    route which fails on purpose). A `box` given is used as is and stopped by whoever
    started it (server.serve starts it before listening, so start failures are one line)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if box is not None:
            app.state.box = box
            yield
            return
        started = await Box.start(config)
        started.log_start_notes()
        app.state.box = started
        try:
            yield
        finally:
            await started.stop()

    def provide_box() -> Box:
        # A closure, not `state: State`: Litestar would build a State copy per request.
        return app.state.box

    api = Router(
        path="/api",
        route_handlers=[
            health,
            *event_routes,
            *identity_routes,
            *store_routes,
            *connect_routes,
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
            path="/api/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,  # logs.configure_logging owns the handlers
        debug=False,
    )
    # Route middleware never sees unmatched paths (404/405) or CORS preflights; wrapping
    # the app's outermost handler gives every response its request id and headers, those
    # of the object hot path included.
    https = config.server.public_url.startswith("https://")
    hot_path = object_hot_path(app.asgi_handler, provide_box)
    app.asgi_handler = request_context_middleware(https=https)(hot_path)
    return app
