"""The one error type the domain raises. The web layer turns it into
{"error", "code", "message"}; nothing below HTTP knows about responses."""

from __future__ import annotations


class AppError(Exception):
    """An outcome the client must see: a stable code, an HTTP status and a public message."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(AppError):
    code, status, default_message = "VALIDATION_ERROR", 400, "Invalid request"


class Unauthorized(AppError):
    code, status, default_message = "UNAUTHORIZED", 401, "Authentication required"


class TwoFactorRequired(AppError):
    code, status, default_message = "TWO_FACTOR_REQUIRED", 401, "Two-factor authentication required"


class InsufficientCredits(AppError):
    code, status, default_message = "INSUFFICIENT_CREDITS", 402, "Not enough credits"


class Forbidden(AppError):
    code, status, default_message = "FORBIDDEN", 403, "Forbidden"


class CrossSiteRefused(AppError):
    code, status, default_message = "CSRF_REJECTED", 403, "Cross-site request refused"


class SetupComplete(AppError):
    code, status, default_message = (
        "SETUP_COMPLETE",
        403,
        "The super admin has already been set up; the setup token no longer exists",
    )


class PhoneVerificationRequired(AppError):
    code, status, default_message = (
        "PHONE_VERIFICATION_REQUIRED",
        403,
        "Phone number verification required",
    )


class NotFound(AppError):
    code, status, default_message = "NOT_FOUND", 404, "Not found"


class MethodNotAllowed(AppError):
    code, status, default_message = "METHOD_NOT_ALLOWED", 405, "Method not allowed"


class Conflict(AppError):
    code, status, default_message = "CONFLICT", 409, "Conflict"


class PayloadTooLarge(AppError):
    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "Request body too large"


class HeadersTooLarge(AppError):
    """Answered by the connection protocol itself, before any route is chosen."""

    code, status, default_message = "REQUEST_HEADER_FIELDS_TOO_LARGE", 431, "Request header too large"


class UnsupportedMediaType(AppError):
    code, status, default_message = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"


class RateLimited(AppError):
    code, status, default_message = "RATE_LIMITED", 429, "Too many requests"


class ServiceUnavailable(AppError):
    code, status, default_message = "SERVICE_UNAVAILABLE", 503, "Service unavailable"


class PublicUrlNotConfigured(ServiceUnavailable):
    code, default_message = (
        "PUBLIC_URL_NOT_CONFIGURED",
        "Set [server] public_url: Twilio and ElevenLabs call the box's webhooks there",
    )


class UpstreamFailed(AppError):
    code, status, default_message = "UPSTREAM_ERROR", 502, "An upstream service failed"
