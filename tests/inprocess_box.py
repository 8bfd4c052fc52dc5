"""The real box app served by uvicorn on a loopback port in a thread of the test
process, for tests that drive it over HTTP and also call in-process seams of the
running box (e.g. the finished-call seam the calls webhooks will use)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from telentir_box.app import create_app
from telentir_box.box import Box
from telentir_box.config import Config

T = TypeVar("T")


class InProcessBox:
    def __init__(self, config: Config, port: int) -> None:
        self.app = create_app(config)
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=port, log_config=None, lifespan="on", loop="asyncio"
            )
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def box(self) -> Box:
        return self.app.state.box

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._server.serve())
        self._loop.close()

    def __enter__(self) -> InProcessBox:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the box did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(20)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the box's event loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(20)
