"""A real local OAuth authorization server and the four providers' APIs, on one
loopback HTTP server, in place of Google, HubSpot, Salesforce and Microsoft in the
integration tests. Each provider lives under its own path prefix (/google, /hubspot,
/salesforce, /microsoft) and behaves as that provider does: the authorization server
checks the client id, the exact redirect URI, the state round trip and the PKCE
verifier, issues and refreshes tokens (Microsoft rotates refresh tokens, Google and
Salesforce send none on refresh, Salesforce names its instance_url and no expiry) and
revokes them (not Microsoft); each API checks the Bearer token (401 once expired or
revoked) and records what it received. Tests can deny the next authorization, expire
access tokens, and make the APIs fail with a given status."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PROVIDERS = {
    "google_calendar": "google",
    "hubspot": "hubspot",
    "salesforce": "salesforce",
    "microsoft_teams": "microsoft",
}
# What each provider's token answers look like.
PROFILES = {
    "google": {"expires_in": 3599, "refresh_on_refresh": "omit"},
    "hubspot": {"expires_in": 1800, "refresh_on_refresh": "keep"},
    "salesforce": {"expires_in": None, "refresh_on_refresh": "omit"},
    # Short-lived, so the box refreshes before every use and each rotation is exercised.
    "microsoft": {"expires_in": 60, "refresh_on_refresh": "rotate"},
}
CLIENT_SECRET = "client-secret-"  # + prefix: a different secret per provider
OTHER_CLIENT = "some-other-client"


def client_id(prefix: str) -> str:
    return f"{prefix}-client-id"


def client_secret(prefix: str) -> str:
    return CLIENT_SECRET + prefix + "-s3cr3t"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str
    method: str


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Provider:
    prefix: str
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> {expired, revoked, refresh}
    refresh: dict[str, bool] = field(default_factory=dict)  # token -> live
    issued: list[str] = field(default_factory=list)  # every token string handed out
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    api: list[Received] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    fail_rate: float = 0.0
    failed: int = 0  # API requests answered with an injected failure
    deny_next: bool = False
    # Do the next API request, then answer 503 as if the answer was lost on the way back.
    lose_answer_next: bool = False
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def new_token(self, kind: str) -> str:
        token = f"{self.prefix}-{kind}-{secrets.token_urlsafe(24)}"
        self.issued.append(token)
        return token

    def expire_access_tokens(self) -> None:
        for state in self.access.values():
            state["expired"] = True

    def kill_refresh_tokens(self) -> None:
        for token in self.refresh:
            self.refresh[token] = False


class FakeProviders:
    def __init__(self) -> None:
        self.providers = {prefix: Provider(prefix) for prefix in PROFILES}
        self.redirect_uris: set[str] = set()
        self.lock = threading.Lock()
        self.random = random.Random(7)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK hold every answer back 40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                owner._handle(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                owner._handle(self, self.rfile.read(length))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.dashboard_hits: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def config(self) -> dict[str, Any]:
        """The box's [integrations] section pointing at this server."""
        base = self.url
        return {
            "dashboard_url": f"{base}/dashboard",
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.5,
            "max_attempts": 4,
            "google_calendar": self._section("google", api_base=f"{base}/google"),
            "hubspot": self._section("hubspot", api_base=f"{base}/hubspot"),
            "salesforce": self._section("salesforce"),
            "microsoft_teams": {
                **self._section("microsoft", api_base=f"{base}/microsoft"),
                "tenant": "contoso-tenant",
                "authorize_url": f"{base}/microsoft/{{tenant}}/authorize",
                "token_url": f"{base}/microsoft/{{tenant}}/token",
                "revoke_url": "",
                "team_id": "team-1",
                "channel_id": "channel-1",
            },
        }

    def _section(self, prefix: str, **extra: str) -> dict[str, str]:
        base = f"{self.url}/{prefix}"
        return {
            "client_id": client_id(prefix),
            "client_secret": client_secret(prefix),
            "authorize_url": f"{base}/authorize",
            "token_url": f"{base}/token",
            "revoke_url": f"{base}/revoke",
            **extra,
        }

    # --- dispatch ------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segments = parts.path.strip("/").split("/")
        if segments[0] == "dashboard":
            self.dashboard_hits.append(query)
            _json(handler, 200, query)
            return
        provider = self.providers.get(segments[0])
        if provider is None:
            _json(handler, 404, {"error": "not_found"})
            return
        rest = "/".join(s for s in segments[1:] if s != "contoso-tenant")
        with self.lock:
            if rest == "authorize":
                self._authorize(handler, provider, query)
            elif rest == "token":
                self._token(handler, provider, _form(raw))
            elif rest == "revoke":
                self._revoke(handler, provider, _form(raw))
            else:
                self._api(handler, provider, handler.command, "/" + rest, query, raw)

    # --- the authorization server ----------------------------------------------------

    def _authorize(self, handler: BaseHTTPRequestHandler, provider: Provider, q: dict[str, str]) -> None:
        known = {client_id(provider.prefix), OTHER_CLIENT}
        if q.get("client_id") not in known or q.get("redirect_uri") not in self.redirect_uris:
            _json(
                handler, 400, {"error": "invalid_request", "error_description": "unknown client or redirect"}
            )
            return
        if q.get("response_type") != "code" or not q.get("state") or q.get("code_challenge_method") != "S256":
            _json(handler, 400, {"error": "invalid_request"})
            return
        if provider.deny_next:
            provider.deny_next = False
            _redirect(handler, q["redirect_uri"], {"error": "access_denied", "state": q["state"]})
            return
        code = secrets.token_urlsafe(16)
        provider.codes[code] = Grant(
            q["client_id"], q["redirect_uri"], q.get("scope", ""), q["code_challenge"], "S256"
        )
        _redirect(handler, q["redirect_uri"], {"code": code, "state": q["state"]})

    def _token(self, handler: BaseHTTPRequestHandler, provider: Provider, form: dict[str, str]) -> None:
        provider.token_requests.append(form)
        if form.get("client_id") != client_id(provider.prefix) or form.get("client_secret") != client_secret(
            provider.prefix
        ):
            _json(handler, 401, {"error": "invalid_client"})
            return
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = provider.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if (
                grant is None
                or grant.client_id != form["client_id"]
                or grant.redirect_uri != form.get("redirect_uri")
                or challenge != grant.challenge
            ):
                _json(handler, 400, {"error": "invalid_grant"})
                return
            _json(handler, 200, self._issue(provider, grant.scope, with_refresh=True))
        elif grant_type == "refresh_token":
            old = form.get("refresh_token", "")
            if not provider.refresh.get(old):
                _json(handler, 400, {"error": "invalid_grant", "error_description": "refresh token is dead"})
                return
            if provider.prefix == "microsoft" and not form.get("scope"):
                _json(handler, 400, {"error": "invalid_request", "error_description": "scope required"})
                return
            mode = PROFILES[provider.prefix]["refresh_on_refresh"]
            answer = self._issue(provider, form.get("scope", ""), with_refresh=mode == "rotate")
            if mode == "rotate":
                provider.refresh[old] = False
            elif mode == "keep":
                answer["refresh_token"] = old
            _json(handler, 200, answer)
        else:
            _json(handler, 400, {"error": "unsupported_grant_type"})

    def _issue(self, provider: Provider, scope: str, *, with_refresh: bool) -> dict[str, Any]:
        access = provider.new_token("access")
        provider.access[access] = {"expired": False, "revoked": False}
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "scope": scope}
        expires_in = PROFILES[provider.prefix]["expires_in"]
        if expires_in is not None:
            answer["expires_in"] = expires_in
        if with_refresh:
            refresh = provider.new_token("refresh")
            provider.refresh[refresh] = True
            answer["refresh_token"] = refresh
        if provider.prefix == "salesforce":
            answer.update(
                instance_url=f"{self.url}/salesforce",
                id=f"{self.url}/salesforce/id/00Dorg000000001/005user00000001",
                issued_at=str(int(time.time() * 1000)),
                signature="c2lnbmF0dXJl",
            )
        if provider.prefix == "microsoft":
            answer["ext_expires_in"] = 3600
        return answer

    def _revoke(self, handler: BaseHTTPRequestHandler, provider: Provider, form: dict[str, str]) -> None:
        if provider.prefix == "microsoft":
            _json(handler, 404, {"error": "not_found"})
            return
        token = form.get("token", "")
        provider.revoked.append(token)
        if token in provider.refresh:
            provider.refresh[token] = False
            provider.expire_access_tokens()  # revoking a refresh token ends its access tokens
        if token in provider.access:
            provider.access[token]["revoked"] = True
        _json(handler, 200, {})

    # --- the provider APIs -----------------------------------------------------------

    def _api(
        self, handler: BaseHTTPRequestHandler, provider: Provider, method: str, path: str,
        query: dict[str, str], raw: bytes,
    ) -> None:  # fmt: skip
        scheme, _, token = (handler.headers.get("authorization") or "").partition(" ")
        state = provider.access.get(token)
        if scheme != "Bearer" or state is None or state["expired"] or state["revoked"]:
            _json(handler, 401, {"error": "invalid_token"})
            return
        body = json.loads(raw) if raw else None
        provider.api.append(Received(method, path, query, body))
        if provider.fail_next:
            provider.failed += 1
            status, headers = provider.fail_next.pop(0)
            _json(handler, status, {"error": "injected"}, headers)
            return
        if provider.fail_rate and self.random.random() < provider.fail_rate:
            provider.failed += 1
            _json(handler, 503, {"error": "unavailable"})
            return
        answer = getattr(self, f"_{provider.prefix}")(provider, method, path, query, body)
        if provider.lose_answer_next and answer[0] < 300:
            provider.lose_answer_next = False
            answer = (503, {"error": "answer lost"})
        _json(handler, *answer)

    def _google(self, p: Provider, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/calendar/v3/calendars/primary":
            return 200, {"id": "ada@example.com", "summary": "Ada"}
        if method == "POST" and path == "/calendar/v3/calendars/primary/events":
            if any(event["id"] == body.get("id") for event in p.objects["events"]):
                return 409, {"error": {"code": 409, "message": "The requested identifier already exists."}}
            p.objects["events"].append(body)
            return 200, {**body, "htmlLink": "https://calendar.example/event"}
        return 404, {"error": "not_found"}

    def _hubspot(self, p: Provider, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/account-info/v3/details":
            return 200, {"portalId": 4242, "timeZone": "UTC"}
        found = re.fullmatch(r"/crm/v3/objects/(contacts|calls)(/search)?", path)
        if method != "POST" or not found:
            return 404, {"status": "error", "message": "not found"}
        kind, search = found[1], found[2]
        if search:
            results = [
                obj for obj in p.objects[kind]
                if any(all(obj["properties"].get(f["propertyName"]) == f["value"] for f in group["filters"])
                       for group in body["filterGroups"])
            ]  # fmt: skip
            return 200, {"total": len(results), "results": results[:1]}
        obj = {"id": str(1000 + len(p.objects[kind])), **body}
        p.objects[kind].append(obj)
        return 201, obj

    def _salesforce(
        self, p: Provider, method: str, path: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        base = "/services/data/v62.0"
        if method == "GET" and path == base + "/query":
            return 200, self._soql(p, q["q"])
        found = re.fullmatch(re.escape(base) + r"/sobjects/(Lead|Task|Contact)", path)
        if method == "POST" and found:
            record = {"Id": f"00{found[1][0]}{len(p.objects[found[1]]):013d}", **body}
            p.objects[found[1]].append(record)
            return 201, {"id": record["Id"], "success": True, "errors": []}
        return 404, [{"errorCode": "NOT_FOUND", "message": "not found"}]

    def _soql(self, p: Provider, query: str) -> dict[str, Any]:
        match = re.fullmatch(r"SELECT Id FROM (\w+) WHERE (.+) LIMIT 1", query)
        assert match, query
        conditions = re.findall(r"(\w+) = '((?:[^'\\]|\\.)*)'", match[2])
        records = [
            {"Id": r["Id"]} for r in p.objects[match[1]]
            if any(r.get(name) == value for name, value in conditions)
        ]  # fmt: skip
        return {"totalSize": len(records), "done": True, "records": records[:1]}

    def _microsoft(
        self, p: Provider, method: str, path: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if method == "GET" and path == "/v1.0/me":
            return 200, {"id": "user-guid-1", "userPrincipalName": "ada@contoso.example"}
        if method == "POST" and path == "/v1.0/teams/team-1/channels/channel-1/messages":
            p.objects["messages"].append(body)
            return 201, {"id": str(len(p.objects["messages"])), **body}
        return 404, {"error": {"code": "NotFound"}}


def _form(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


def _json(
    handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("cache-control", "no-store")
    handler.send_header("content-length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _redirect(handler: BaseHTTPRequestHandler, uri: str, params: dict[str, str]) -> None:
    handler.send_response(302)
    handler.send_header("location", uri + ("&" if "?" in uri else "?") + urlencode(params))
    handler.send_header("content-length", "0")
    handler.end_headers()
