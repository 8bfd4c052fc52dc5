"""Sending SMS: through the twilio library (its requests carried by the box's shared
httpx client, to the API base URL from config), or to the log when Twilio is unconfigured."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from telentir_box.config import TwilioConfig
from telentir_box.errors import UpstreamFailed

log = logging.getLogger("telentir_box.sms")
TWILIO_API = "https://api.twilio.com"


class SmsSender(Protocol):
    console: bool

    async def send(self, to: str, body: str) -> None: ...


class ConsoleSender:
    """Local development only: the message goes to the log."""

    console = True

    async def send(self, to: str, body: str) -> None:
        log.warning("SMS not sent (Twilio is not configured)", extra={"to": to, "body": body})


class _HttpxTwilioClient(AsyncHttpClient):
    """The twilio library's transport, rebased onto config.twilio.api_base."""

    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        super().__init__(logger=log, is_async=True)
        self._http = http
        self._base = api_base.rstrip("/")

    async def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the twilio transport interface
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if uri.startswith(TWILIO_API):
            uri = self._base + uri[len(TWILIO_API) :]
        response = await self._http.request(
            method,
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,  # type: ignore[arg-type]
            headers=headers,
            auth=auth,
            timeout=timeout or 30.0,
            follow_redirects=allow_redirects,
        )
        return TwilioResponse(response.status_code, response.text, response.headers)


class TwilioSender:
    console = False

    def __init__(self, config: TwilioConfig, http: httpx.AsyncClient) -> None:
        self._from = config.from_number
        self._client = Client(
            config.account_sid,
            config.auth_token,
            http_client=_HttpxTwilioClient(http, config.api_base),
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
