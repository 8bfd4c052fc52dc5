"""Configuration: msgspec Structs read from TOML, every field overridable from the
environment as TELENTIR_BOX_<SECTION>__<KEY>. With no file the embedded defaults run."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

ENV_PREFIX = "TELENTIR_BOX_"
CONFIG_ENV = "TELENTIR_BOX_CONFIG"
MASK = "********"
_RANGE_MESSAGE = re.compile(r"`(?P<field>\w+)` (?P<rest>.*) - at `\$\.(?P<section>\w+)`")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
# Slash-separated segments, none empty and none starting with a dot: no "." or ".."
# segment, no trailing slash and no percent-escapes, so an allowed connector path names
# one route and cannot be another route's spelling.
CONNECTOR_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


class ConfigError(Exception):
    """A configuration problem, worded as one line for the operator."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A config section; each checks its ranges in __post_init__, so a bad value stops
    `check-config` and every command at start instead of misbehaving later (a read pool
    of 0 used to hang the box for good)."""

    def _at_least(self, minimum: float, *names: str) -> None:
        for name in names:
            if getattr(self, name) < minimum:
                raise ValueError(f"`{name}` must be at least {minimum}, not {getattr(self, name)}")

    def _at_most(self, maximum: float, *names: str) -> None:
        for name in names:
            if getattr(self, name) > maximum:
                raise ValueError(f"`{name}` must be at most {maximum}, not {getattr(self, name)}")

    def _positive(self, *names: str) -> None:
        for name in names:
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be more than 0, not {getattr(self, name)}")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 3000
    public_url: str = ""
    cors_origins: list[str] = []
    max_body_bytes: int = 1_048_576
    shutdown_timeout: float = 3.0
    trusted_proxies: list[str] = []
    header_timeout: float = 10.0
    max_header_bytes: int = 16_384
    max_header_block_bytes: int = 65_536
    max_connections: int = 8192

    def __post_init__(self) -> None:
        self._at_least(1, "port", "max_body_bytes")
        self._at_most(65535, "port")
        self._positive("shutdown_timeout")
        # Browsers send the session cookie to these origins and let them read the
        # answers, so each must be named exactly: a wildcard would open every account
        # to every web page.
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"cors_origins entries must be origins such as https://app.example.com, not {origin!r}"
                )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies entries must be addresses or networks such as 10.0.0.0/8, not {proxy!r}"
                ) from None
        if not 0 < self.header_timeout <= 300:
            raise ValueError("header_timeout must be between 0 and 300 seconds")
        if not 1024 <= self.max_header_bytes <= self.max_header_block_bytes <= 16_777_216:
            raise ValueError(
                "max_header_bytes must be at least 1024 and at most max_header_block_bytes (at most 16 MiB)"
            )
        if self.max_connections < 16:
            raise ValueError("max_connections must be at least 16")


class DataConfig(_Section):
    dir: str = "./telentir-data"

    def __post_init__(self) -> None:
        if not self.dir.strip():
            raise ValueError("`dir` must name a directory")


class DatabaseConfig(_Section):
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    read_pool_size: int = 4
    busy_timeout_ms: int = 5000
    max_batch: int = 256

    def __post_init__(self) -> None:
        self._at_least(1, "read_pool_size", "busy_timeout_ms", "max_batch")


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class AuthConfig(_Section):
    registration: Literal["invite", "open", "closed"] = "invite"
    session_ttl_hours: int = 12
    remember_ttl_days: int = 30
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    max_attempts: int = 5
    lockout_seconds: int = 900
    phone_code_ttl_seconds: int = 600
    phone_code_attempts: int = 5
    phone_resend_seconds: int = 60
    phone_sends_per_day: int = 10
    registrations_per_ip_per_hour: int = 10
    reset_ttl_hours: int = 24
    invite_ttl_days: int = 7

    def __post_init__(self) -> None:
        self._at_least(
            1,
            "session_ttl_hours",
            "remember_ttl_days",
            "argon2_time_cost",
            "argon2_parallelism",
            "max_attempts",
            "lockout_seconds",
            "phone_code_ttl_seconds",
            "phone_code_attempts",
            "phone_sends_per_day",
            "registrations_per_ip_per_hour",
            "reset_ttl_hours",
            "invite_ttl_days",
        )
        self._at_least(0, "phone_resend_seconds")
        # Argon2 itself needs 8 KiB of memory per lane.
        self._at_least(8 * self.argon2_parallelism, "argon2_memory_kib")


class TwilioConfig(_Section):
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_base: str = "https://api.twilio.com"
    quote_ttl_seconds: int = 600

    def __post_init__(self) -> None:
        # A phone-number price quote is good for minutes, not hours.
        if not 1 <= self.quote_ttl_seconds <= 3600:
            raise ValueError(f"`quote_ttl_seconds` must be 1 to 3600, not {self.quote_ttl_seconds}")


class SmtpConfig(_Section):
    host: str = ""
    port: int = 587
    username: str = ""
    password: str = ""
    starttls: bool = True
    sender: str = "telentir-box@localhost"

    def __post_init__(self) -> None:
        self._at_least(1, "port")
        self._at_most(65535, "port")


class StoreConfig(_Section):
    max_object_bytes: int = 1_048_576
    max_metadata_bytes: int = 16_384
    page_size: int = 100
    server_generations_per_hour: int = 10

    def __post_init__(self) -> None:
        self._at_least(
            1, "max_object_bytes", "max_metadata_bytes", "page_size", "server_generations_per_hour"
        )
        self._at_most(100_000, "server_generations_per_hour")


class EventsConfig(_Section):
    heartbeat_seconds: float = 15.0
    retention_days: int = 7
    retention_count: int = 1_000_000
    queue_size: int = 1000
    max_streams_per_user: int = 32
    max_streams: int = 2000

    def __post_init__(self) -> None:
        self._positive("heartbeat_seconds")
        self._at_least(
            1, "retention_days", "retention_count", "queue_size", "max_streams_per_user", "max_streams"
        )


class ConnectConfig(_Section):
    base_url: str = ""
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    # The only connector paths /api/connect calls (exactly as written), and those of them
    # that spend lead credits; every other path is refused before the connector is called.
    paths: list[str] = msgspec.field(default_factory=lambda: ["/get-leads"])
    metered_paths: list[str] = msgspec.field(default_factory=lambda: ["/get-leads"])

    def __post_init__(self) -> None:
        for path in self.paths:
            if not CONNECTOR_PATH.fullmatch(path):
                raise ValueError(f"paths entries must be absolute paths such as /get-leads, not {path!r}")
        for path in self.metered_paths:
            if path not in self.paths:
                raise ValueError(f"metered_paths entry {path!r} must also be listed in paths")
        self._positive("timeout_seconds", "connect_timeout_seconds")


PLAN_KEYS = ("starter", "pro", "growth", "agency")


class PlanConfig(_Section):
    """One plan of the catalog: every field of the client's plan object, in dollars,
    minutes and counts, and the Stripe price its subscription is sold at."""

    name: str
    monthly_price_usd: float
    included_minutes: int
    overage_usd_per_minute: float
    included_leads: int
    included_outbound_calls: int
    included_inbound_calls: int
    outbound_fixed_usd: float
    inbound_fixed_usd: float
    lead_overage_usd_per_lead: float
    stripe_price: str = ""

    def __post_init__(self) -> None:
        self._at_least(
            0,
            "monthly_price_usd",
            "included_minutes",
            "overage_usd_per_minute",
            "included_leads",
            "included_outbound_calls",
            "included_inbound_calls",
            "outbound_fixed_usd",
            "inbound_fixed_usd",
            "lead_overage_usd_per_lead",
        )


def _plan(name: str, price: float, units: int, overage: float, fixed: float) -> PlanConfig:
    return PlanConfig(
        name=name,
        monthly_price_usd=price,
        included_minutes=units,
        overage_usd_per_minute=overage,
        included_leads=units,
        included_outbound_calls=units,
        included_inbound_calls=units,
        outbound_fixed_usd=fixed,
        inbound_fixed_usd=fixed,
        lead_overage_usd_per_lead=0.10,
    )


def default_plans() -> dict[str, PlanConfig]:
    return {
        "starter": _plan("Starter", 49, 500, 0.12, 0.05),
        "pro": _plan("Pro", 149, 2000, 0.10, 0.04),
        "growth": _plan("Growth", 399, 6000, 0.08, 0.03),
        "agency": _plan("Agency", 999, 20000, 0.06, 0.02),
    }


class BillingConfig(_Section):
    lead_allowance: int = 100
    period: Literal["monthly"] = "monthly"
    lead_price_cents: int = 10
    currency: str = "usd"
    stripe_secret_key: str = ""
    stripe_customer_id: str = ""
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str = ""
    webhook_tolerance_seconds: int = 300
    topup_cents: int = 2000
    payg_usd_per_minute: float = 0.20
    plans: dict[str, PlanConfig] = msgspec.field(default_factory=default_plans)

    def __post_init__(self) -> None:
        self._at_least(0, "lead_allowance", "payg_usd_per_minute")
        # The prepaid balance is kept in credits of lead_price_cents: calls and top-ups
        # convert through it, so it cannot be 0.
        self._at_least(1, "lead_price_cents", "webhook_tolerance_seconds")
        self._at_least(50, "topup_cents")
        for key in self.plans:
            if key not in PLAN_KEYS:
                raise ValueError(f"plans keys must be among {', '.join(PLAN_KEYS)}, not {key!r}")
        if not re.fullmatch(r"[a-z]{3}", self.currency):
            raise ValueError(
                f"`currency` must be a three-letter ISO code in lower case, not {self.currency!r}"
            )


def _check_api_base(api_base: str) -> None:
    if not api_base.startswith(("https://", "http://")):
        raise ValueError(f"api_base must be an http(s) URL such as https://api.example.com, not {api_base!r}")


class ElevenLabsConfig(_Section):
    api_key: str = ""
    api_base: str = "https://api.elevenlabs.io"
    tts_model: str = "eleven_flash_v2_5"
    tts_output_format: str = "mp3_44100_128"
    agent_id: str = ""
    webhook_secret: str = ""
    personalize_secret: str = ""
    max_webhook_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _check_api_base(self.api_base)
        self._at_least(1024, "max_webhook_bytes")


class OpenAIConfig(_Section):
    api_key: str = ""
    api_base: str = "https://api.openai.com"
    tts_model: str = "gpt-4o-mini-tts"

    def __post_init__(self) -> None:
        _check_api_base(self.api_base)


class PersonasConfig(_Section):
    cache_seconds: int = 3600

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= 86_400:
            raise ValueError("cache_seconds must be between 0 and 86400")


class KnowledgeConfig(_Section):
    max_file_bytes: int = 10_485_760
    max_files_per_request: int = 10
    max_documents_per_base: int = 1000
    max_bytes_per_user: int = 104_857_600
    max_text_bytes: int = 20_971_520
    max_pdf_pages: int = 2000
    search_results: int = 5
    link_timeout_seconds: float = 15.0
    link_max_bytes: int = 5_242_880
    link_max_redirects: int = 5
    allow_private_links: bool = False
    allowed_networks: list[str] = []

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_text_bytes", "link_max_bytes", "max_bytes_per_user"):
            if not 1024 <= getattr(self, name) <= 1 << 40:
                raise ValueError(f"{name} must be between 1024 and 2**40")
        if not 1 <= self.max_files_per_request <= 100:
            raise ValueError("max_files_per_request must be between 1 and 100")
        if not 1 <= self.max_documents_per_base <= 1_000_000:
            raise ValueError("max_documents_per_base must be between 1 and 1000000")
        if not 1 <= self.max_pdf_pages <= 100_000:
            raise ValueError("max_pdf_pages must be between 1 and 100000")
        if not 1 <= self.search_results <= 100:
            raise ValueError("search_results must be between 1 and 100")
        if not 0.1 <= self.link_timeout_seconds <= 300:
            raise ValueError("link_timeout_seconds must be between 0.1 and 300")
        if not 0 <= self.link_max_redirects <= 20:
            raise ValueError("link_max_redirects must be between 0 and 20")
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"allowed_networks entries must be networks such as 10.1.2.0/24, not {network!r}"
                ) from None


class CallsConfig(_Section):
    max_concurrent_per_user: int = 5
    max_concurrent: int = 100
    keep_twilio_recordings: bool = False
    finalize_after_seconds: int = 4 * 3600
    unmatched_webhook_seconds: int = 3600

    def __post_init__(self) -> None:
        self._at_least(1, "max_concurrent_per_user", "max_concurrent")
        self._at_least(60, "finalize_after_seconds", "unmatched_webhook_seconds")


_DAILY_AT = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_WEEKLY_AT = re.compile(r"(?:mon|tue|wed|thu|fri|sat|sun) (?:[01][0-9]|2[0-3]):[0-5][0-9]")


class JobsConfig(_Section):
    # When each scheduled job runs, in UTC: "HH:MM" every day, "ddd HH:MM" every week
    # (day names, not numbers: cron's and APScheduler's weekday numbers differ).
    cleanup_recordings_at: str = "03:00"
    daily_summary_at: str = "18:00"
    weekly_report_at: str = "mon 09:00"
    # Recordings older than this many days are deleted; 0 keeps them for ever.
    recording_retention_days: int = 90
    # The Bearer secret of /api/cron/<job>; empty: the one generated at init.
    cron_secret: str = ""

    def __post_init__(self) -> None:
        for name in ("cleanup_recordings_at", "daily_summary_at"):
            if not _DAILY_AT.fullmatch(getattr(self, name)):
                raise ValueError(f"`{name}` must be a UTC time such as 03:00, not {getattr(self, name)!r}")
        if not _WEEKLY_AT.fullmatch(self.weekly_report_at):
            raise ValueError(
                "`weekly_report_at` must be a day and a UTC time such as 'mon 09:00',"
                f" not {self.weekly_report_at!r}"
            )
        self._at_least(0, "recording_retention_days")
        if self.cron_secret and len(self.cron_secret) < 32:
            raise ValueError("`cron_secret` must be at least 32 characters (or empty: the generated one)")


class AdminConfig(_Section):
    # GET /api/debug/db for the super admin; false removes the route altogether.
    debug_endpoints: bool = True


class OAuthProviderConfig(_Section):
    """One OAuth provider's app registration and endpoints; unset client_id: not offered."""

    client_id: str = ""
    client_secret: str = ""
    authorize_url: str = ""
    token_url: str = ""
    revoke_url: str = ""
    api_base: str = ""
    scopes: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.authorize_url and self.token_url)


