"""API keys (create once-shown, list masked, revoke at once, never another user's)
and the team: invites under the registration policy, roles, removal, the last owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.auth_support import FAST_ENV, OWNER, PASSWORD, all_audit, call, login, register, setup_owner


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV}


# A complete registration form; tests add an inviteToken or change a field.
REGISTRATION = {
    "firstName": "A",
    "lastName": "B",
    "email": "new@example.com",
    "phone": "+14155550100",
    "password": PASSWORD,
    "confirmPassword": PASSWORD,
}


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
    key = call(client, "PUT", "/api/api-keys", owner, json={"name": "kept"}).json()
    for credential in (None, "tbx_forged"):
        refused = call(client, "DELETE", f"/api/api-keys/{key['id']}", credential)
        assert refused.status_code == 401
        assert refused.json()["code"] == "UNAUTHORIZED"
    assert call(client, "GET", "/api/auth", key["key"]).json()["auth"]["email"] == OWNER


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
    body = dict(REGISTRATION)
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


def test_registration_refuses_bad_invite_and_creates_nothing(client: TestClient, data_dir: Path) -> None:
    owner = setup_owner(client, data_dir)
    token = invite(client, owner, "new@example.com")
    body = dict(REGISTRATION)
    for bad in ("tbi_" + "A" * 43, token[:-1], "", "tbi_x"):
        refused = call(client, "POST", "/api/auth/register", json={**body, "inviteToken": bad})
        assert refused.status_code == 403, bad
        assert refused.json()["code"] == "FORBIDDEN"
        assert refused.json()["status"] == "error"
    emails = [m["email"] for m in call(client, "GET", "/api/team/members", owner).json()]
    assert emails == [OWNER]
    assert login(client, "new@example.com").status_code == 401
    # the refusals left the real invite unused
    assert call(client, "POST", "/api/auth/register", json={**body, "inviteToken": token}).status_code == 200


def test_registration_bad_invites_are_limited_per_address(client: TestClient, data_dir: Path) -> None:
    setup_owner(client, data_dir)
    body = {**REGISTRATION, "inviteToken": "tbi_" + "A" * 43}
    allowed = client.app.state.box.config.auth.max_attempts
    statuses = [call(client, "POST", "/api/auth/register", json=body).status_code for _ in range(allowed + 1)]
    assert statuses == [403] * allowed + [429]


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


TEAM = {"owner": OWNER, "admin": "admin@example.com", "member": "member@example.com"}


def audit_count(client: TestClient, event: str) -> int:
    box = client.app.state.box

    async def read() -> int:
        async with box.db.reading() as conn:
            return sum(row.event == event for row in await all_audit(conn))

    with client.portal() as portal:
        return portal.call(read)


@pytest.mark.parametrize(
    ("who", "content", "status", "code"),
    [
        (None, {"email": "q@example.com"}, 401, "UNAUTHORIZED"),
        ("member", {"email": "q@example.com"}, 403, "FORBIDDEN"),
        ("admin", {"email": "not-an-email"}, 400, "VALIDATION_ERROR"),
        ("admin", {"email": "q@example.com", "expires": "never"}, 400, "VALIDATION_ERROR"),
        ("admin", {"email": "q" * 400 + "@example.com"}, 400, "VALIDATION_ERROR"),
        ("admin", {"email": "q@example.com", "role": "r" * 17}, 400, "VALIDATION_ERROR"),
        ("admin", {"email": "q@example.com", "role": "boss"}, 400, "VALIDATION_ERROR"),
        ("admin", b"{email", 400, "VALIDATION_ERROR"),
    ],
)
def test_team_invites_refused_create_nothing(
    team_client: tuple[TestClient, dict[str, str]],
    who: str | None,
    content: bytes | dict[str, str],
    status: int,
    code: str,
) -> None:
    client, tokens = team_client
    sent = {"content": content} if isinstance(content, bytes) else {"json": content}
    response = call(client, "POST", "/api/team/invites", tokens.get(who or ""), **sent)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert audit_count(client, "invite_created") == 2  # the two that made the team


@pytest.mark.parametrize(
    ("who", "method", "target", "content", "status", "code"),
    [
        (None, "PATCH", "member", {"role": "admin"}, 401, "UNAUTHORIZED"),
        ("admin", "PATCH", "member", {"role": "r" * 17}, 400, "VALIDATION_ERROR"),
        ("admin", "PATCH", "member", {"role": "boss"}, 400, "VALIDATION_ERROR"),
        ("admin", "PATCH", "member", b"{role", 400, "VALIDATION_ERROR"),
        ("admin", "PATCH", "owner", {"role": "member"}, 403, "FORBIDDEN"),
        ("admin", "PATCH", "not-an-id", {"role": "admin"}, 404, "NOT_FOUND"),
        (None, "DELETE", "member", None, 401, "UNAUTHORIZED"),
        ("member", "DELETE", "admin", None, 403, "FORBIDDEN"),
        ("admin", "DELETE", "not-an-id", None, 404, "NOT_FOUND"),
        ("admin", "DELETE", "usr_" + "0" * 22, None, 404, "NOT_FOUND"),
        ("admin", "DELETE", "owner", None, 403, "FORBIDDEN"),
    ],
)
def test_team_member_changes_refused_change_nothing(
    team_client: tuple[TestClient, dict[str, str]],
    who: str | None,
    method: str,
    target: str,
    content: bytes | dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    client, tokens = team_client
    before = call(client, "GET", "/api/team/members", tokens["owner"]).json()
    ids = {m["email"]: m["id"] for m in before}
    member_id = ids.get(TEAM.get(target, ""), target)
    sent = {"content": content} if isinstance(content, bytes) else {"json": content}
    response = call(client, method, f"/api/team/members/{member_id}", tokens.get(who or ""), **sent)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert call(client, "GET", "/api/team/members", tokens["owner"]).json() == before


@pytest.fixture
def team_client(client: TestClient, data_dir: Path) -> tuple[TestClient, dict[str, str]]:
    """The team of TEAM, signed in: role -> session token."""
    owner = setup_owner(client, data_dir)
    tokens = {
        "owner": owner,
        "admin": join(client, owner, TEAM["admin"], "admin"),
        "member": join(client, owner, TEAM["member"]),
    }
    return client, tokens
