"""Running the app under uvicorn in-process, with a shutdown that systemd likes:
SIGTERM/SIGINT stop accepting, end streams, finish in-flight requests, exit 0."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Iterator
from types import FrameType

import uvicorn

from telentir_box.app import create_app
from telentir_box.config import Config
from telentir_box.datadir import exclusive_use
from telentir_box.open_files import connection_cap, raise_open_file_limit
from telentir_box.web.connections import KEEP_ALIVE_SECONDS, ConnectionLimits, protocol_class

log = logging.getLogger("telentir_box")
GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (default 700)


class BoxServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the caught signal after a graceful stop, which makes the
        # process die "by signal"; a requested stop is a clean exit (status 0) here.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What startup built (app, routes, schema, box) lives as long as the process:
        # keep it out of every garbage collection, and collect the young generation less
        # often, since request handling allocates and frees many short-lived objects.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        box = getattr(self.config.app.state, "box", None)
        if box is not None:
            # Long-lived streams watch this and end, so the graceful wait is short.
            box.stopping.set()


async def serve(config: Config) -> int:
    open_files = raise_open_file_limit()
    max_connections = connection_cap(config, open_files)
    app = create_app(config)
    server = BoxServer(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            http=protocol_class(ConnectionLimits.of(config.server, max_connections)),
            # The keep-alive wait is also the deadline for the next request's header.
            timeout_keep_alive=min(KEEP_ALIVE_SECONDS, config.server.header_timeout),  # type: ignore[arg-type]
            proxy_headers=bool(config.server.trusted_proxies),
            forwarded_allow_ips=config.server.trusted_proxies,
            server_header=False,
            timeout_graceful_shutdown=config.server.shutdown_timeout,
        )
    )
    with exclusive_use(config.data_dir, "telentir-box serve"):
        log.info("open-file limit", extra={"open_files": open_files, "max_connections": max_connections})
        log.info(
            "telentir-box listening",
            extra={"url": f"http://{config.server.host}:{config.server.port}/api"},
        )
        await server.serve()
    return 0 if server.started else 1
