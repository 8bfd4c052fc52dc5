"""The OAuth 2.0 authorization-code grant as the four providers speak it, on Authlib's
protocol client: the authorization URL (state, PKCE S256), the code exchange, refresh
and revocation (RFC 7009), the client's credentials in the form body
(client_secret_post), sent through the box's one HTTP client. Knows no provider's API,
only its endpoints; judges every token answer itself, so a refusal is never a token."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.client import OAuth2Client

from telentir_box.config import OAuthProviderConfig

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
# RFC 7636 allows 43-128 characters; 64 of [A-Za-z0-9] carry 381 bits.
VERIFIER_CHARS = 64


class OAuthError(Exception):
    """A token endpoint refused or failed. `code` is the RFC 6749 error (invalid_grant,
    invalid_client, ...) or a word of ours (unreachable, malformed, refused); no token
    and no text of the provider's in it."""

    def __init__(self, code: str, status: int | None = None) -> None:
        self.code = code
        self.status = status
        super().__init__(f"token endpoint: {code}" + (f" (HTTP {status})" if status else ""))


def new_verifier() -> str:
    """A PKCE code verifier."""
    return generate_token(VERIFIER_CHARS)


def _endpoint(config: OAuthProviderConfig, url: str) -> str:
    """An endpoint URL with the Microsoft tenant filled in where it has the placeholder."""
    tenant = getattr(config, "tenant", None)
    return url.replace("{tenant}", tenant) if tenant else url


class OAuthClient:
    """One provider configuration's grant, built once at start; holds no token, so one
    serves every user's connection at once."""

    def __init__(self, config: OAuthProviderConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self._authorize_url = _endpoint(config, config.authorize_url)
        self._token_url = _endpoint(config, config.token_url)
        self._revoke_url = _endpoint(config, config.revoke_url)
        self._authlib = _SharedHttpClient(
            session=http,
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            revocation_endpoint_auth_method="client_secret_post",
            scope=config.scopes,
            code_challenge_method="S256",
        )

    def authorization_url(
        self, redirect_uri: str, state: str, verifier: str, extra: Mapping[str, str]
    ) -> str:
        url, _ = self._authlib.create_authorization_url(
            self._authorize_url, state=state, code_verifier=verifier, redirect_uri=redirect_uri, **extra
        )
        return str(url)

    async def exchange_code(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        return await _token_answer(
            self._authlib.fetch_token(
                self._token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=verifier,
            )
        )

    async def refresh(self, refresh_token: str, scopes: str) -> dict[str, Any]:
        """The provider's answer as it came: the caller keeps what it leaves out (Google
        and Salesforce send no new refresh token)."""
        # The original scopes go along: Microsoft wants them on refresh despite its docs.
        return await _token_answer(
            self._authlib.refresh_token(self._token_url, refresh_token=refresh_token, scope=scopes)
        )

    async def revoke(self, token: str) -> bool:
        """Revoke a refresh token at the provider (RFC 7009); False where it has no endpoint
        or it refused (the tokens are dropped here either way)."""
        if not self._revoke_url:
            return False
        try:
            response: httpx.Response = await self._authlib.revoke_token(
                self._revoke_url,
                token=token,
                token_type_hint="refresh_token",  # noqa: S106 - a kind
            )
        except httpx.HTTPError:
            return False
        return response.is_success


class _SharedHttpClient(OAuth2Client):
    """Authlib's OAuth 2.0 client sending through the box's httpx client. Authlib builds
    every request (its parameters, the PKCE challenge, the client's credentials); these
    overrides of its transport hooks (the ones its own requests and httpx integrations
    override) send it and hand back the raw answer unparsed, for `_token_answer` to judge:
    Authlib's own parsing takes a 4xx without `error` for a token. Not Authlib's
    AsyncOAuth2Client: that is a second HTTP client per provider, and since Authlib 1.8 it
    warns on every import unless the httpx2 fork is installed in place of httpx."""

    def _fetch_token(
        self,
        url: str,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: ClientAuth | None = None,
        method: str = "POST",
        **kwargs: object,
    ) -> Awaitable[httpx.Response]:
        return self._post(url, body, headers, auth)

    def _refresh_token(
        self,
        url: str,
        refresh_token: str | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: ClientAuth | None = None,
        **kwargs: object,
    ) -> Awaitable[httpx.Response]:
        return self._post(url, body, headers, auth)

    def _http_post(
        self,
        url: str,
        body: str | None = None,
        auth: ClientAuth | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: object,
    ) -> Awaitable[httpx.Response]:
        return self._post(url, body or "", headers, auth)

    async def _post(
        self, url: str, body: str, headers: Mapping[str, str] | None, auth: ClientAuth | None
    ) -> httpx.Response:
        sent = dict(headers or {})
        if auth is not None:
            url, sent, body = auth.prepare("POST", url, sent, body)
        http: httpx.AsyncClient = self.session
        return await http.post(url, content=body, headers=sent)


async def _token_answer(pending: Awaitable[httpx.Response]) -> dict[str, Any]:
    try:
        response = await pending
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
