"""Sending SMS: through the twilio library (its requests carried by the box's shared
httpx client, to the API base URL from config), or to the log when Twilio is unconfigured."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from telentir_box.config import TwilioConfig
from telentir_box.errors import UpstreamFailed
from telentir_box.telephony.twilio_client import HttpxTwilioTransport

log = logging.getLogger("telentir_box.sms")


class SmsSender(Protocol):
    console: bool

    async def send(self, to: str, body: str) -> None: ...


class ConsoleSender:
    """Local development only: the message goes to the log."""

    console = True

    async def send(self, to: str, body: str) -> None:
        log.warning("SMS not sent (Twilio is not configured)", extra={"to": to, "body": body})


class TwilioSender:
    console = False

    def __init__(self, config: TwilioConfig, http: httpx.AsyncClient) -> None:
        self._from = config.from_number
        self._client = Client(
            config.account_sid,
            config.auth_token,
            http_client=HttpxTwilioTransport(http, config.api_base),
        )

    async def send(self, to: str, body: str) -> None:
        try:
            await self._client.api.v2010.account.messages.create_async(to=to, from_=self._from, body=body)
        except (TwilioException, httpx.HTTPError) as exc:
            log.warning("Twilio did not accept the SMS", extra={"error": str(exc)})
            raise UpstreamFailed("The SMS could not be sent") from None


def build_sms_sender(config: TwilioConfig, http: httpx.AsyncClient) -> SmsSender:
    if config.account_sid and config.auth_token and config.from_number:
        return TwilioSender(config, http)
    return ConsoleSender()
