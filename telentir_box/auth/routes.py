"""HTTP routes of the session API under /api/auth (Telentir's shapes): login,
register, describe, logout, passwords, 2FA and phone verification, and the caller's
own audit trail. Errors here also carry "status": "error", as Telentir's login does."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from telentir_box.auth import audit, credentials, phone, totp
from telentir_box.auth import login as signin
from telentir_box.auth.guards import COOKIE, bearer_token, current_principal, header_token, requires_auth
from telentir_box.auth.passwords import MAX_LENGTH, MIN_LENGTH
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.errors import Conflict, Forbidden, RateLimited, Unauthorized, UpstreamFailed
from telentir_box.web.errors import handle_exception_with_status
from telentir_box.web.openapi import documented, errors, optional_auth
from telentir_box.web.paging import Cursor, Limit, page_size

# The request fields' rules as the services check them, for the schema: an email
# address, an E.164 phone number (both checked after trimming spaces), a password of
# MIN_LENGTH to MAX_LENGTH characters (checked here as well).
Email = Annotated[
    str,
    msgspec.Meta(max_length=320, examples=["ada@example.com"]),
    documented(pattern=r"^[!-?A-~]{1,64}@[!-?A-~]{1,255}\.[!-?A-~]{1,63}$"),
]
LoginEmail = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=MAX_LENGTH)]
NewPassword = Annotated[
    str,
    msgspec.Meta(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"{MIN_LENGTH} to {MAX_LENGTH} characters",
    ),
]
Name = Annotated[str, msgspec.Meta(max_length=100)]
Code = Annotated[str, msgspec.Meta(max_length=32)]
Token = Annotated[str, msgspec.Meta(max_length=200)]
Phone = Annotated[
    str,
    msgspec.Meta(max_length=32, description="E.164, e.g. +14155550100", examples=["+14155550100"]),
    documented(pattern=r"^\+[1-9][0-9]{6,14}$"),
]


AuditEvent = Annotated[
    str | None, QueryParameter(required=False, pattern=r"^[a-z0-9_]{1,64}$", description="e.g. login_failed")
]
AuditUser = Annotated[str | None, QueryParameter(required=False, pattern=r"^usr_[A-Za-z0-9_-]{16,64}$")]


class _Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class LoginBody(_Body):
    email: LoginEmail
    password: Password
    remember: bool = False


class RegisterBody(_Body):
    first_name: Name
    last_name: Name
    email: Email
    phone: Phone
    password: NewPassword
    confirm_password: NewPassword
    remember: bool = False
    invite_token: Token | None = None


class PasswordBody(_Body):
    current_password: Password
    password: NewPassword
    confirm_password: NewPassword


class ForgotBody(_Body):
    email: LoginEmail  # any text: the answer is the same whether it names an account or not


class ResetBody(_Body):
    token: Token
    password: NewPassword
    confirm_password: NewPassword


class CodeBody(_Body):
    code: Code


class SecondFactorBody(_Body):
    code: Code | None = None
    recovery_code: Code | None = None


class PhoneBody(_Body):
    phone: Phone | None = None


SignInStatus = Literal["ok", "phone_not_verified", "2fa_required"]


class SignedInAnswer(msgspec.Struct):
    """A session token (also set as the HttpOnly `token` cookie). `phone_not_verified`:
    verify a phone before using the object store; `2fa_required`: the token only
    finishes sign-in with POST /api/auth/2fa/authenticate."""

    status: SignInStatus
    token: str


class AuthUser(msgspec.Struct, rename="camel"):
    id: str
    email: str
    first_name: str
    last_name: str
    phone_verified: bool
    two_factor_passed: bool
    two_factor_configured: bool
    role: Literal["owner", "admin", "member"]
    super_admin: bool


class AuthDescription(msgspec.Struct):
    """`token` is echoed only to a caller that sent its session token in the
    Authorization header; `auth` is null when the caller is not signed in."""

    status: Literal["ok", "phone_not_verified", "2fa_required", "unauthenticated"]
    auth: AuthUser | None
    token: str | None = None


class StatusAnswer(msgspec.Struct):
    status: Literal["ok"]


class LogoutAnswer(msgspec.Struct):
    status: Literal["logout"]


class PhoneSent(msgspec.Struct):
    status: Literal["sent"]


class PhoneVerified(msgspec.Struct):
    status: SignInStatus
    token: str | None


class TwoFactorEnrolment(msgspec.Struct):
    """The otpauth:// URL (for a QR code) and its secret; confirm with a code."""

    url: str
    secret: str