class GoogleCalendarConfig(OAuthProviderConfig):
    authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - an endpoint
    revoke_url: str = "https://oauth2.googleapis.com/revoke"
    api_base: str = "https://www.googleapis.com"
    scopes: str = "openid email https://www.googleapis.com/auth/calendar.events"
    calendar_id: str = "primary"


class HubSpotConfig(OAuthProviderConfig):
    authorize_url: str = "https://app.hubspot.com/oauth/authorize"
    token_url: str = "https://api.hubapi.com/oauth/2026-03/token"  # noqa: S105 - an endpoint
    revoke_url: str = "https://api.hubapi.com/oauth/2026-03/token/revoke"
    api_base: str = "https://api.hubapi.com"
    scopes: str = "crm.objects.contacts.read crm.objects.contacts.write oauth"


class SalesforceConfig(OAuthProviderConfig):
    authorize_url: str = "https://login.salesforce.com/services/oauth2/authorize"
    token_url: str = "https://login.salesforce.com/services/oauth2/token"  # noqa: S105 - an endpoint
    revoke_url: str = "https://login.salesforce.com/services/oauth2/revoke"
    scopes: str = "api refresh_token"
    api_version: str = "v62.0"


class MicrosoftTeamsConfig(OAuthProviderConfig):
    tenant: str = "common"
    authorize_url: str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
    token_url: str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"  # noqa: S105 - an endpoint
    api_base: str = "https://graph.microsoft.com"
    scopes: str = "openid offline_access User.Read ChannelMessage.Send ChatMessage.Send"
    team_id: str = ""
    channel_id: str = ""
    chat_id: str = ""

    def __post_init__(self) -> None:
        if self.chat_id and (self.team_id or self.channel_id):
            raise ValueError("give either chat_id or team_id and channel_id, not both")
        if bool(self.team_id) != bool(self.channel_id):
            raise ValueError("team_id and channel_id go together")


