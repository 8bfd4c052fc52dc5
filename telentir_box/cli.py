"""The `telentir-box` command: a thin shell over functions the tests call directly."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from telentir_box import __version__
from telentir_box.config import Config, ConfigError, config_path, load_config, masked
from telentir_box.crypto.sealing import MasterKeyError, master_key_from_env
from telentir_box.datadir import (
    DATABASE_FILE,
    DataDirError,
    check_restore_key,
    discard_setup_token_file,
    exclusive_use,
    initialise,
    open_database,
    restore_database,
)
from telentir_box.db.backup import BackupError, backup_database
from telentir_box.db.migrate import SchemaTooNew, apply_migrations
from telentir_box.errors import AppError
from telentir_box.owner import become_data_dir_owner

Command = Callable[[argparse.Namespace, Config], int]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "version":  # answers whatever the config says
        return print_version()
    try:
        config = load_config(args.config, overrides=command_line_settings(args))
        master_key_from_env()  # a malformed key stops every command before it starts
        switched = become_data_dir_owner(config.data_dir)
        if switched:
            print(f"telentir-box: {switched}", file=sys.stderr)
        return args.handler(args, config)
    except (ConfigError, MasterKeyError, SchemaTooNew, AppError, BackupError, DataDirError) as exc:
        return fail(str(exc))
    except OSError as exc:  # anything else the system refused, still one line
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130


def fail(message: str) -> int:
    print(f"telentir-box: {message}", file=sys.stderr)
    return 2


def command_line_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Options that stand for settings, validated with the config like the file's."""
    server = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name, None) is not None}
    return {"server": server} if args.command == "serve" and server else {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telentir-box",
        description="Self-hosted Telentir encrypted object store and Renchi back office.",
    )
    parser.add_argument("--version", action="version", version=f"telentir-box {__version__}")
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
    doctor = command(
        "doctor", cmd_doctor, "check this box's health and say why not (changes nothing; exit 1 on a problem)"
    )
    doctor.add_argument(
        "--online", action="store_true", help="also contact each configured provider with its credentials"
    )
    backup = command("backup", cmd_backup, "copy the database consistently, also while the box runs")
    backup.add_argument("destination", help="a new file, or a directory for a time-stamped file")
    restore = command(
        "restore", cmd_restore, "put a backup in place of the database (the box must be stopped)"
    )
    restore.add_argument("backup", help="a file made by `telentir-box backup`")
    admin = commands.add_parser(
        "admin", help="administer users offline", description="administer users offline"
    )
    admin_commands = admin.add_subparsers(title="admin commands", metavar="ADMIN_COMMAND", required=True)

    def admin_command(name: str, handler: Command, help: str) -> argparse.ArgumentParser:
        sub = admin_commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", metavar="PATH", help="TOML config file")
        sub.set_defaults(command=f"admin {name}", handler=handler)
        return sub

    create_user = admin_command("create-user", cmd_admin_create_user, "create a user; prints its id as JSON")
    create_user.add_argument("email")
    create_user.add_argument(
        "--role",
        choices=["owner", "admin", "member"],
        help="team role (default: member; owner with --super-admin)",
    )
    create_user.add_argument(
        "--super-admin", action="store_true", help="make the user the super admin (ends the one-time setup)"
    )
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (else one is generated)"
    )
    create_user.add_argument("--first-name", default="")
    create_user.add_argument("--last-name", default="")
    create_user.add_argument("--phone", default="", help="E.164 phone number")
    create_user.add_argument("--phone-verified", action="store_true", help="mark the phone as verified")
    create_user.add_argument("--api-key", metavar="NAME", help="also create an API key and print it once")
    admin_command("list-users", cmd_admin_list_users, "list users as JSON")
    for name, handler, help in (
        ("reset-2fa", cmd_admin_reset_2fa, "turn off a user's two-factor authentication"),
        ("verify-phone", cmd_admin_verify_phone, "mark a user's phone as verified"),
        ("revoke-sessions", cmd_admin_revoke_sessions, "sign a user out everywhere (API keys stay)"),
    ):
        admin_command(name, handler, help).add_argument("email")
    set_role = admin_command("set-role", cmd_admin_set_role, "change a user's team role")
    set_role.add_argument("email")
    set_role.add_argument("role", choices=["owner", "admin", "member"])

    grant = admin_command("grant-credits", cmd_admin_grant_credits, "grant prepaid lead credits to the team")
    grant.add_argument("email")
    grant.add_argument("credits", type=int)
    grant.add_argument("--note", default="", help="a note kept in the credit ledger")
    set_plan = admin_command("set-plan", cmd_admin_set_plan, "set the team's plan without Stripe (or none)")
    set_plan.add_argument("email", help="the team member the change is recorded for in the audit trail")
    set_plan.add_argument("plan", help="a plan key of [billing.plans] (starter, pro, growth, agency) or none")
    admin_command("cron-secret", cmd_admin_cron_secret, "print the Bearer secret of /api/cron/<job> as JSON")
    demo = command("demo-connector", cmd_demo_connector, "serve synthetic leads as SSE (dev)")
    demo.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=3100, help="bind port (default 3100)")
    demo.add_argument("--delay-ms", type=float, default=0.0, help="pause between chunks of 200 leads")
    telephony = command(
        "demo-telephony",
        cmd_demo_telephony,
        "stand in for Twilio and ElevenLabs, playing every call's webhooks (dev)",
    )
    telephony.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    telephony.add_argument("--port", type=int, default=3200, help="bind port (default 3200)")
    telephony.add_argument(
        "--box-url", default="", help="where the box listens (default http://127.0.0.1:<port>)"
    )

    command("version", lambda args, config: print_version(), "print the version")
    return parser


