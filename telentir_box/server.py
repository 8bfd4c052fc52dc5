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
from telentir_box.box import Box
from telentir_box.config import Config
from telentir_box.datadir import exclusive_use
from telentir_box.open_files import connection_cap, raise_open_file_limit
from telentir_box.web.connections import KEEP_ALIVE_SECONDS, ConnectionLimits, protocol_class

log = logging.getLogger("telentir_box")
GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (default 700)


class BoxServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, start_line: dict[str, str]) -> None:
        super().__init__(config)
        self.start_line = start_line

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
        if self.started:
            log.info("telentir-box listening", extra=self.start_line)
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


class CannotListen(Exception):
    """The address is taken or not ours: said in one line, before anything else is done."""


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind the server's socket first, so a taken port stops the start before the data
    directory is touched or "listening" is logged; uvicorn serves on this socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/api" if ":" in host else f"http://{host}:{port}/api"


async def serve(config: Config, config_source: str | None = None) -> int:
    """Start in an order where every failure is one line and changes nothing it need
    not: the config is valid (checked at load), then the port is bound, then the data
    directory is held and the box started, and only then does uvicorn take the signals
    (until then SIGTERM and SIGINT stop the process as they always do)."""
    open_files = raise_open_file_limit()
    max_connections = connection_cap(config, open_files)
    sock = listen_socket(config.server.host, config.server.port)
    try:
        with exclusive_use(config.data_dir, "telentir-box serve"):
            box = await Box.start(config)
            try:
                box.log_start_notes()
                server = BoxServer(
                    uvicorn.Config(
                        create_app(config, box=box),
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
                    ),
                    start_line={
                        "config": config_source or "built-in defaults",
                        "data_dir": str(config.data_dir),
                        "url": _url(sock),
                        "open_files": str(open_files),
                        "max_connections": str(max_connections),
                    },
                )
                await server.serve(sockets=[sock])
                return 0 if server.started else 1
            finally:
                await box.stop()
    finally:
        sock.close()
