"""HTTP routes for API keys (/api/api-keys), the team (/api/team, admins and owners),
the team's auth audit trail (/api/audit, admins and owners) and the one-time
/api/setup-super-admin."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, route
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from telentir_box.auth import apikeys, audit, team
from telentir_box.auth import login as signin
from telentir_box.auth.guards import requires_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.auth.routes import (
    AuthController,
    Email,
    Name,
    Password,
    Token,
    client_ip,
    handle_auth_exception,
    signed_in,
)
from telentir_box.box import Box
from telentir_box.db.users import ApiKeyRow
from telentir_box.web.paging import Limit, page_size

Role = Annotated[str, msgspec.Meta(max_length=16)]


class ApiKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=apikeys.MAX_NAME)]


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


class SetupBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    setup_token: Token
    email: Email
    password: Password
    first_name: Name = ""
    last_name: Name = ""


def describe_key(row: ApiKeyRow, key: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "key": key or row.hint,
        "last_used_at": row.last_used_at,
        "created_at": row.created_at,
    }


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["auth"]
    guards = [requires_auth]

    @route("", http_method=["PUT", "POST"], status_code=200)
    async def create_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[ApiKeyBody]
    ) -> dict[str, Any]:
        created = await apikeys.create_api_key(box.db, box.authenticator, principal.user_id, data.name)
        return describe_key(created.row, created.key)

    @get("")
    async def list_keys(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[dict[str, Any]]:
        return [describe_key(row) for row in await apikeys.list_api_keys(box.db, principal.user_id)]

    @delete("/{key_id:str}")
    async def delete_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], key_id: FromPath[str]
    ) -> None:
        await apikeys.revoke_api_key(box.db, principal.user_id, key_id)


class TeamController(Controller):
    path = "/team"
    tags = ["team"]
    guards = [requires_role("admin")]

    @post("/invites", status_code=201)
    async def invite(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[InviteBody]
    ) -> dict[str, str]:
        invite = await team.create_invite(box, principal, data.email, data.role)
        return {
            "inviteToken": invite.token,
            "email": invite.email,
            "role": invite.role,
            "expires_at": invite.expires_at,
        }

    @get("/members")
    async def members(self, box: NamedDependency[Box]) -> list[dict[str, Any]]:
        return [team.describe_member(user) for user in await team.list_members(box)]

    @patch("/members/{member_id:str}")
    async def set_role(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        member_id: FromPath[str],
        data: JSONBody[RoleBody],
    ) -> dict[str, Any]:
        return team.describe_member(await team.set_member_role(box.db, principal, member_id, data.role))

    @delete("/members/{member_id:str}")
    async def remove(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], member_id: FromPath[str]
    ) -> None:
        await team.remove_member(box.db, principal, member_id)


class AuditController(Controller):
    path = "/audit"
    tags = ["team"]
    guards = [requires_role("admin")]

    @get("", summary="The auth audit trail of the whole team, newest first, cursor-paginated")
    async def list_audit(
        self,
        box: NamedDependency[Box],
        user_id: FromQuery[str | None] = None,
        event: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = None,
    ) -> audit.AuditPage:
        size = page_size(limit, audit.DEFAULT_PAGE)
        return await audit.list_audit(box.db, user_id=user_id, event=event, cursor=cursor, size=size)


@post(
    "/setup-super-admin",
    tags=["auth"],
    status_code=200,
    exception_handlers={Exception: handle_auth_exception},
)
async def setup_super_admin(
    request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[SetupBody]
) -> Response[dict[str, Any]]:
    result = await signin.setup_super_admin(
        box,
        data.setup_token,
        data.email,
        data.password,
        (data.first_name, data.last_name),
        client_ip(request),
    )
    return signed_in(box, result)


identity_routes = [AuthController, ApiKeyController, TeamController, AuditController, setup_super_admin]