class IntegrationsConfig(_Section):
    dashboard_url: str = "/"
    state_ttl_seconds: int = 600
    max_attempts: int = 8
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    lease_seconds: float = 120.0
    send_concurrency: int = 8
    google_calendar: GoogleCalendarConfig = msgspec.field(default_factory=GoogleCalendarConfig)
    hubspot: HubSpotConfig = msgspec.field(default_factory=HubSpotConfig)
    salesforce: SalesforceConfig = msgspec.field(default_factory=SalesforceConfig)
    microsoft_teams: MicrosoftTeamsConfig = msgspec.field(default_factory=MicrosoftTeamsConfig)

    def __post_init__(self) -> None:
        self._at_least(1, "state_ttl_seconds", "max_attempts", "send_concurrency")
        self._at_most(3600, "state_ttl_seconds")
        self._positive("retry_base_seconds", "retry_max_seconds", "lease_seconds")


class RateLimitConfig(_Section):
    requests_per_minute: int = 1200

    def __post_init__(self) -> None:
        self._at_least(0, "requests_per_minute")


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    data: DataConfig = msgspec.field(default_factory=DataConfig)
    database: DatabaseConfig = msgspec.field(default_factory=DatabaseConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    twilio: TwilioConfig = msgspec.field(default_factory=TwilioConfig)
    smtp: SmtpConfig = msgspec.field(default_factory=SmtpConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    connect: ConnectConfig = msgspec.field(default_factory=ConnectConfig)
    billing: BillingConfig = msgspec.field(default_factory=BillingConfig)
    elevenlabs: ElevenLabsConfig = msgspec.field(default_factory=ElevenLabsConfig)
    openai: OpenAIConfig = msgspec.field(default_factory=OpenAIConfig)
    personas: PersonasConfig = msgspec.field(default_factory=PersonasConfig)
    knowledge: KnowledgeConfig = msgspec.field(default_factory=KnowledgeConfig)
    calls: CallsConfig = msgspec.field(default_factory=CallsConfig)
    jobs: JobsConfig = msgspec.field(default_factory=JobsConfig)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    integrations: IntegrationsConfig = msgspec.field(default_factory=IntegrationsConfig)
    ratelimit: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)

    def __post_init__(self) -> None:
        # Every event stream holds a connection, so the cap on connections must carry them.
        if self.events.max_streams > self.server.max_connections:
            raise ValueError("events.max_streams must not exceed server.max_connections")

    @property
    def data_dir(self) -> Path:
        return Path(self.data.dir).expanduser().resolve()


def config_path(path: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The config file in force: the one named, else $TELENTIR_BOX_CONFIG, else none."""
    environ = os.environ if environ is None else environ
    return path or environ.get(CONFIG_ENV) or None


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Read the TOML file (if any), lay the environment and then `overrides` (command-line
    options, by section) over it and validate the result."""
    environ = os.environ if environ is None else environ
    path = config_path(path, environ)
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            # A nested section (integrations.hubspot) is named SECTION__SUB__KEY.
            sub, nested, sub_key = key.partition("__")
            target = raw.setdefault(section, {})
            if nested:
                target, key = target.setdefault(sub, {}), sub_key
            target[key] = _env_value(value)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid config{where}: {_readable(str(exc))}") from None


def _env_value(value: str) -> Any:
    # Lists come as JSON ("["a","b"]"); everything else stays a string and msgspec's
    # lax mode turns "3000" or "true" into the field's type.
    if value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _readable(message: str) -> str:
    # msgspec says "... - at `$.server.port`"; operators think in "server.port". A range
    # check names its field and msgspec the section: join them.
    ranged = _RANGE_MESSAGE.fullmatch(message)
    if ranged:
        return f"`{ranged['section']}.{ranged['field']}` {ranged['rest']}"
    return message.replace("`$.", "`").replace("$.", "")


def masked(config: Config) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by a mask."""
    data = msgspec.to_builtins(config)
    sections = list(data.values())
    while sections:
        section = sections.pop()
        for key, value in section.items():
            if isinstance(value, dict):
                sections.append(value)
            elif value and _is_secret(key):
                section[key] = MASK
    return data


def _is_secret(key: str) -> bool:
    if key.endswith("_url"):  # token_url names an endpoint, not a token
        return False
    return key.endswith("api_key") or any(word in key for word in ("secret", "token", "password"))
