"""Attacks on the web surface, against the real server: another page riding a cookie
session (origin and body type), secrets left in caches, and typed secrets reaching the
database. One server is shared by the module; each test leaves what it found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from telentir_box.web.csrf import origin_of
from tests.auth_support import (
    FAST_ENV,
    PASSWORD,
    FakeTwilio,
    bearer,
    call,
    fake_twilio,
    setup_owner,
    setup_token,
    sign_up,
    totp_code,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e
APP_ORIGIN = "http://app.example.test:5173"  # in cors_origins
OWNER = "owner@example.com"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def box_env(tmp_path_factory: pytest.TempPathFactory, twilio: FakeTwilio) -> dict[str, str]:
    return {
        "TELENTIR_BOX_DATA__DIR": str(tmp_path_factory.mktemp("web") / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_SERVER__CORS_ORIGINS": json.dumps([APP_ORIGIN]),
        "TELENTIR_BOX_AUTH__REGISTRATION": "open",
        **FAST_ENV,
        **twilio.env(),
    }


@pytest.fixture(scope="module")
def server(box_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(env=box_env, log_path=tmp_path_factory.mktemp("web-log") / "server.log").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request with exactly the headers given: no cookie jar carried between calls."""
    http.cookies.clear()
    response = http.request(method, path, **kwargs)
    http.cookies.clear()
    return response


@pytest.fixture(scope="module")
def owner(http: httpx.Client, box_env: dict[str, str], twilio: FakeTwilio) -> dict[str, Any]:
    """The super admin, set up over HTTP and phone-verified; keeps the answers that
    carried its tokens, for the cache tests."""
    body = {
        "setupToken": setup_token(Path(box_env["TELENTIR_BOX_DATA__DIR"])),
        "email": OWNER,
        "password": PASSWORD,
    }
    created = send(http, "POST", "/api/setup-super-admin", json=body)
    assert created.status_code == 200, created.text
    signed_in = send(http, "POST", "/api/auth/login", json={"email": OWNER, "password": PASSWORD})
    token = signed_in.json()["token"]
    sent = send(http, "POST", "/api/auth/phone/send", json={"phone": "+14155550100"}, headers=bearer(token))
    assert sent.status_code == 200, sent.text
    verified = send(
        http, "POST", "/api/auth/phone/verify", json={"code": twilio.last_code()}, headers=bearer(token)
    )
    assert verified.status_code == 200, verified.text
    return {"token": token, "setup": created, "login": signed_in, "phone_verify": verified}


def cookie(token: str, **headers: str) -> dict[str, str]:
    return {"cookie": f"token={token}", **headers}


def ledger(http: httpx.Client, token: str) -> Any:
    return send(http, "GET", "/api/credits/ledger", headers=bearer(token)).json()


def grant(http: httpx.Client, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    return send(http, "POST", "/api/credits/grants", headers=headers, **kwargs)


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["error"]) == (code, body["message"])


GRANT = json.dumps({"credits": 7, "note": "csrf"})


def test_cookie_requests_from_another_origin_are_refused(
    http: httpx.Client, server: LiveServer, owner: dict[str, Any]
) -> None:
    token = owner["token"]
    before = ledger(http, token)
    typed = {"content-type": "application/json"}
    for claimed in (
        {"origin": "http://evil.example"},
        {"origin": "http://localhost:8080"},  # same site, another port
        {"origin": server.base_url.replace("127.0.0.1", "localhost")},  # another host name
        {"origin": "null"},
        {"referer": "http://evil.example/page"},
        {},  # neither Origin nor Referer
    ):
        refused = grant(http, cookie(token, **typed, **claimed), content=GRANT)
        assert_refused(refused, 403, "CSRF_REJECTED")
    # what a page can send without a preflight: text/plain and forms, to any route
    simple_bodies: list[dict[str, Any]] = [
        {"content": GRANT, "headers": {"content-type": "text/plain"}},
        {"data": {"credits": "7"}},
        {"files": {"credits": ("c", b"7")}},
    ]
    for body in simple_bodies:
        headers = cookie(token, origin="http://localhost:8080", **body.pop("headers", {}))
        assert_refused(grant(http, headers, **body), 403, "CSRF_REJECTED")
    for path in ("/api/auth/logout", "/api/events/ticket", "/api/objects"):
        assert_refused(
            send(http, "POST", path, headers=cookie(token, origin="http://evil.example")),
            403,
            "CSRF_REJECTED",
        )
    assert ledger(http, token) == before
    # the cookie still signs the owner in: logout was refused
    assert send(http, "GET", "/api/auth", headers=cookie(token)).json()["status"] == "ok"


