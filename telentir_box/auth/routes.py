"""HTTP routes of the session API under /api/auth (Telentir's shapes): login,
register, describe, logout, passwords, 2FA and phone verification, and the caller's
own audit trail. Errors here also carry "status": "error", as Telentir's login does."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from telentir_box.auth import audit, credentials, phone, totp
from telentir_box.auth import login as signin
from telentir_box.auth.guards import COOKIE, bearer_token, current_principal, header_token, requires_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.web.errors import handle_exception
from telentir_box.web.paging import Limit, page_size

Email = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
Name = Annotated[str, msgspec.Meta(max_length=100)]
Code = Annotated[str, msgspec.Meta(max_length=32)]
Token = Annotated[str, msgspec.Meta(max_length=200)]
Phone = Annotated[str, msgspec.Meta(max_length=32)]


class _Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class LoginBody(_Body):
    email: Email
    password: Password
    remember: bool = False


class RegisterBody(_Body):
    first_name: Name
    last_name: Name
    email: Email
    phone: Phone
    password: Password
    confirm_password: Password
    remember: bool = False
    invite_token: Token | None = None


class PasswordBody(_Body):
    current_password: Password
    password: Password
    confirm_password: Password


class ForgotBody(_Body):
    email: Email


class ResetBody(_Body):
    token: Token
    password: Password
    confirm_password: Password


class CodeBody(_Body):
    code: Code


class SecondFactorBody(_Body):
    code: Code | None = None
    recovery_code: Code | None = None


class PhoneBody(_Body):
    phone: Phone | None = None


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def signed_in(box: Box, result: signin.SignedIn) -> Response[dict[str, Any]]:
    """The {status, token} answer with the token also set as the session cookie."""
    cookie = Cookie(
        key=COOKIE,
        value=result.token,
        max_age=max(1, int(result.ttl / timedelta(seconds=1))),
        httponly=True,
        samesite="lax",
        secure=box.config.server.public_url.startswith("https://"),
        path="/",
    )
    return Response({"status": result.status, "token": result.token}, cookies=[cookie], status_code=200)


def handle_auth_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    response = handle_exception(request, exc)
    response.content["status"] = "error"
    return response


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    exception_handlers = {Exception: handle_auth_exception}

    @post("/login", status_code=200)
    async def login(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[LoginBody]
    ) -> Response[dict[str, Any]]:
        result = await signin.login(box, data.email, data.password, data.remember, client_ip(request))
        return signed_in(box, result)

    @post("/register", status_code=200)
    async def register(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[RegisterBody]
    ) -> Response[dict[str, Any]]:
        form = signin.Registration(
            data.first_name,
            data.last_name,
            data.email,
            data.phone,
            data.password,
            data.confirm_password,
            data.remember,
            data.invite_token,
        )
        return signed_in(box, await signin.register(box, form, client_ip(request)))

    @get("")
    async def describe(self, request: Request[Any, Any, Any], box: NamedDependency[Box]) -> dict[str, Any]:
        principal = await current_principal(request)
        auth = await signin.describe(box, principal)
        if principal is None or auth is None:
            return {"status": "unauthenticated", "auth": None}
        status = signin.status_of(principal.phone_verified, principal.two_factor_pending)
        # Echoed only to a caller that sent the session token itself: one signed in by
        # the HttpOnly cookie must not get it back where page scripts can read it.
        token = header_token(request.scope) if principal.session_id else None
        return {"status": status, "token": token, "auth": auth}

    @route("/logout", http_method=["GET", "POST"], status_code=200)
    async def logout(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box]
    ) -> Response[dict[str, str]]:
        principal = await current_principal(request)
        if principal is not None and principal.session_id is not None:
            await signin.end_session(box, principal)
        response = Response({"status": "logout"}, status_code=200)
        response.delete_cookie(COOKIE, path="/")
        return response

    @post("/password", guards=[requires_auth], status_code=200)
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordBody],
    ) -> dict[str, str]:
        await credentials.change_password(
            box, principal, data.current_password, data.password, data.confirm_password, client_ip(request)
        )
        return {"status": "ok"}

    @post("/password/forgot", status_code=200)
    async def forgot_password(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[ForgotBody]
    ) -> dict[str, str]:
        await credentials.forgot_password(box, data.email, client_ip(request))
        return {"status": "ok"}

    @post("/password/reset", status_code=200)
    async def reset_password(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[ResetBody]
    ) -> dict[str, str]:
        await credentials.reset_password(
            box, data.token, data.password, data.confirm_password, client_ip(request)
        )
        return {"status": "ok"}

    @post("/2fa/enable", guards=[requires_auth], status_code=200)
    async def enable_2fa(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> dict[str, str]:
        enrolment = await totp.enable(box, principal.user_id)
        return {"url": enrolment.url, "secret": enrolment.secret}

    @post("/2fa/confirm", guards=[requires_auth], status_code=200)
    async def confirm_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> dict[str, Any]:
        codes = await totp.confirm(box, principal.user_id, data.code, client_ip(request))
        return {"status": "ok", "token": bearer_token(request), "recoveryCodes": codes}

    @post("/2fa/authenticate", guards=[requires_auth], opt={"allow_2fa_pending": True}, status_code=200)
    async def authenticate_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[SecondFactorBody],
    ) -> Response[dict[str, Any]]:
        result = await signin.finish_two_factor(
            box, principal, data.code, data.recovery_code, client_ip(request)
        )
        return signed_in(box, result)

    @post(
        "/2fa/recovery-codes",
        guards=[requires_auth],
        status_code=200,
        summary="Replace every 2FA recovery code with a fresh set (needs a current TOTP code)",
    )
    async def regenerate_recovery_codes(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> dict[str, Any]:
        codes = await totp.regenerate_recovery_codes(box, principal.user_id, data.code, client_ip(request))
        return {"status": "ok", "recoveryCodes": codes}

    @post("/2fa/reset", guards=[requires_auth], status_code=200)
    async def reset_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> dict[str, str]:
        await totp.reset(box, principal.user_id, data.code, client_ip(request))
        return {"status": "ok"}

    @post("/phone/send", guards=[requires_auth], status_code=200)
    async def send_phone_code(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[PhoneBody | None] = None,
    ) -> dict[str, str]:
        await phone.send_code(box, principal.user_id, data.phone if data else None)
        return {"status": "sent"}

    @post("/phone/verify", guards=[requires_auth], status_code=200)
    async def verify_phone(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> dict[str, Any]:
        await phone.verify_code(box, principal.user_id, data.code, client_ip(request))
        status = signin.status_of(True, principal.two_factor_pending)
        return {"status": status, "token": bearer_token(request)}

    @get("/audit", guards=[requires_auth], summary="The caller's own auth audit trail, newest first")
    async def own_audit(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        event: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Limit = None,
    ) -> audit.AuditPage:
        size = page_size(limit, audit.DEFAULT_PAGE)
        mine = principal.user_id
        return await audit.list_audit(box.db, user_id=mine, event=event, cursor=cursor, size=size)