class RecoveryCodes(msgspec.Struct, rename={"recovery_codes": "recoveryCodes"}):
    """Ten one-time recovery codes, shown once."""

    status: Literal["ok"]
    recovery_codes: list[str]


class TwoFactorConfirmed(RecoveryCodes):
    token: str | None


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def signed_in(box: Box, result: signin.SignedIn) -> Response[SignedInAnswer]:
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
    answer = SignedInAnswer(status=result.status, token=result.token)
    return Response(answer, cookies=[cookie], status_code=200)


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    exception_handlers = {Exception: handle_exception_with_status}

    @post(
        "/login",
        status_code=200,
        summary="Sign in with email and password",
        responses=errors(Unauthorized, RateLimited),
    )
    async def login(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[LoginBody]
    ) -> Response[SignedInAnswer]:
        result = await signin.login(box, data.email, data.password, data.remember, client_ip(request))
        return signed_in(box, result)

    @post(
        "/register",
        status_code=200,
        summary="Create an account (open registration or with an invite) and sign in",
        responses=errors(Forbidden, Conflict, RateLimited),
    )
    async def register(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[RegisterBody]
    ) -> Response[SignedInAnswer]:
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

    @get("", summary="Who is signed in, and what sign-in still needs", security=optional_auth())
    async def describe(self, request: Request[Any, Any, Any], box: NamedDependency[Box]) -> AuthDescription:
        principal = await current_principal(request)
        auth = await signin.describe(box, principal)
        if principal is None or auth is None:
            return AuthDescription(status="unauthenticated", auth=None)
        status = signin.status_of(principal.phone_verified, principal.two_factor_pending)
        # Echoed only to a caller that sent the session token itself: one signed in by
        # the HttpOnly cookie must not get it back where page scripts can read it.
        token = header_token(request.scope) if principal.session_id else None
        return AuthDescription(status=status, token=token, auth=msgspec.convert(auth, AuthUser))  # type: ignore[arg-type]

    @route(
        "/logout",
        http_method=["GET", "POST"],
        status_code=200,
        summary="End the session and clear the cookie",
        security=optional_auth(),
    )
    async def logout(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box]
    ) -> Response[LogoutAnswer]:
        principal = await current_principal(request)
        if principal is not None and principal.session_id is not None:
            await signin.end_session(box, principal)
        response = Response(LogoutAnswer(status="logout"), status_code=200)
        response.delete_cookie(COOKIE, path="/")
        return response

    @post(
        "/password",
        guards=[requires_auth],
        status_code=200,
        summary="Change the password; signs out the other sessions",
        responses=errors(RateLimited),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordBody],
    ) -> StatusAnswer:
        await credentials.change_password(
            box, principal, data.current_password, data.password, data.confirm_password, client_ip(request)
        )
        return StatusAnswer(status="ok")

    @post(
        "/password/forgot",
        status_code=200,
        summary="Email a single-use password reset link (the same answer for unknown emails)",
        responses=errors(RateLimited),
    )
    async def forgot_password(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[ForgotBody]
    ) -> StatusAnswer:
        await credentials.forgot_password(box, data.email, client_ip(request))
        return StatusAnswer(status="ok")

    @post(
        "/password/reset",
        status_code=200,
        summary="Set a new password with a reset link's token; revokes every session and API key",
        responses=errors(RateLimited),
    )
    async def reset_password(
        self, request: Request[Any, Any, Any], box: NamedDependency[Box], data: JSONBody[ResetBody]
    ) -> StatusAnswer:
        await credentials.reset_password(
            box, data.token, data.password, data.confirm_password, client_ip(request)
        )
        return StatusAnswer(status="ok")

    @post(
        "/2fa/enable",
        guards=[requires_auth],
        status_code=200,
        summary="Start turning on TOTP two-factor authentication",
        responses=errors(Conflict),
    )
    async def enable_2fa(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> TwoFactorEnrolment:
        enrolment = await totp.enable(box, principal.user_id)
        return TwoFactorEnrolment(url=enrolment.url, secret=enrolment.secret)

    @post(
        "/2fa/confirm",
        guards=[requires_auth],
        status_code=200,
        summary="Confirm two-factor authentication with a TOTP code; returns the recovery codes",
        responses=errors(Conflict, RateLimited),
    )
    async def confirm_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> TwoFactorConfirmed:
        codes = await totp.confirm(box, principal.user_id, data.code, client_ip(request))
        return TwoFactorConfirmed(status="ok", recovery_codes=codes, token=bearer_token(request))

    @post(
        "/2fa/authenticate",
        guards=[requires_auth],
        opt={"allow_2fa_pending": True},
        status_code=200,
        summary="Finish signing in with a TOTP or recovery code",
        responses=errors(RateLimited),
    )
    async def authenticate_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[SecondFactorBody],
    ) -> Response[SignedInAnswer]:
        result = await signin.finish_two_factor(
            box, principal, data.code, data.recovery_code, client_ip(request)
        )
        return signed_in(box, result)

    @post(
        "/2fa/recovery-codes",
        guards=[requires_auth],
        status_code=200,
        summary="Replace every 2FA recovery code with a fresh set (needs a current TOTP code)",
        responses=errors(Conflict, RateLimited),
    )
    async def regenerate_recovery_codes(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> RecoveryCodes:
        codes = await totp.regenerate_recovery_codes(box, principal.user_id, data.code, client_ip(request))
        return RecoveryCodes(status="ok", recovery_codes=codes)

    @post(
        "/2fa/reset",
        guards=[requires_auth],
        status_code=200,
        summary="Turn two-factor authentication off with a current TOTP code",
        responses=errors(Conflict, RateLimited),
    )
    async def reset_2fa(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> StatusAnswer:
        await totp.reset(box, principal.user_id, data.code, client_ip(request))
        return StatusAnswer(status="ok")

    @post(
        "/phone/send",
        guards=[requires_auth],
        status_code=200,
        summary="Text a phone verification code (without Twilio: written to the server log)",
        responses=errors(RateLimited, UpstreamFailed),
    )
    async def send_phone_code(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[PhoneBody | None] = None,
    ) -> PhoneSent:
        await phone.send_code(box, principal.user_id, data.phone if data else None)
        return PhoneSent(status="sent")

    @post(
        "/phone/verify",
        guards=[requires_auth],
        status_code=200,
        summary="Check the phone verification code",
        responses=errors(RateLimited),
    )
    async def verify_phone(
        self,
        request: Request[Any, Any, Any],
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[CodeBody],
    ) -> PhoneVerified:
        await phone.verify_code(box, principal.user_id, data.code, client_ip(request))
        status = signin.status_of(True, principal.two_factor_pending)
        return PhoneVerified(status=status, token=bearer_token(request))  # type: ignore[arg-type]

    @get("/audit", guards=[requires_auth], summary="The caller's own auth audit trail, newest first")
    async def own_audit(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        event: AuditEvent = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> audit.AuditPage:
        size = page_size(limit, audit.DEFAULT_PAGE)
        mine = principal.user_id
        return await audit.list_audit(box.db, user_id=mine, event=event, cursor=cursor, size=size)