def test_cookie_requests_with_a_body_that_is_not_json_are_refused(
    http: httpx.Client, server: LiveServer, owner: dict[str, Any]
) -> None:
    token = owner["token"]
    before = ledger(http, token)
    own = {"origin": server.base_url}
    for body in (
        {"content": GRANT, "headers": {"content-type": "text/plain"}},
        {"content": GRANT, "headers": {"content-type": "application/jsonx"}},
        {"content": GRANT},  # no Content-Type at all
        {"data": {"credits": "7"}},
        {"files": {"credits": ("c", b"7")}},
    ):
        headers = cookie(token, **own, **body.pop("headers", {}))
        assert_refused(grant(http, headers, **body), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert ledger(http, token) == before


def test_cookie_requests_from_allowed_origins_pass(
    http: httpx.Client, server: LiveServer, owner: dict[str, Any]
) -> None:
    token = owner["token"]
    before = ledger(http, token)["balance"]
    for claimed in (
        {"origin": server.base_url},
        {"origin": APP_ORIGIN},
        {"referer": server.base_url + "/dashboard?x=1"},
    ):
        headers = cookie(token, **claimed, **{"content-type": "application/json; charset=utf-8"})
        response = grant(http, headers, content=GRANT)
        assert response.status_code == 201, (claimed, response.text)
        if "origin" in claimed and claimed["origin"] == APP_ORIGIN:
            assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert ledger(http, token)["balance"] == before + 3 * 7


def test_bearer_requests_are_unaffected_by_origin_and_may_omit_content_type(
    http: httpx.Client, owner: dict[str, Any]
) -> None:
    token = owner["token"]
    before = ledger(http, token)["balance"]
    for headers in (
        bearer(token),  # a script: no Origin, no Content-Type
        {**bearer(token), "origin": "http://evil.example", "content-type": "application/json"},
        {**bearer(token), "content-type": "application/vnd.telentir+json"},
        # a cookie beside the header authenticates nothing, so it is not checked either
        {**bearer(token), **cookie("junk"), "content-type": "application/json"},
    ):
        assert grant(http, headers, content=GRANT).status_code == 201, headers
    assert ledger(http, token)["balance"] == before + 4 * 7
    for declared in ("text/plain", "application/x-www-form-urlencoded"):
        headers = {**bearer(token), "content-type": declared}
        assert_refused(grant(http, headers, content=GRANT), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert ledger(http, token)["balance"] == before + 4 * 7


def test_object_writes_refuse_other_body_types_on_the_hot_path(
    http: httpx.Client, owner: dict[str, Any]
) -> None:
    token = owner["token"]
    root = send(http, "GET", "/api/root", headers=bearer(token)).json()
    store = root["stores"]["contacts"]
    body = json.dumps(
        {
            "keyId": store["defaultKey"],
            "related_object_id": store["id"],
            "authTag": "00" * 16,
            "content": "0011",
        }
    )
    listing = {"related_object_id": store["id"]}
    count = len(send(http, "GET", "/api/objects", params=listing, headers=bearer(token)).json()["items"])
    for method in ("PUT", "POST"):
        refused = send(
            http,
            method,
            "/api/objects",
            content=body,
            headers={**bearer(token), "content-type": "text/plain"},
        )
        assert_refused(refused, 415, "UNSUPPORTED_MEDIA_TYPE")
        foreign = cookie(token, origin="http://localhost:8080", **{"content-type": "application/json"})
        assert_refused(
            send(http, method, "/api/objects", content=body, headers=foreign), 403, "CSRF_REJECTED"
        )
    assert (
        len(send(http, "GET", "/api/objects", params=listing, headers=bearer(token)).json()["items"]) == count
    )
    # what the real client sends, and the same without a Content-Type, still create
    for headers in ({**bearer(token), "content-type": "application/json"}, bearer(token)):
        created = send(http, "PUT", "/api/objects", content=body, headers=headers)
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        fetched = send(http, "GET", f"/api/objects/{created.json()['id']}", headers=bearer(token))
        assert fetched.headers["cache-control"] == "no-store"


def test_answers_carrying_secrets_are_never_cached(
    http: httpx.Client, box_env: dict[str, str], owner: dict[str, Any]
) -> None:
    token = owner["token"]
    answers = {name: owner[name] for name in ("setup", "login", "phone_verify")}
    registered = send(http, "POST", "/api/auth/register", json=sign_up("ada@example.com"))
    answers["register"] = registered
    member = registered.json()["token"]
    answers["root"] = send(http, "GET", "/api/root", headers=bearer(token))
    answers["api_key"] = send(http, "PUT", "/api/api-keys", json={"name": "k"}, headers=bearer(token))
    answers["server"] = send(
        http, "POST", "/api/servers", json={"name": "generated", "mode": "generate"}, headers=bearer(token)
    )
    answers["ticket"] = send(http, "POST", "/api/events/ticket", headers=bearer(token))
    answers["describe"] = send(http, "GET", "/api/auth", headers=bearer(token))
    enabled = send(http, "POST", "/api/auth/2fa/enable", headers=bearer(member))
    answers["2fa_enable"] = enabled
    secret = enabled.json()["secret"]
    confirmed = send(
        http, "POST", "/api/auth/2fa/confirm", json={"code": totp_code(secret)}, headers=bearer(member)
    )
    answers["2fa_confirm"] = confirmed
    answers["recovery_codes"] = send(
        http,
        "POST",
        "/api/auth/2fa/recovery-codes",
        json={"code": totp_code(secret, 1)},
        headers=bearer(member),
    )
    pending = send(http, "POST", "/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    recovery = answers["recovery_codes"].json()["recoveryCodes"][0]
    answers["2fa_authenticate"] = send(
        http,
        "POST",
        "/api/auth/2fa/authenticate",
        json={"recoveryCode": recovery},
        headers=bearer(pending.json()["token"]),
    )
    answers["refused"] = send(http, "GET", "/api/root", headers=bearer("tbx_forged"))
    answers["health"] = send(http, "GET", "/api/health")
    for name, response in answers.items():
        assert response.status_code < 300 or name == "refused", (name, response.text)
        assert response.headers.get_list("cache-control") == ["no-store"], name
    # The public schema may be cached; an event stream says no-cache, once.
    assert "cache-control" not in send(http, "GET", "/api/schema/openapi.json").headers
    with http.stream("GET", "/api/events", headers=bearer(token)) as stream:
        assert stream.headers.get_list("cache-control") == ["no-cache"]


def test_typed_text_naming_no_account_never_reaches_the_database(
    http: httpx.Client, server: LiveServer, box_env: dict[str, str], owner: dict[str, Any]
) -> None:
    typed_password = "Tr0ub4dor-typed-into-email"
    typed_reset = "Another-secret-in-the-reset-form"
    failed = send(http, "POST", "/api/auth/login", json={"email": typed_password, "password": "whatever"})
    assert failed.status_code == 401
    asked = send(http, "POST", "/api/auth/password/forgot", json={"email": typed_reset})
    assert asked.status_code == 200
    unknown = send(http, "POST", "/api/auth/login", json={"email": "nobody@example.com", "password": "x"})
    assert unknown.status_code == 401
    data_dir = Path(box_env["TELENTIR_BOX_DATA__DIR"])
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any(path.name.endswith("-wal") for path in files)
    for path in [*files, server.log_path]:
        assert path is not None
        content = path.read_bytes().lower()  # the box lower-cases what is typed as an email
        for secret in (typed_password, typed_reset, "nobody@example.com"):
            assert secret.lower().encode() not in content, (path.name, secret)
    audit = send(http, "GET", "/api/audit", params={"event": "login_failed"}, headers=bearer(owner["token"]))
    assert [row["detail"] for row in audit.json()["items"]][:2] == [{}, {}]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("HTTPS://Box.Example.COM:443/path?q=1", "https://box.example.com"),
        ("http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://localhost:80", "http://localhost"),
        ("null", None),
        ("javascript:alert(1)", None),
        ("http://box.example.com:99999", None),
        ("file:///etc/passwd", None),
    ],
)
def test_origin_of_writes_origins_as_browsers_do(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_with_a_public_url_only_its_origin_may_use_the_cookie(data_dir: Path) -> None:
    env = {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_SERVER__PUBLIC_URL": "https://box.example.com",
        **FAST_ENV,
    }
    with TestClient(create_app(load_config(environ=env)), base_url="http://127.0.0.1:3000") as client:
        token = setup_owner(client, data_dir)
        for origin in ("http://127.0.0.1:3000", "http://box.example.com", "https://box.example.com:8443"):
            refused = call(
                client, "PUT", "/api/api-keys", json={"name": "k"}, headers=cookie(token, origin=origin)
            )
            assert_refused(refused, 403, "CSRF_REJECTED")
        assert call(client, "GET", "/api/api-keys", token).json() == []
        created = call(
            client,
            "PUT",
            "/api/api-keys",
            json={"name": "k"},
            headers=cookie(token, origin="https://box.example.com"),
        )
        assert created.status_code == 200, created.text
