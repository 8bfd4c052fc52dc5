"""What the four provider modules share: the authorized API client they send through
(a Bearer token, refreshed once on a 401), the error a failed send raises, and the
Provider interface the connect flow and the outbox use."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from telentir_box.config import OAuthProviderConfig
from telentir_box.integrations.calls import FinishedCall

# Statuses worth another attempt later; every other 4xx is the request's fault.
RETRYABLE = frozenset({408, 425, 429})
MAX_ERROR_CHARS = 300


class DeliveryFailed(Exception):
    """A provider answered a send with an error, or could not be reached (status None)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        *,
        permanent: bool = False,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(message[:MAX_ERROR_CHARS])

    @property
    def retryable(self) -> bool:
        if self.permanent:
            return False
        return self.status is None or self.status in RETRYABLE or self.status >= 500


# token(stale) -> the access token; `stale` is one the provider just refused (401), so a
# fresh one is wanted unless another task has refreshed it meanwhile.
TokenSource = Callable[[str | None], Awaitable[str]]


class ProviderApi:
    """Requests to a provider's API as the connected account, refreshing the access token
    once on a 401 (Salesforce gives no expiry: a 401 is how its tokens are seen to expire)."""

    def __init__(self, http: httpx.AsyncClient, token: TokenSource) -> None:
        self._http = http
        self._token = token

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded JSON answer (None when empty) of a 2xx; else DeliveryFailed."""
        token = await self._token(None)
        response = await self._send(method, url, token, kwargs)
        if response.status_code == 401:
            response = await self._send(method, url, await self._token(token), kwargs)
        if not response.is_success:
            raise DeliveryFailed(
                f"{method} {httpx.URL(url).path}: HTTP {response.status_code} {response.text[:200]}",
                response.status_code,
                retry_after_seconds(response.headers.get("retry-after")),
            )
        return response.json() if response.content else None

    async def _send(self, method: str, url: str, token: str, kwargs: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.request(
                method, url, headers={"authorization": f"Bearer {token}"}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{method} {httpx.URL(url).path}: {type(exc).__name__}") from None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True, slots=True)
class Delivery:
    """What an integration will send for one call: its kind and JSON payload."""

    kind: str
    payload: dict[str, Any]


class Provider(Protocol):
    name: str
    # Extra authorization-URL parameters (Google: offline access and a consent prompt).
    authorize_extra: dict[str, str]

    def config(self) -> OAuthProviderConfig: ...

    def missing_setting(self) -> str | None:
        """The setting still needed before users can connect, or None when ready."""
        ...

    async def account(self, api: ProviderApi, token: dict[str, Any]) -> dict[str, str]:
        """The connected account, from the token answer or one API call; no secret in it."""
        ...

    def build(self, call: FinishedCall) -> Delivery | None:
        """The delivery for a finished call, or None when this integration has nothing to do."""
        ...

    async def deliver(
        self, api: ProviderApi, account: dict[str, str], payload: dict[str, Any], key: str
    ) -> None:
        """Send it; `key` is the delivery's idempotency key, stable across attempts."""
        ...


def required_settings(config: OAuthProviderConfig) -> str | None:
    for name in ("client_id", "client_secret", "authorize_url", "token_url"):
        if not getattr(config, name):
            return name
    return None
