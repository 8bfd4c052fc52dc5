"""The `telentir-box` command: a thin shell over functions the tests call directly."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from telentir_box import __version__
from telentir_box.config import Config, ConfigError, load_config, masked
from telentir_box.crypto.sealing import MasterKeyError
from telentir_box.db.migrate import SchemaTooNew

Command = Callable[[argparse.Namespace, Config], int]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "version":
        print(f"telentir-box {__version__}")
        return 0
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except (ConfigError, MasterKeyError, SchemaTooNew) as exc:
        print(f"telentir-box: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telentir-box",
        description="Self-hosted Telentir encrypted object store and Renchi back office.",
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--config",
            metavar="PATH",
            help="TOML config file (default: $TELENTIR_BOX_CONFIG, else built-in defaults)",
        )
        sub.set_defaults(command=name, handler=handler)
        return sub

    serve = command("serve", cmd_serve, "run the HTTP server (initialises the data directory on first run)")
    serve.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (default from config: 3000)")
    command("init", cmd_init, "create the data directory, keys and database; print the setup token once")
    command("migrate", cmd_migrate, "apply pending database migrations")
    command("check-config", cmd_check_config, "validate the config and print it with secrets masked")
    version = commands.add_parser("version", help="print the version", description="print the version")
    version.set_defaults(command="version")
    return parser


def run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows only
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_init(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.datadir import initialise

    async def go() -> int:
        db, report = await initialise(config)
        await db.close()
        if not report.changed:
            print(f"{config.data_dir} is already initialised; nothing changed.")
            return 0
        for item in report.created:
            print(f"created {item}")
        for name in report.migrations:
            print(f"applied migration {name}")
        if report.setup_token:
            print(
                "\nOne-time setup token for the first super admin (shown once; use it with"
                f" POST /api/setup-super-admin):\n\n    {report.setup_token}\n"
            )
        return 0

    return run(go())


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.datadir import ensure_data_dir, open_database
    from telentir_box.db.migrate import apply_migrations

    async def go() -> int:
        ensure_data_dir(config.data_dir)
        db = open_database(config)
        await db.open()
        try:
            applied = await apply_migrations(db.writer)
        finally:
            await db.close()
        for migration in applied:
            print(f"applied migration {migration.version:04d}_{migration.name}")
        if not applied:
            print("the database schema is up to date")
        return 0

    return run(go())


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(masked(config), indent=2))
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.logs import configure_logging
    from telentir_box.server import serve

    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    configure_logging(config.log.level, config.log.format)
    return run(serve(config))