def print_version() -> int:
    print(f"telentir-box {__version__}")
    return 0


def run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows only
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_init(args: argparse.Namespace, config: Config) -> int:
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
                "\nOne-time setup token for the first super admin (use it once with"
                f" POST /api/setup-super-admin; also in {report.setup_token_file} until then):"
                f"\n\n    {report.setup_token}\n"
            )
        return 0

    return run(go())


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    async def go() -> int:
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

    with exclusive_use(config.data_dir, "telentir-box migrate"):
        return run(go())


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    report = backup_database(
        config.data_dir / DATABASE_FILE,
        Path(args.destination),
        busy_timeout_ms=config.database.busy_timeout_ms,
    )
    print(json.dumps({"path": str(report.path), "bytes": report.bytes}))
    print(
        "telentir-box: the copy holds no master key; keep master.key (or TELENTIR_BOX_MASTER_KEY)"
        " backed up apart from it, or its sealed secrets cannot be opened",
        file=sys.stderr,
    )
    return 0


def cmd_restore(args: argparse.Namespace, config: Config) -> int:
    check_restore_key(config.data_dir)
    with exclusive_use(config.data_dir, "telentir-box restore"):
        report = restore_database(config, Path(args.backup))
    previous = str(report.previous) if report.previous else None
    print(json.dumps({"restored": str(report.restored), "previous": previous}))
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(masked(config), indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.doctor import format_report, has_problem, run_checks

    findings = run_checks(config, online=args.online)
    print(format_report(findings))
    return 1 if has_problem(findings) else 0


def cmd_admin_create_user(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth.accounts import NewUser, create_user
    from telentir_box.auth.apikeys import create_api_key
    from telentir_box.box import Box

    generated = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = generated = secrets.token_urlsafe(18)

    async def go() -> int:
        box = await Box.start(config)
        try:
            new = NewUser(
                email=args.email,
                password=password,
                role=args.role or ("owner" if args.super_admin else "member"),
                first_name=args.first_name,
                last_name=args.last_name,
                phone=args.phone,
                super_admin=args.super_admin,
                phone_verified=args.phone_verified,
            )
            result: dict[str, str] = {"id": await create_user(box.db, box.passwords, new)}
            if generated:
                result["password"] = generated
            if args.api_key:
                result["api_key"] = (
                    await create_api_key(box.db, box.authenticator, result["id"], args.api_key)
                ).key
        finally:
            await box.stop()
        if args.super_admin:
            discard_setup_token_file(config.data_dir)
        print(json.dumps(result))
        return 0

    return run(go())


def run_admin(config: Config, action: Callable[[Any], Coroutine[Any, Any, Any]]) -> int:
    """Start a box on the data directory, run one account action, print its JSON result."""
    from telentir_box.box import Box

    async def go() -> int:
        box = await Box.start(config)
        try:
            result = await action(box)
        finally:
            await box.stop()
        print(json.dumps(result))
        return 0

    return run(go())


def cmd_admin_list_users(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    return run_admin(config, admin.list_users)


def cmd_admin_reset_2fa(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    async def action(box: Any) -> dict[str, str]:
        await admin.reset_two_factor(box, args.email)
        return {"status": "ok"}

    return run_admin(config, action)


def cmd_admin_verify_phone(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    async def action(box: Any) -> dict[str, str]:
        await admin.verify_phone(box, args.email)
        return {"status": "ok"}

    return run_admin(config, action)


def cmd_admin_revoke_sessions(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    async def action(box: Any) -> dict[str, int]:
        return {"revoked": await admin.revoke_sessions(box, args.email)}

    return run_admin(config, action)


def cmd_admin_set_role(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    async def action(box: Any) -> dict[str, str]:
        await admin.set_role(box, args.email, args.role)
        return {"status": "ok"}

    return run_admin(config, action)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.logs import configure_logging
    from telentir_box.server import CannotListen, serve

    configure_logging(config.log.level, config.log.format)
    # Until the server takes the signals, Ctrl-C stops the start at once, as SIGTERM
    # does; asyncio's own handler would wait for a blocked database call to give up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return run(serve(config, config_path(args.config)))
    except CannotListen as exc:
        return fail(str(exc))


def cmd_admin_grant_credits(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin

    async def action(box: Any) -> dict[str, int]:
        user = await admin.find_user(box, args.email)
        await box.credits.grant(user.id, args.credits, args.note)
        return {"granted": args.credits, "balance": await box.credits.prepaid_balance()}

    return run_admin(config, action)


def cmd_admin_set_plan(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.auth import admin
    from telentir_box.auth.audit import record_audit

    async def action(box: Any) -> dict[str, str | None]:
        user = await admin.find_user(box, args.email)
        plan = None if args.plan == "none" else args.plan
        before = (await box.billing.account()).plan_key
        await box.billing.set_plan(plan)
        detail = {"from": before or "none", "to": plan or "none"}
        await record_audit(box.db, "plan_set", user_id=user.id, actor_id=user.id, detail=detail)
        return {"plan": plan}

    return run_admin(config, action)


def cmd_admin_cron_secret(args: argparse.Namespace, config: Config) -> int:
    async def action(box: Any) -> dict[str, str]:
        source = "config [jobs] cron_secret" if config.jobs.cron_secret else "generated at init"
        return {"cron_secret": box.jobs.cron_secret, "source": source}

    return run_admin(config, action)


def cmd_demo_connector(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.connect.demo import run_demo_connector

    print(f'demo connector: set [connect] base_url = "http://{args.host}:{args.port}"', flush=True)
    return run_demo_connector(args.host, args.port, args.delay_ms / 1000)


def cmd_demo_telephony(args: argparse.Namespace, config: Config) -> int:
    from telentir_box.voice.demo import run_demo_telephony

    box_url = args.box_url or f"http://127.0.0.1:{config.server.port}"
    here = f"http://{args.host}:{args.port}"
    print(
        f'demo telephony: set [twilio] api_base = "{here}" and [elevenlabs] api_base = "{here}";'
        f' inbound call: POST {here}/demo/inbound {{"from": ..., "to": <your number>}}',
        flush=True,
    )
    return run_demo_telephony(config, args.host, args.port, box_url)
