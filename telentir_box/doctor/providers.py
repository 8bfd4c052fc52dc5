"""Each external provider (Twilio, SMTP, Stripe, the connector): not configured (a
note), partly configured (a problem), and, when asked, whether it answers with the
configured credentials at the configured base URL."""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import httpx

from telentir_box import __version__
from telentir_box.config import BillingConfig, Config, ConnectConfig, SmtpConfig, TwilioConfig
from telentir_box.connect.stripe_billing import StripeBilling, StripeFailed
from telentir_box.doctor.report import NOTE, OK, PROBLEM, Finding

PROVIDER_TIMEOUT_SECONDS = 10.0
TWILIO_ACCOUNT_PATH = "/2010-04-01/Accounts/{sid}.json"


async def check_providers(config: Config, *, online: bool) -> list[Finding]:
    """Each provider: not configured (a note), partly configured (a problem), configured,
    and with `online` whether it answers with the configured credentials."""
    async with httpx.AsyncClient(
        timeout=PROVIDER_TIMEOUT_SECONDS, headers={"user-agent": f"telentir-box/{__version__} doctor"}
    ) as http:
        return list(
            await asyncio.gather(
                check_twilio(config.twilio, http, online=online),
                check_smtp(config.smtp, online=online),
                check_stripe(config.billing, http, online=online),
                check_connector(config.connect, http, online=online),
            )
        )


def _configuration(name: str, fields: dict[str, str], unset: str) -> Finding | None:
    """A finding unless every field is set: a note for none, a problem for some."""
    missing = [key for key, value in fields.items() if not value]
    if len(missing) == len(fields):
        return Finding(name, NOTE, f"not configured: {unset}")
    if missing:
        return Finding(name, PROBLEM, f"partly configured: {', '.join(missing)} empty, so {unset}")
    return None


def _offline(name: str, where: str) -> Finding:
    return Finding(name, OK, f"configured ({where}); not contacted, add --online to check it")


def _unreachable(name: str, where: str, exc: Exception) -> Finding:
    return Finding(name, PROBLEM, f"cannot reach {where}: {str(exc) or type(exc).__name__}")


async def check_twilio(twilio: TwilioConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "twilio"
    fields = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_number": twilio.from_number,
    }
    unconfigured = _configuration(name, fields, "verification texts are written to the log")
    if unconfigured or not online:
        return unconfigured or _offline(name, twilio.api_base)
    url = twilio.api_base.rstrip("/") + TWILIO_ACCOUNT_PATH.format(sid=twilio.account_sid)
    try:
        response = await http.get(url, auth=(twilio.account_sid, twilio.auth_token))
    except httpx.HTTPError as exc:
        return _unreachable(name, twilio.api_base, exc)
    if response.status_code in (401, 403):
        return Finding(name, PROBLEM, f"{twilio.api_base} rejected the account SID and auth token")
    if response.status_code != 200:
        return Finding(name, PROBLEM, f"{twilio.api_base} answered HTTP {response.status_code}")
    return Finding(name, OK, f"{twilio.api_base} accepted the credentials")


def _smtp_login(smtp: SmtpConfig) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=PROVIDER_TIMEOUT_SECONDS) as client:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.noop()


async def check_smtp(smtp: SmtpConfig, *, online: bool) -> Finding:
    name = "smtp"
    where = f"{smtp.host}:{smtp.port}"
    if not smtp.host:
        return Finding(name, NOTE, "not configured: mail (reset links) is written to the log")
    if not online:
        return _offline(name, where)
    try:
        await asyncio.to_thread(_smtp_login, smtp)
    except smtplib.SMTPAuthenticationError:
        return Finding(name, PROBLEM, f"{where} rejected the username and password")
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        return _unreachable(name, where, exc)
    login = " and accepted the login" if smtp.username else ""
    tls = " over STARTTLS" if smtp.starttls else ""
    return Finding(name, OK, f"{where} answered{tls}{login}")


async def check_stripe(billing: BillingConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "stripe"
    fields = {
        "stripe_secret_key": billing.stripe_secret_key,
        "stripe_customer_id": billing.stripe_customer_id,
    }
    unconfigured = _configuration(name, fields, "prepaid credits are kept in the local ledger")
    if unconfigured or not online:
        return unconfigured or _offline(name, billing.stripe_api_base)
    try:
        cents = await StripeBilling(billing, http).balance_cents()
    except StripeFailed as exc:
        return Finding(name, PROBLEM, f"{billing.stripe_api_base} failed: {exc}")
    return Finding(
        name,
        OK,
        f"{billing.stripe_api_base} answered for customer {billing.stripe_customer_id}"
        f" (credit {cents} cents)",
    )


async def check_connector(connect: ConnectConfig, http: httpx.AsyncClient, *, online: bool) -> Finding:
    name = "connector"
    if not connect.base_url:
        return Finding(name, NOTE, "not configured: /api/connect answers 503")
    if not online:
        return _offline(name, connect.base_url)
    try:
        response = await http.get(connect.base_url)
    except httpx.HTTPError as exc:
        return _unreachable(name, connect.base_url, exc)
    if response.status_code >= 500:
        return Finding(name, PROBLEM, f"{connect.base_url} answered HTTP {response.status_code}")
    return Finding(name, OK, f"{connect.base_url} is reachable (HTTP {response.status_code})")
