"""API keys (create once-shown, list masked, revoke at once, never another user's)
and the team: invites under the registration policy, roles, removal, the last owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.auth_support import FAST_ENV, OWNER, PASSWORD, call, login, register, setup_owner


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV}


def invite(client: TestClient, token: str, email: str, role: str = "member") -> str:
    response = call(client, "POST", "/api/team/invites", token, json={"email": email, "role": role})
    assert response.status_code == 201, response.text
    return response.json()["inviteToken"]


def join(client: TestClient, owner: str, email: str, role: str = "member") -> str:
    return register(client, email, inviteToken=invite(client, owner, email, role))


def test_api_keys_create_list_revoke(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    first = call(client, "PUT", "/api/api-keys", owner, json={"name": "first"})
    assert first.status_code == 200, first.text
    created = first.json()
    assert set(created) == {"id", "name", "key", "last_used_at", "created_at"}
    assert created["key"].startswith("tbx_") and len(created["key"]) >= 4 + 43
    second = call(client, "POST", "/api/api-keys", owner, json={"name": "second"}).json()
    listed = call(client, "GET", "/api/api-keys", owner).json()
    assert [k["id"] for k in listed] == [second["id"], created["id"]]
    assert all(created["key"] not in k["key"] and k["key"].startswith("tbx_...") for k in listed)

    key = created["key"]
    me = call(client, "GET", "/api/auth", key).json()
    assert me["auth"]["role"] == "owner" and me["token"] is None
    assert call(client, "DELETE", f"/api/api-keys/{created['id']}", owner).status_code == 204
    revoked = call(client, "GET", "/api/api-keys", key)
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "UNAUTHORIZED"
    assert call(client, "DELETE", f"/api/api-keys/{created['id']}", owner).status_code == 404


def test_api_keys_reject_bad_input_and_auth(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    assert call(client, "PUT", "/api/api-keys", owner, json={"name": ""}).status_code == 400
    assert call(client, "PUT", "/api/api-keys", owner, json={"name": "n" * 500}).status_code == 400
    assert call(client, "PUT", "/api/api-keys", owner, json={"name": "n", "scope": "all"}).status_code == 400
    assert call(client, "PUT", "/api/api-keys", owner, content=b"[").status_code == 400
    assert call(client, "PUT", "/api/api-keys", json={"name": "n"}).status_code == 401
    assert call(client, "DELETE", "/api/api-keys/not-an-id", owner).status_code == 404


def test_api_keys_of_another_user_are_404(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    member = join(client, owner, "m@example.com")
    theirs = call(client, "PUT", "/api/api-keys", owner, json={"name": "owner's"}).json()
    assert call(client, "GET", "/api/api-keys", member).json() == []
    deleted = call(client, "DELETE", f"/api/api-keys/{theirs['id']}", member)
    assert deleted.status_code == 404
    assert deleted.json()["code"] == "NOT_FOUND"
    assert call(client, "GET", "/api/auth", theirs["key"]).json()["auth"]["email"] == OWNER


def test_registration_policy(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    body = {
        "firstName": "A",
        "lastName": "B",
        "email": "new@example.com",
        "phone": "+14155550100",
        "password": PASSWORD,
        "confirmPassword": PASSWORD,
    }
    assert call(client, "POST", "/api/auth/register", json=body).status_code == 403
    token = invite(client, owner, "new@example.com", "admin")
    wrong_email = call(
        client, "POST", "/api/auth/register", json={**body, "email": "o@example.com", "inviteToken": token}
    )
    assert wrong_email.status_code == 403
    joined = call(client, "POST", "/api/auth/register", json={**body, "inviteToken": token})
    assert joined.status_code == 200
    assert joined.json()["status"] == "phone_not_verified"
    assert call(client, "GET", "/api/auth", joined.json()["token"]).json()["auth"]["role"] == "admin"
    reused = call(
        client, "POST", "/api/auth/register", json={**body, "email": "z@example.com", "inviteToken": token}
    )
    assert reused.status_code == 403


def test_registration_closed(env: dict[str, str]) -> None:
    config = load_config(environ={**env, "TELENTIR_BOX_AUTH__REGISTRATION": "closed"})
    with TestClient(create_app(config)) as client:
        body = {
            "firstName": "A",
            "lastName": "B",
            "email": "c@example.com",
            "phone": "+14155550100",
            "password": PASSWORD,
            "confirmPassword": PASSWORD,
            "inviteToken": "tbi_x",
        }
        response = call(client, "POST", "/api/auth/register", json=body)
        assert response.status_code == 403
        assert response.json()["status"] == "error"


def test_team_roles_and_last_owner(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    member = join(client, owner, "m@example.com")
    admin = join(client, owner, "a@example.com", "admin")

    refused = call(client, "GET", "/api/team/members", member)
    assert refused.status_code == 403
    assert refused.json()["code"] == "FORBIDDEN"
    assert (
        call(client, "POST", "/api/team/invites", member, json={"email": "q@example.com"}).status_code == 403
    )

    members = call(client, "GET", "/api/team/members", admin).json()
    by_email = {m["email"]: m for m in members}
    assert by_email[OWNER]["role"] == "owner"
    owner_id, member_id = by_email[OWNER]["id"], by_email["m@example.com"]["id"]

    assert (
        call(
            client, "POST", "/api/team/invites", admin, json={"email": "o2@example.com", "role": "owner"}
        ).status_code
        == 403
    )
    assert (
        call(client, "PATCH", f"/api/team/members/{owner_id}", admin, json={"role": "member"}).status_code
        == 403
    )
    promoted = call(client, "PATCH", f"/api/team/members/{member_id}", admin, json={"role": "admin"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert call(client, "GET", "/api/team/members", member).status_code == 200

    last = call(client, "PATCH", f"/api/team/members/{owner_id}", owner, json={"role": "admin"})
    assert last.status_code == 409
    assert call(client, "DELETE", f"/api/team/members/{owner_id}", owner).status_code == 409
    assert (
        call(client, "PATCH", f"/api/team/members/{member_id}", owner, json={"role": "boss"}).status_code
        == 400
    )
    assert (
        call(
            client, "PATCH", f"/api/team/members/{member_id}", owner, json={"role": "admin", "x": 1}
        ).status_code
        == 400
    )
    assert (
        call(
            client, "PATCH", "/api/team/members/usr_doesnotexist000000", owner, json={"role": "admin"}
        ).status_code
        == 404
    )
    assert call(client, "DELETE", f"/api/team/members/{member_id}", owner).status_code == 204
    assert call(client, "GET", "/api/auth", member).json()["auth"] is None
    assert login(client, "m@example.com").status_code == 401
    assert call(client, "GET", "/api/team/members", "tbx_forged").status_code == 401
