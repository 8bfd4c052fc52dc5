"""The session API over the test client: super-admin setup, login, the cookie,
GET /api/auth, logout, registration policy, and every forged token refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from litestar.testing import TestClient

from tests.auth_support import (
    FAST_ENV,
    JSON,
    OWNER,
    PASSWORD,
    call,
    login,
    register,
    setup_owner,
    setup_token,
)


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV, "TELENTIR_BOX_AUTH__REGISTRATION": "open"}


def test_setup_super_admin_creates_owner_once(client: TestClient, data_dir: Path) -> None:
    token_value = setup_token(data_dir)
    wrong = call(
        client,
        "POST",
        "/api/setup-super-admin",
        json={"setupToken": token_value[:-1] + "x", "email": OWNER, "password": PASSWORD},
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "FORBIDDEN"
    assert wrong.json()["status"] == "error"

    token = setup_owner(client, data_dir)
    assert not (data_dir / "setup-token").exists()
    me = call(client, "GET", "/api/auth", token).json()
    assert me["auth"]["role"] == "owner"
    assert me["auth"]["superAdmin"] is True
    assert me["status"] == "phone_not_verified"

    again = call(
        client,
        "POST",
        "/api/setup-super-admin",
        json={"setupToken": token_value, "email": "second@example.com", "password": PASSWORD},
    )
    assert again.status_code == 403
    assert again.json()["code"] == "SETUP_COMPLETE"
    assert login(client, "second@example.com").status_code == 401


def test_setup_super_admin_rejects_malformed_and_oversized(client: TestClient) -> None:
    malformed = call(client, "POST", "/api/setup-super-admin", content=b"{nope", headers=JSON)
    assert malformed.status_code == 400
    huge = {"setupToken": "x" * 5000, "email": OWNER, "password": PASSWORD}
    assert call(client, "POST", "/api/setup-super-admin", json=huge).status_code == 400
    extra = call(
        client,
        "POST",
        "/api/setup-super-admin",
        json={"setupToken": "x", "email": OWNER, "password": PASSWORD, "admin": True},
    )
    assert extra.status_code == 400
    assert "admin" in extra.json()["message"]


def test_login_answers_status_token_and_cookie(client: TestClient, data_dir: Path) -> None:
    setup_owner(client, data_dir)
    response = login(client, OWNER)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "phone_not_verified"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"token={body['token']}")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Max-Age=43200" in cookie
    assert "Secure" not in cookie
    remembered = call(
        client, "POST", "/api/auth/login", json={"email": OWNER, "password": PASSWORD, "remember": True}
    )
    assert f"Max-Age={30 * 86400}" in remembered.headers["set-cookie"]
    # the cookie alone authenticates, and its token is not handed back to page scripts
    client.cookies.set("token", body["token"])
    described = client.get("/api/auth").json()
    assert described["auth"]["email"] == OWNER
    assert described["token"] is None
    client.cookies.clear()


def test_login_failure_shape(client: TestClient, data_dir: Path) -> None:
    setup_owner(client, data_dir)
    for email, password in ((OWNER, "wrong password here"), ("nobody@example.com", PASSWORD)):
        response = login(client, email, password)
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == "error"
        assert body["code"] == "UNAUTHORIZED"
        assert body["error"] == body["message"]


def test_login_rejects_malformed_and_oversized(client: TestClient) -> None:
    assert call(client, "POST", "/api/auth/login", content=b"not json", headers=JSON).status_code == 400
    response = call(client, "POST", "/api/auth/login", json={"email": OWNER, "password": "p" * 2000})
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    unknown = call(client, "POST", "/api/auth/login", json={"email": OWNER, "password": "x", "evil": 1})
    assert unknown.status_code == 400
    assert "evil" in unknown.json()["message"]


def test_auth_describes_caller_or_null(client: TestClient, data_dir: Path) -> None:
    anonymous = call(client, "GET", "/api/auth")
    assert anonymous.status_code == 200
    assert anonymous.json()["auth"] is None
    token = setup_owner(client, data_dir)
    me = call(client, "GET", "/api/auth", token).json()
    assert me["token"] == token
    assert set(me["auth"]) >= {
        "id",
        "email",
        "firstName",
        "lastName",
        "phoneVerified",
        "twoFactorPassed",
        "twoFactorConfigured",
        "role",
    }
    assert me["auth"]["twoFactorPassed"] is True


def test_logout_revokes_session(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    response = call(client, "GET", "/api/auth/logout", token)
    assert response.json() == {"status": "logout"}
    assert 'token=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert call(client, "GET", "/api/auth", token).json()["auth"] is None
    assert call(client, "GET", "/api/api-keys", token).status_code == 401
    assert call(client, "POST", "/api/auth/logout").json() == {"status": "logout"}


def test_logout_with_forged_token_revokes_nothing(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    for name, forged in _forged_tokens(client, token).items():
        response = call(client, "GET", "/api/auth/logout", forged)
        assert response.status_code == 200, name
        assert response.json() == {"status": "logout"}, name
    assert call(client, "GET", "/api/api-keys", token).status_code == 200


def _forged_tokens(client: TestClient, token: str) -> dict[str, str]:
    claims = jwt.decode(token, options={"verify_signature": False})
    box = client.app.state.box
    past = datetime.now(UTC) - timedelta(minutes=1)
    header, payload, signature = token.split(".")
    return {
        "tampered": f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}",
        "expired": box.authenticator.issue_token(claims["sub"], claims["jti"], past),
        "alg_none": jwt.encode(claims, None, algorithm="none"),
        "wrong_key": jwt.encode(claims, "another-secret-of-32-bytes-length!", algorithm="HS256"),
    }


def test_forged_jwts_rejected(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    for name, forged in _forged_tokens(client, token).items():
        response = call(client, "GET", "/api/api-keys", forged)
        assert response.status_code == 401, name
        assert response.json()["code"] == "UNAUTHORIZED", name
        assert call(client, "GET", "/api/auth", forged).json()["auth"] is None, name
    assert call(client, "GET", "/api/api-keys", token).status_code == 200


def test_register_mismatched_passwords_rejected(client: TestClient) -> None:
    body = {
        "firstName": "A",
        "lastName": "B",
        "email": "m@example.com",
        "phone": "+14155550100",
        "password": PASSWORD,
        "confirmPassword": PASSWORD + "!",
    }
    response = call(client, "POST", "/api/auth/register", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["status"] == "error"
    assert login(client, "m@example.com").status_code == 401


REGISTRATION = {
    "firstName": "A",
    "lastName": "B",
    "email": "r@example.com",
    "phone": "+14155550100",
    "password": PASSWORD,
    "confirmPassword": PASSWORD,
}


@pytest.mark.parametrize(
    ("path", "content", "named"),
    [
        ("/api/auth/register", b"{not json", None),
        ("/api/auth/register", {**REGISTRATION, "firstName": "A" * 101}, "firstName"),
        ("/api/auth/register", {**REGISTRATION, "email": "r" * 320 + "@example.com"}, "email"),
        ("/api/auth/register", {**REGISTRATION, "phone": "+1" * 20}, "phone"),
        ("/api/auth/register", {**REGISTRATION, "phone": "+١٤١٥٥٥٥٠١٠٠"}, "phone"),
        ("/api/auth/register", {**REGISTRATION, "password": "p" * 1025}, "password"),
        ("/api/auth/register", {**REGISTRATION, "inviteToken": "t" * 201}, "inviteToken"),
        ("/api/auth/register", {**REGISTRATION, "role": "owner"}, "role"),
        ("/api/auth/password/forgot", b"[", None),
        ("/api/auth/password/forgot", {"email": "f" * 400 + "@example.com"}, "email"),
        ("/api/auth/password/reset", b"{token", None),
        ("/api/auth/password/reset", {"token": "t" * 201, "password": "x", "confirmPassword": "x"}, "token"),
    ],
)
def test_anonymous_auth_routes_reject_bad_bodies(
    client: TestClient, data_dir: Path, path: str, content: bytes | dict[str, str], named: str | None
) -> None:
    owner = setup_owner(client, data_dir)
    sent = {"content": content, "headers": JSON} if isinstance(content, bytes) else {"json": content}
    response = call(client, "POST", path, **sent)
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["status"]) == ("VALIDATION_ERROR", "error")
    assert body["error"] == body["message"]
    if named:
        assert f"`{named}`" in body["message"]
    # nothing was created and no attempt was spent
    assert [m["email"] for m in call(client, "GET", "/api/team/members", owner).json()] == [OWNER]
    assert login(client, OWNER).status_code == 200


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"{currentPassword", None),
        (
            {"currentPassword": "c" * 1025, "password": "n" * 12, "confirmPassword": "n" * 12},
            "currentPassword",
        ),
        ({"currentPassword": PASSWORD, "password": "n" * 1025, "confirmPassword": "n" * 1025}, "password"),
        ({"currentPassword": PASSWORD, "password": "n" * 12, "confirmPassword": "n" * 12, "x": 1}, "x"),
    ],
)
def test_password_change_rejects_bad_bodies(
    client: TestClient, data_dir: Path, content: bytes | dict[str, str], named: str | None
) -> None:
    token = setup_owner(client, data_dir)
    sent = {"content": content, "headers": JSON} if isinstance(content, bytes) else {"json": content}
    response = call(client, "POST", "/api/auth/password", token, **sent)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    if named:
        assert f"`{named}`" in response.json()["message"]
    assert login(client, OWNER).status_code == 200


def test_register_validates_fields(client: TestClient) -> None:
    base = {
        "firstName": "A",
        "lastName": "B",
        "email": "v@example.com",
        "phone": "+14155550100",
        "password": PASSWORD,
        "confirmPassword": PASSWORD,
    }
    for change in (
        {"phone": "0612"},
        {"email": "not-an-email"},
        {"password": "short", "confirmPassword": "short"},
    ):
        assert call(client, "POST", "/api/auth/register", json={**base, **change}).status_code == 400
    token = register(client, "v@example.com")
    assert call(client, "GET", "/api/auth", token).json()["status"] == "phone_not_verified"
    duplicate = call(client, "POST", "/api/auth/register", json=base)
    assert duplicate.status_code == 409


def test_password_change_revokes_other_sessions(client: TestClient, data_dir: Path) -> None:
    token = setup_owner(client, data_dir)
    other = login(client, OWNER).json()["token"]
    new = "a brand new passphrase"
    bad = call(
        client,
        "POST",
        "/api/auth/password",
        token,
        json={"currentPassword": PASSWORD, "password": new, "confirmPassword": new + "x"},
    )
    assert bad.status_code == 400
    wrong = call(
        client,
        "POST",
        "/api/auth/password",
        token,
        json={"currentPassword": "not the password", "password": new, "confirmPassword": new},
    )
    assert wrong.status_code == 400
    ok = call(
        client,
        "POST",
        "/api/auth/password",
        token,
        json={"currentPassword": PASSWORD, "password": new, "confirmPassword": new},
    )
    assert ok.status_code == 200
    assert call(client, "GET", "/api/auth", other).json()["auth"] is None
    assert call(client, "GET", "/api/auth", token).json()["auth"] is not None
    assert login(client, OWNER).status_code == 401
    assert login(client, OWNER, new).status_code == 200
    assert (
        call(
            client,
            "POST",
            "/api/auth/password",
            json={"currentPassword": "x", "password": new, "confirmPassword": new},
        ).status_code
        == 401
    )
