"""HTTP routes for API keys (/api/api-keys), the team (/api/team, admins and owners),
the team's auth audit trail (/api/audit, admins and owners) and the one-time
/api/setup-super-admin."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, route
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from telentir_box.auth import apikeys, audit, team
from telentir_box.auth import login as signin
from telentir_box.auth.guards import requires_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.auth.routes import (
    AuditEvent,
    AuditUser,
    AuthController,
    Email,
    Name,
    NewPassword,
    SignedInAnswer,
    Token,
    client_ip,
    signed_in,
)
from telentir_box.box import Box
from telentir_box.db.users import ApiKeyRow
from telentir_box.errors import Conflict, Forbidden, RateLimited
from telentir_box.web.errors import handle_exception_with_status
from telentir_box.web.openapi import NOT_BLANK, documented, errors
from telentir_box.web.paging import Cursor, Limit, page_size

Role = Literal["owner", "admin", "member"]


class ApiKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    # Surrounding spaces are trimmed; what is left must not be empty.
    name: Annotated[str, msgspec.Meta(max_length=apikeys.MAX_NAME), documented(pattern=NOT_BLANK)]


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


class SetupBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    setup_token: Token
    email: Email
    password: NewPassword
    first_name: Name = ""
    last_name: Name = ""


class ApiKeyView(msgspec.Struct):
    """`key` is the whole API key only in the answer that creates it; afterwards a hint
    (`tbx_...abcd`)."""

    id: str
    name: str
    key: str
    last_used_at: str | None
    created_at: str


class InviteView(msgspec.Struct, rename={"invite_token": "inviteToken"}):
    invite_token: str
    email: str
    role: Role
    expires_at: str


class Member(
    msgspec.Struct,
    rename={
        "first_name": "firstName",
        "last_name": "lastName",
        "phone_verified": "phoneVerified",
        "two_factor_configured": "twoFactorConfigured",
    },
):
    id: str
    email: str
    first_name: str
    last_name: str
    role: Role
    phone_verified: bool
    two_factor_configured: bool
    created_at: str


def describe_key(row: ApiKeyRow, key: str | None = None) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        name=row.name,
        key=key or row.hint,
        last_used_at=row.last_used_at,
        created_at=row.created_at,
    )


def member_view(user: Any) -> Member:
    return msgspec.convert(team.describe_member(user), Member)


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["auth"]
    guards = [requires_auth]

    @route(
        "", http_method=["PUT", "POST"], status_code=200, summary="Create an API key; its value is shown once"
    )
    async def create_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[ApiKeyBody]
    ) -> ApiKeyView:
        created = await apikeys.create_api_key(box.db, box.authenticator, principal.user_id, data.name)
        return describe_key(created.row, created.key)

    @get("", summary="The caller's API keys (hints, not the keys)")
    async def list_keys(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[ApiKeyView]:
        return [describe_key(row) for row in await apikeys.list_api_keys(box.db, principal.user_id)]

    @delete("/{key_id:str}", summary="Revoke an API key")
    async def delete_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], key_id: FromPath[str]
    ) -> None:
        await apikeys.revoke_api_key(box.db, principal.user_id, key_id)


class TeamController(Controller):
    path = "/team"
    tags = ["team"]
    guards = [requires_role("admin")]

    @post("/invites", status_code=201, summary="Invite someone by email to register with a role")
    async def invite(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[InviteBody]
    ) -> InviteView:
        invite = await team.create_invite(box, principal, data.email, data.role)
        return InviteView(
            invite_token=invite.token,
            email=invite.email,
            role=invite.role,  # type: ignore[arg-type]
            expires_at=invite.expires_at,
        )

    @get("/members", summary="Every member of the team")
    async def members(self, box: NamedDependency[Box]) -> list[Member]:
        return [member_view(user) for user in await team.list_members(box)]

    @patch("/members/{member_id:str}", summary="Change a member's role", responses=errors(Conflict))
    async def set_role(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        member_id: FromPath[str],
        data: JSONBody[RoleBody],
    ) -> Member:
        return member_view(await team.set_member_role(box.db, principal, member_id, data.role))

    @delete("/members/{member_id:str}", summary="Remove a member", responses=errors(Conflict))
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
        user_id: AuditUser = None,
        event: AuditEvent = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> audit.AuditPage:
        size = page_size(limit, audit.DEFAULT_PAGE)
        return await audit.list_audit(box.db, user_id=user_id, event=event, cursor=cursor, size=size)


@post(
    "/setup-super-admin",
    tags=["auth"],
    status_code=200,
    exception_handlers={Exception: handle_exception_with_status},
    summary="Create the first owner with the one-time setup token, and sign in",
    responses=errors(Forbidden, Conflict, RateLimited),
)
async def setup_super_admin(
    request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[SetupBody]
) -> Response[SignedInAnswer]:
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
