"""Roles protect the top, against the real server: for every pair of ranks (super admin,
owner, admin, member) and every change (to each role, removal), a caller acts only on
members strictly below them and grants roles only up to their own; a refusal changes
nothing. In-process: acting on oneself, the last owner and super admin, and the
offline `admin set-role`, which the ranks do not bind."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from telentir_box.auth import admin
from telentir_box.errors import Conflict
from tests.auth_support import FAST_ENV, PASSWORD, bearer, call, setup_owner, setup_token, sign_up
from tests.conftest import LiveServer, create_user

RANKS = ("member", "admin", "owner", "super admin")
ACTIONS = ("to member", "to admin", "to owner", "remove")
# A super admin target holds the admin role: its flag, not its role, must protect it.
SUPER_ADMIN_ROLE = "admin"


def expected_status(actor: str, target: str, action: str) -> int:
    """The rule: members cannot manage the team at all; others act only on someone
    strictly below them, and grant no role above their own."""
    if actor == "member":
        return 403
    below = RANKS.index(target) < RANKS.index(actor)
    grant_ok = action == "remove" or RANKS.index(action.removeprefix("to ")) <= RANKS.index(actor)
    if not (below and grant_ok):
        return 403
    return 204 if action == "remove" else 200


def test_team_roles_rule_covers_the_reported_attack() -> None:
    # An admin (or an owner) could demote or remove a super admin who was not an owner.
    assert expected_status("admin", "super admin", "to member") == 403
    assert expected_status("owner", "super admin", "remove") == 403
    # Peers cannot act on each other; promotion stops at one's own rank.
    assert expected_status("owner", "owner", "to admin") == 403
    assert expected_status("admin", "member", "to owner") == 403
    assert expected_status("admin", "member", "to admin") == 200
    assert expected_status("super admin", "owner", "remove") == 204


class Team:
    """One real server shared by the whole matrix: a fixed actor per rank and a
    second super admin as the super admin target (only ever refused, so it stays)."""

    def __init__(self, server: LiveServer, env: dict[str, str], data_dir: Path) -> None:
        self.http = server.client()
        self.count = itertools.count()
        body = {"setupToken": setup_token(data_dir), "email": "root@example.com", "password": PASSWORD}
        self.root = self.send("POST", "/api/setup-super-admin", json=body).json()["token"]
        self.actors = {"super admin": self.root}
        for role in ("owner", "admin", "member"):
            self.actors[role] = self.join(role)[1]
        flags = ("--role", SUPER_ADMIN_ROLE, "--super-admin")
        self.super_admin_id = create_user(env, "second-root@example.com", *flags)["id"]

    def send(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        self.http.cookies.clear()
        return self.http.request(method, path, headers=bearer(token) if token else {}, **kwargs)

    def join(self, role: str) -> tuple[str, str]:
        """A new member with `role`, invited by the super admin: (id, session token)."""
        email = f"{role}{next(self.count)}@example.com"
        invited = self.send("POST", "/api/team/invites", self.root, json={"email": email, "role": role})
        assert invited.status_code == 201, invited.text
        body = sign_up(email, inviteToken=invited.json()["inviteToken"])
        token = self.send("POST", "/api/auth/register", json=body).json()["token"]
        return self.send("GET", "/api/auth", token).json()["auth"]["id"], token

    def members(self) -> dict[str, dict[str, Any]]:
        listed = self.send("GET", "/api/team/members", self.root)
        assert listed.status_code == 200, listed.text
        return {m["id"]: m for m in listed.json()}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("roles")
    env = {
        "TELENTIR_BOX_DATA__DIR": str(base / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        **FAST_ENV,
    }
    server = LiveServer(env=env, log_path=base / "server.log").start()
    team = Team(server, env, base / "data")
    try:
        yield team
    finally:
        team.http.close()
        server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("target", RANKS)
@pytest.mark.parametrize("actor", RANKS)
def test_team_roles_every_pair(team: Team, actor: str, target: str, action: str) -> None:
    target_id = team.super_admin_id if target == "super admin" else team.join(target)[0]
    before = team.members()
    if action == "remove":
        response = team.send("DELETE", f"/api/team/members/{target_id}", team.actors[actor])
    else:
        role = action.removeprefix("to ")
        response = team.send(
            "PATCH", f"/api/team/members/{target_id}", team.actors[actor], json={"role": role}
        )
    status = expected_status(actor, target, action)
    assert response.status_code == status, response.text
    after = team.members()
    if status == 403:
        assert response.json()["code"] == "FORBIDDEN"
        assert after == before
    elif action == "remove":
        assert after == {k: v for k, v in before.items() if k != target_id}
    else:
        assert after[target_id]["role"] == action.removeprefix("to ")
        assert {k: v for k, v in after.items() if k != target_id} == {
            k: v for k, v in before.items() if k != target_id
        }


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV}


def member_ids(client: TestClient, token: str) -> dict[str, str]:
    return {m["email"]: m["id"] for m in call(client, "GET", "/api/team/members", token).json()}


def invite_and_join(client: TestClient, inviter: str, email: str, role: str) -> str:
    invited = call(client, "POST", "/api/team/invites", inviter, json={"email": email, "role": role})
    assert invited.status_code == 201, invited.text
    body = sign_up(email, inviteToken=invited.json()["inviteToken"])
    return call(client, "POST", "/api/auth/register", json=body).json()["token"]


def test_team_roles_acting_on_oneself(client: TestClient, data_dir: Path) -> None:
    root = setup_owner(client, data_dir)
    owner = invite_and_join(client, root, "o@example.com", "owner")
    admin_token = invite_and_join(client, root, "a@example.com", "admin")
    ids = member_ids(client, root)

    promoted = call(
        client, "PATCH", f"/api/team/members/{ids['a@example.com']}", admin_token, json={"role": "owner"}
    )
    assert (promoted.status_code, promoted.json()["code"]) == (403, "FORBIDDEN")
    demoted = call(
        client, "PATCH", f"/api/team/members/{ids['a@example.com']}", admin_token, json={"role": "member"}
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "member"
    # Another owner remains (the super admin's role is owner), so this owner may step down.
    assert (
        call(
            client, "PATCH", f"/api/team/members/{ids['o@example.com']}", owner, json={"role": "admin"}
        ).status_code
        == 200
    )


def test_team_roles_the_last_super_admin_and_owner_stay(client: TestClient, data_dir: Path) -> None:
    root = setup_owner(client, data_dir)
    invite_and_join(client, root, "o@example.com", "owner")
    ids = member_ids(client, root)
    root_id = ids["owner@example.com"]
    # The super admin steps down to admin: an owner remains, and the flag still ranks first.
    stepped = call(client, "PATCH", f"/api/team/members/{root_id}", root, json={"role": "admin"})
    assert stepped.status_code == 200, stepped.text
    before = call(client, "GET", "/api/team/members", root).json()
    removed = call(client, "DELETE", f"/api/team/members/{root_id}", root)
    assert (removed.status_code, removed.json()["code"]) == (409, "CONFLICT")
    assert "super admin" in removed.json()["message"]
    assert call(client, "GET", "/api/team/members", root).json() == before


def test_team_roles_offline_set_role_is_not_bound_by_ranks(client: TestClient, data_dir: Path) -> None:
    root = setup_owner(client, data_dir)
    invite_and_join(client, root, "o@example.com", "owner")
    box = client.app.state.box
    with client.portal() as portal:
        # The operator may change anyone's role, the super admin's included; the flag stays.
        portal.call(admin.set_role, box, "owner@example.com", "member")
        with pytest.raises(Conflict):
            portal.call(admin.set_role, box, "o@example.com", "admin")  # the last owner
        users = {u["email"]: u for u in portal.call(admin.list_users, box)}
    assert (users["owner@example.com"]["role"], users["owner@example.com"]["superAdmin"]) == ("member", True)
    assert users["o@example.com"]["role"] == "owner"
    # The super admin, now a member by role, still ranks first through the API.
    ids = member_ids(client, root)
    demoted = call(client, "PATCH", f"/api/team/members/{ids['o@example.com']}", root, json={"role": "admin"})
    assert (demoted.status_code, demoted.json()["code"]) == (409, "CONFLICT")
    kept = call(
        client, "PATCH", f"/api/team/members/{ids['owner@example.com']}", root, json={"role": "owner"}
    )
    assert kept.status_code == 200, kept.text
