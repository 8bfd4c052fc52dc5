"""The grant client alone, against a recording transport: what Authlib puts on the wire
for each step, and how every kind of token endpoint answer is judged (a refusal is
never a token; only a short error word, never the provider's text, reaches the error)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from telentir_box.config import GoogleCalendarConfig, MicrosoftTeamsConfig, OAuthProviderConfig
from telentir_box.integrations.oauth import OAuthClient, OAuthError, new_verifier

SECRET = "the-client-s3cr3t"
SECRET_TOKEN = "at-s3cr3t-value"
Answer = Callable[[httpx.Request], httpx.Response]


def google(**extra: str) -> GoogleCalendarConfig:
    fields = {
        "client_id": "cid",
        "client_secret": SECRET,
        "authorize_url": "https://auth.example/authorize",
        "token_url": "https://auth.example/token",
        "revoke_url": "https://auth.example/revoke",
        **extra,
    }
    return GoogleCalendarConfig(**fields)


class Recorder:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def form(self, index: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[index].content.decode()).items()}


@asynccontextmanager
async def client_for(
    answer: Answer, config: OAuthProviderConfig | None = None
) -> AsyncIterator[tuple[OAuthClient, Recorder]]:
    recorder = Recorder(answer)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        yield OAuthClient(config or google(), http), recorder


def answering(status: int, body: Any) -> Answer:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content)


async def test_integrations_oauth_authorization_url_carries_state_pkce_s256_scopes_and_extras() -> None:
    verifier = new_verifier()
    assert len(verifier) == 64 and verifier.isalnum() and verifier != new_verifier()
    async with client_for(answering(200, {})) as (client, _):
        url = client.authorization_url("https://box.example/cb", "the-state", verifier, {"prompt": "consent"})
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert parts.netloc + parts.path == "auth.example/authorize"
    assert query == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "https://box.example/cb",
        "scope": google().scopes,
        "state": "the-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    assert SECRET not in url and verifier not in url


async def test_integrations_oauth_tenant_fills_every_microsoft_endpoint() -> None:
    config = MicrosoftTeamsConfig(client_id="cid", client_secret=SECRET, tenant="contoso")
    async with client_for(answering(200, {"access_token": "a"}), config) as (client, recorder):
        assert "/contoso/oauth2/v2.0/authorize?" in client.authorization_url(
            "https://b/cb", "s", "v" * 43, {}
        )
        await client.exchange_code("the-code", "https://b/cb", "v" * 43)
    assert str(recorder.requests[0].url) == "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"


async def test_integrations_oauth_exchange_posts_the_code_verifier_and_credentials_in_the_body() -> None:
    answer = {"access_token": "a", "refresh_token": "r", "expires_in": 3600, "instance_url": "https://i"}
    async with client_for(answering(200, answer)) as (client, recorder):
        token = await client.exchange_code("the-code", "https://box.example/cb", "the-verifier")
    assert token == answer
    [request] = recorder.requests
    assert request.method == "POST" and str(request.url) == "https://auth.example/token"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers  # client_secret_post, not Basic
    assert recorder.form() == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://box.example/cb",
        "code_verifier": "the-verifier",
        "client_id": "cid",
        "client_secret": SECRET,
    }


async def test_integrations_oauth_refresh_sends_the_original_scopes_and_returns_the_answer_as_sent() -> None:
    async with client_for(answering(200, {"access_token": "a2", "expires_in": 60})) as (client, recorder):
        token = await client.refresh("old-refresh", "openid offline_access")
        assert token == {"access_token": "a2", "expires_in": 60}  # no refresh token made up
        assert recorder.form() == {
            "grant_type": "refresh_token",
            "refresh_token": "old-refresh",
            "scope": "openid offline_access",
            "client_id": "cid",
            "client_secret": SECRET,
        }
        await client.refresh("old-refresh", "")
        assert "scope" not in recorder.form()


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": f"token {SECRET_TOKEN} is dead"},
            "invalid_grant",
        ),
        (401, {"error": "invalid_client"}, "invalid_client"),
        # Authlib alone would take these two for tokens.
        (400, {"title": "Bad Request", "detail": SECRET_TOKEN}, "refused"),
        (403, {"access_token": SECRET_TOKEN}, "refused"),
        (200, {"token_type": "Bearer"}, "refused"),
        (200, {"error": "temporarily_unavailable"}, "temporarily_unavailable"),
        # Provider text is never passed on as the code.
        (400, {"error": f"Invalid grant: {SECRET_TOKEN}"}, "refused"),
        (400, {"error": "x" * 65}, "refused"),
        (400, {"error": ["invalid_grant"]}, "refused"),
        (200, {"access_token": 12345}, "malformed"),
        (200, [{"access_token": "a"}], "malformed"),
        (200, b"<html>not json</html>", "malformed"),
        (502, b"Bad Gateway", "malformed"),
        (503, {"error": "temporarily_unavailable"}, "temporarily_unavailable"),
    ],
)
async def test_integrations_oauth_token_answers_that_are_not_tokens_are_refusals(
    status: int, body: Any, code: str
) -> None:
    async with client_for(answering(status, body)) as (client, _):
        for step in (client.exchange_code("c", "https://b/cb", "v"), client.refresh("r", "s")):
            with pytest.raises(OAuthError) as caught:
                await step
            assert (caught.value.code, caught.value.status) == (code, status)
            assert SECRET_TOKEN not in str(caught.value) and SECRET not in str(caught.value)


async def test_integrations_oauth_unreachable_token_endpoint_is_unreachable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(down) as (client, _):
        with pytest.raises(OAuthError) as caught:
            await client.refresh("r", "s")
    assert (caught.value.code, caught.value.status) == ("unreachable", None)


async def test_integrations_oauth_revoke_is_rfc7009_with_credentials_in_the_body() -> None:
    async with client_for(answering(200, {})) as (client, recorder):
        assert await client.revoke("the-refresh-token") is True
    [request] = recorder.requests
    assert str(request.url) == "https://auth.example/revoke" and "authorization" not in request.headers
    assert recorder.form() == {
        "token": "the-refresh-token",
        "token_type_hint": "refresh_token",
        "client_id": "cid",
        "client_secret": SECRET,
    }


async def test_integrations_oauth_revoke_is_false_without_an_endpoint_or_when_refused() -> None:
    async with client_for(answering(200, {}), google(revoke_url="")) as (client, recorder):
        assert await client.revoke("t") is False
        assert recorder.requests == []
    async with client_for(answering(400, {"error": "unsupported_token_type"})) as (client, _):
        assert await client.revoke("t") is False

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with client_for(down) as (client, _):
        assert await client.revoke("t") is False


async def test_integrations_oauth_one_client_serves_concurrent_grants_without_mixing_them() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        return httpx.Response(200, json={"access_token": "for-" + form["refresh_token"]})

    async with client_for(echo) as (client, _):
        tokens = await asyncio.gather(*(client.refresh(f"r{i}", "s") for i in range(20)))
    assert [t["access_token"] for t in tokens] == [f"for-r{i}" for i in range(20)]
