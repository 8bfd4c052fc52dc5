"""The OAuth 2.0 authorization-code grant as the four providers speak it: the
authorization URL (state, PKCE S256), the code exchange, refresh and revocation, all
form-encoded with the client's credentials in the body (client_secret_post), through
the box's one HTTP client. Knows no provider's API, only its token endpoints."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx

from telentir_box.config import OAuthProviderConfig

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


class OAuthError(Exception):
    """A token endpoint refused or failed. `code` is the RFC 6749 error (invalid_grant,
    invalid_client, ...) or a word of ours (unreachable, malformed); no token in it."""

    def __init__(self, code: str, status: int | None = None) -> None:
        self.code = code
        self.status = status
        super().__init__(f"token endpoint: {code}" + (f" (HTTP {status})" if status else ""))


def new_verifier() -> str:
    """A PKCE code verifier: 64 URL-safe characters (RFC 7636 allows 43-128)."""
    return secrets.token_urlsafe(48)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def endpoint(config: OAuthProviderConfig, url: str) -> str:
    """An endpoint URL with the Microsoft tenant filled in where it has the placeholder."""
    tenant = getattr(config, "tenant", None)
    return url.replace("{tenant}", tenant) if tenant else url


def authorization_url(
    config: OAuthProviderConfig, redirect_uri: str, state: str, verifier: str, extra: dict[str, str]
) -> str:
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": config.scopes,
        "state": state,
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **extra,
    }
    base = endpoint(config, config.authorize_url)
    return base + ("&" if "?" in base else "?") + urlencode(params)


async def exchange_code(
    http: httpx.AsyncClient, config: OAuthProviderConfig, code: str, redirect_uri: str, verifier: str
) -> dict[str, Any]:
    return await _token_request(
        http,
        config,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


async def refresh(
    http: httpx.AsyncClient, config: OAuthProviderConfig, refresh_token: str, scopes: str
) -> dict[str, Any]:
    # The original scopes go along: Microsoft wants them on refresh despite its docs.
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scopes:
        form["scope"] = scopes
    return await _token_request(http, config, form)


async def revoke(http: httpx.AsyncClient, config: OAuthProviderConfig, token: str) -> bool:
    """Revoke a refresh token at the provider (RFC 7009); False where it has no endpoint
    or it refused (the tokens are dropped here either way)."""
    if not config.revoke_url:
        return False
    form = {
        "token": token,
        "token_type_hint": "refresh_token",
        "client_id": config.client_id,
        "client_secret": config.client_secret,
    }
    try:
        response = await http.post(endpoint(config, config.revoke_url), data=form)
    except httpx.HTTPError:
        return False
    return response.is_success


async def _token_request(
    http: httpx.AsyncClient, config: OAuthProviderConfig, form: dict[str, str]
) -> dict[str, Any]:
    form = {**form, "client_id": config.client_id, "client_secret": config.client_secret}
    try:
        response = await http.post(
            endpoint(config, config.token_url), data=form, headers={"accept": "application/json"}
        )
    except httpx.HTTPError:
        raise OAuthError("unreachable") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise OAuthError("malformed", response.status_code)
    # A 4xx without an `error` key is still a refusal, never a token.
    if not response.is_success or "access_token" not in answer:
        error = answer.get("error")
        # The code is shown to users and logged: only a short RFC 6749-shaped word passes.
        known = isinstance(error, str) and _ERROR_CODE.fullmatch(error) is not None
        raise OAuthError(error if known else "refused", response.status_code)
    if not isinstance(answer["access_token"], str):
        raise OAuthError("malformed", response.status_code)
    return answer
