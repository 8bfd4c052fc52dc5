"""Reading the auth audit trail: GET /api/audit for admins, owners and the super admin
(filters, newest-first cursor paging, bad parameters), GET /api/auth/audit for
anyone's own rows, and no token, key or code ever shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from telentir_box.db import identity as identity_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.migrate import apply_migrations, available_migrations
from tests.auth_support import FAST_ENV, OWNER, all_audit, call, login, register, setup_owner


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST_ENV, "TELENTIR_BOX_AUTH__REGISTRATION": "open"}


@pytest.fixture
def team(client: TestClient, data_dir: Path) -> dict[str, str]:
    """Signed-in tokens of the super admin ("owner"), an admin and a member, plus ids."""
    tokens = {"owner": setup_owner(client, data_dir)}
    for role in ("admin", "member"):
        tokens[role] = register(client, f"{role}@example.com")
        tokens[f"{role}_id"] = call(client, "GET", "/api/auth", tokens[role]).json()["auth"]["id"]
    promoted = call(
        client, "PATCH", f"/api/team/members/{tokens['admin_id']}", tokens["owner"], json={"role": "admin"}
    )
    assert promoted.status_code == 200
    tokens["owner_id"] = call(client, "GET", "/api/auth", tokens["owner"]).json()["auth"]["id"]
    return tokens


def audit(client: TestClient, token: str | None, query: str = "", path: str = "/api/audit") -> Any:
    return call(client, "GET", f"{path}{query}", token)


def test_audit_pages_newest_first_without_gaps(client: TestClient, team: dict[str, str]) -> None:
    for n in range(4):  # a fifth would lock the account out (and log a lockout)
        assert login(client, "member@example.com", f"wrong password {n}").status_code == 401
    everything = audit(client, team["owner"], "?limit=1000").json()
    assert everything["next_cursor"] is None
    ids = [row["id"] for row in everything["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 8
    assert everything["items"][0]["event"] == "login_failed"
    assert set(everything["items"][0]) == {"id", "event", "user_id", "actor_id", "ip", "detail", "created_at"}

    seen, cursor, pages = [], "", 0
    while True:
        page = audit(client, team["admin"], f"?limit=2&cursor={cursor}").json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything["items"]
    assert pages == (len(ids) + 1) // 2
    assert len(audit(client, team["owner"]).json()["items"]) == len(ids)  # default page: 100


def test_audit_filters_by_user_and_event(client: TestClient, team: dict[str, str]) -> None:
    login(client, "member@example.com", "not the password at all")
    mine = audit(client, team["owner"], f"?user_id={team['member_id']}").json()["items"]
    assert {row["user_id"] for row in mine} == {team["member_id"]}
    assert [row["event"] for row in mine] == ["login_failed", "registered"]
    assert mine[0]["detail"] == {"email": "member@example.com"}

    registered = audit(client, team["owner"], "?event=registered").json()["items"]
    assert [row["user_id"] for row in registered] == [team["member_id"], team["admin_id"]]
    both = audit(client, team["owner"], f"?event=registered&user_id={team['admin_id']}").json()["items"]
    assert [row["user_id"] for row in both] == [team["admin_id"]]
    role = audit(client, team["owner"], "?event=role_changed").json()["items"]
    assert [(r["user_id"], r["actor_id"], r["detail"]) for r in role] == [
        (team["admin_id"], team["owner_id"], {"from": "member", "to": "admin"})
    ]
    nobody = audit(client, team["owner"], "?user_id=usr_" + "0" * 22 + "&event=no_such_event").json()
    assert nobody == {"items": [], "next_cursor": None}


BAD_QUERIES = [
    "?limit=0",
    "?limit=1001",
    "?limit=-1",
    "?limit=ten",
    "?limit=" + "9" * 30,
    "?cursor=abc",
    "?cursor=-5",
    "?cursor=" + "9" * 19,
    # digits of other scripts, which str.isdigit and int() accept
    "?cursor=١٢٣",
    "?cursor=%C2%B2",
    "?limit=١٢",
    "?event=Login%20OR%201=1",
    "?event=" + "e" * 65,
]
BAD_USER_IDS = ["?user_id=nobody", "?user_id=key_" + "0" * 22, "?user_id=" + "u" * 5000]


@pytest.mark.parametrize(
    ("path", "query"),
    [("/api/audit", q) for q in BAD_QUERIES + BAD_USER_IDS] + [("/api/auth/audit", q) for q in BAD_QUERIES],
)
def test_audit_rejects_bad_parameters(
    client: TestClient, team: dict[str, str], path: str, query: str
) -> None:
    response = audit(client, team["owner"], query, path)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_audit_is_for_admins_owners_and_the_super_admin(client: TestClient, team: dict[str, str]) -> None:
    for token, status, code in (
        (None, 401, "UNAUTHORIZED"),
        ("tbx_forged", 401, "UNAUTHORIZED"),
        (team["member"], 403, "FORBIDDEN"),
    ):
        refused = audit(client, token)
        assert (refused.status_code, refused.json()["code"]) == (status, code)
    assert audit(client, team["admin"]).status_code == 200
    assert audit(client, team["owner"]).status_code == 200
    # an owner who is not the super admin
    owner = call(
        client, "PATCH", f"/api/team/members/{team['member_id']}", team["owner"], json={"role": "owner"}
    )
    assert owner.status_code == 200
    assert audit(client, team["member"]).status_code == 200
    # an API key acts as its owner, and a demoted admin loses access at once
    key = call(client, "PUT", "/api/api-keys", team["admin"], json={"name": "audit"}).json()["key"]
    assert audit(client, key).status_code == 200
    demoted = call(
        client, "PATCH", f"/api/team/members/{team['admin_id']}", team["owner"], json={"role": "member"}
    )
    assert demoted.status_code == 200
    assert audit(client, key).status_code == 403
    assert audit(client, team["admin"]).status_code == 403


def test_audit_own_trail_shows_only_the_callers_rows(client: TestClient, team: dict[str, str]) -> None:
    login(client, OWNER, "a wrong password here")
    for who in ("member", "admin", "owner"):
        rows = audit(client, team[who], path="/api/auth/audit").json()["items"]
        assert rows and {row["user_id"] for row in rows} == {team[f"{who}_id"]}, who
    # a user_id in the query changes nothing: it is always the caller's own trail
    theirs = audit(client, team["member"], f"?user_id={team['owner_id']}", "/api/auth/audit").json()
    assert {row["user_id"] for row in theirs["items"]} == {team["member_id"]}
    page = audit(client, team["member"], "?limit=1&event=registered", "/api/auth/audit").json()
    assert [row["event"] for row in page["items"]] == ["registered"] and page["next_cursor"] is None
    for token, code in ((None, "UNAUTHORIZED"), ("tbx_forged", "UNAUTHORIZED")):
        refused = audit(client, token, path="/api/auth/audit")
        assert (refused.status_code, refused.json()["code"], refused.json()["status"]) == (401, code, "error")


def test_audit_never_shows_tokens_keys_or_codes(client: TestClient, team: dict[str, str]) -> None:
    owner = team["owner"]
    invite = call(client, "POST", "/api/team/invites", owner, json={"email": "new@example.com"})
    key = call(client, "PUT", "/api/api-keys", team["member"], json={"name": "k"}).json()
    started = call(client, "POST", "/api/auth/2fa/enable", owner).json()
    assert (
        call(client, "POST", "/api/auth/password/forgot", json={"email": "member@example.com"}).status_code
        == 200
    )
    # a password typed into the email field of the sign-in form
    typed = "my secret passphrase"
    assert login(client, typed, "whatever it is here").status_code == 401
    assert login(client, "sue@example.com", "whatever it is here").status_code == 401

    listing = audit(client, owner, "?limit=1000")
    text = listing.text
    for secret in (invite.json()["inviteToken"], key["key"], started["secret"], typed, "tbr_"):
        assert secret not in text
    rows = listing.json()["items"]
    # nothing typed for an unknown account is kept, an email-shaped text included
    failed = [row["detail"] for row in rows if row["event"] == "login_failed"]
    assert failed == [{}, {}]
    assert "sue@example.com" not in text
    by_event = {row["event"]: row for row in rows}
    assert by_event["invite_created"]["detail"] == {"email": "new@example.com", "role": "member"}
    assert by_event["api_key_created"]["detail"] == {"key_id": key["id"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", by_event["registered"]["created_at"])


def test_audit_routes_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/api/schema/openapi.json").json()["paths"]
    listed = {p["name"] for p in paths["/api/audit"]["get"]["parameters"]}
    assert listed == {"user_id", "event", "cursor", "limit"}
    assert {p["name"] for p in paths["/api/auth/audit"]["get"]["parameters"]} == {"event", "cursor", "limit"}
    assert "post" in paths["/api/auth/2fa/recovery-codes"]


async def test_migration_forgets_text_typed_for_unknown_accounts(tmp_path: Path) -> None:
    """Rows written before the fix kept what was typed as the email of an unknown
    account (perhaps a password); the migration empties exactly those details."""
    database = Database(tmp_path / "t.sqlite3", read_pool_size=1)
    await database.open()
    every = available_migrations()
    forgets = next(m for m in every if m.name == "audit_forgets_typed_text")
    try:
        await apply_migrations(database.writer, [m for m in every if m is not forgets])

        async def old_rows(tx: Transaction) -> None:
            typed = {"email": "my secret passphrase"}
            await identity_repo.insert_audit(tx, "login_failed", detail=typed)
            await identity_repo.insert_audit(tx, "password_reset_unknown", detail=typed)
            known = {"email": "ada@example.com"}
            await identity_repo.insert_audit(tx, "login_failed", user_id="usr_" + "a" * 22, detail=known)

        await database.write(old_rows)
        assert await apply_migrations(database.writer, every) == [forgets]
        async with database.reading() as conn:
            details = [row.detail for row in await all_audit(conn)]
        assert details == [{}, {}, {"email": "ada@example.com"}]
    finally:
        await database.close()
