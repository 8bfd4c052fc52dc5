"""The long-lived pieces identity needs beyond the Authenticator: the brute-force and
abuse limiters, the code hasher, and the SMS and mail senders. Built once per box."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from telentir_box.auth.codes import CodeHasher
from telentir_box.auth.mail import Mailer
from telentir_box.auth.ratelimit import RateLimiter
from telentir_box.auth.sms import SmsSender, build_sms_sender
from telentir_box.config import Config
from telentir_box.crypto.keyring import Keyring


@dataclass
class Identity:
    limiter: RateLimiter
    # Verification texts cost money per message: a daily cap per account and per number.
    texts: RateLimiter
    # One verification text in flight per account per resend interval: a slot claimed
    # before anything is awaited, so concurrent sends cannot all pass the check.
    resends: RateLimiter
    # Sign-ups without an invite per client address, successful or not.
    registrations: RateLimiter
    codes: CodeHasher
    sms: SmsSender
    mailer: Mailer


def build_identity(config: Config, keyring: Keyring, http: httpx.AsyncClient) -> Identity:
    return Identity(
        limiter=RateLimiter(config.auth.max_attempts, config.auth.lockout_seconds),
        texts=RateLimiter(
            config.auth.phone_sends_per_day,
            86_400,
            message="Too many verification texts today; try again later",
        ),
        resends=RateLimiter(
            1,
            config.auth.phone_resend_seconds,
            message="A code was sent moments ago; wait before asking for another",
        ),
        registrations=RateLimiter(
            config.auth.registrations_per_ip_per_hour,
            3600,
            message="Too many registrations from this address; try again later",
        ),
        codes=CodeHasher(keyring.derive("auth-codes")),
        sms=build_sms_sender(config.twilio, http),
        mailer=Mailer(config.smtp),
    )
