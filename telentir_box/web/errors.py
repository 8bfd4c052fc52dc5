"""One function maps every exception to the {"error", "code", "message"} body, so
unknown routes, bad JSON, validation, domain errors and crashes all look alike."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import Scope

from telentir_box.errors import AppError

log = logging.getLogger("telentir_box.http")

_HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": message, "code": code, "message": message}


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, body, headers = error_answer(exc, request.scope)
    return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)


def handle_exception_with_status(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The sign-in routes' handler: Telentir's login shape adds "status": "error" to the
    error body (the one place it differs; the OpenAPI schema calls it AuthErrorBody)."""
    response = handle_exception(request, exc)
    response.content["status"] = "error"
    return response


def error_answer(exc: Exception, scope: Scope) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The status, body and headers answering `exc`; a crash is logged with the request id."""
    if isinstance(exc, AppError):
        return exc.status, error_body(exc.code, exc.message), exc.headers
    if isinstance(exc, ValidationException):
        return 400, error_body("VALIDATION_ERROR", _validation_message(exc)), None
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        # msgspec's answer to a body like [[[[...]]]] nested past Python's recursion limit.
        return 400, error_body("VALIDATION_ERROR", "Invalid request body: JSON nested too deeply"), None
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        status = exc.status_code
        message = _HTTP_MESSAGES.get(status) or exc.detail
        return status, error_body(_HTTP_CODES.get(status, "HTTP_ERROR"), message), exc.headers
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={
            "request_id": scope.get("state", {}).get("request_id"),
            "method": scope.get("method"),
            "path": scope.get("path"),
        },
    )
    return 500, error_body("INTERNAL_ERROR", "Internal server error"), None


def _validation_message(exc: ValidationException) -> str:
    # Litestar puts one entry per failing field in `extra`; name the field for the client.
    details = exc.extra if isinstance(exc.extra, list) else []
    for item in details:
        if isinstance(item, dict) and item.get("message"):
            key = item.get("key")
            message = str(item["message"])
            if key and f"`{key}`" not in message:
                return f"Invalid {item.get('source') or 'request'} field `{key}`: {message}"
            return f"Invalid request: {message}"
    detail = str(exc.detail or "Invalid request")
    return "Invalid request body: malformed JSON" if "JSON" in detail or "decode" in detail else detail
