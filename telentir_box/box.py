"""The runtime object: everything the process holds open (database, keyring, the
shared HTTP client, clock), built once at start from the config and injected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from telentir_box import __version__
from telentir_box.config import Config
from telentir_box.crypto.keyring import Keyring
from telentir_box.datadir import initialise, load_keyring, write_setup_token_file
from telentir_box.db.database import Database

log = logging.getLogger("telentir_box")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Box:
    config: Config
    db: Database
    keyring: Keyring
    http: httpx.AsyncClient
    clock: Callable[[], datetime] = utc_now
    # Set when the process starts to stop, so long-lived streams can end cleanly.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, config: Config) -> Box:
        db, report = await initialise(config)
        if report.changed:
            log.info(
                "data directory initialised",
                extra={"made": report.created, "migrations": report.migrations},
            )
        if report.setup_token:
            path = write_setup_token_file(config.data_dir, report.setup_token)
            log.warning(
                "first start: create the super admin with POST /api/setup-super-admin"
                " and the one-time setup token in the file named here",
                extra={"setup_token_file": str(path)},
            )
        keyring = await load_keyring(config, db)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0), headers={"user-agent": f"telentir-box/{__version__}"}
        )
        return cls(config=config, db=db, keyring=keyring, http=http)

    async def stop(self) -> None:
        self.stopping.set()
        await self.http.aclose()
        await self.db.close()
