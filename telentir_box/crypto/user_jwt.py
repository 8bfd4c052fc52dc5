"""The RS256 JWTs a user's client signs with one of its servers' private keys
(telentir-wire.md 2.6: session calls, persona previews): verified against that
server's public key, RS256 only, with `exp` and `iat` required and sane."""

from __future__ import annotations

import math
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.errors import AppError

# Clocks of the caller and the box may disagree by this much.
CLOCK_SKEW_SECONDS = 60
# The client signs for 600 s by default; a token meant to live longer than this is
# refused, so a leaked one cannot be replayed for days.
MAX_LIFETIME_SECONDS = 3600


class JwtInvalid(AppError):
    code, status, default_message = "JWT_INVALID", 401, "The JWT is not valid for this server"


class JwtExpired(AppError):
    code, status, default_message = "JWT_EXPIRED", 401, "The JWT has expired: sign a new one"


def verify_user_jwt(token: str, public_key: rsa.RSAPublicKey, *, now: float) -> dict[str, Any]:
    """The claims of `token` when it is an RS256 JWT signed by `public_key`'s private
    key, issued no later than `now` and not expired at `now` (both within the skew)."""
    try:
        # Only RS256 is listed, so "none", HS256 (the public key used as an HMAC secret)
        # and every other algorithm are refused before the signature is looked at.
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise JwtInvalid() from None
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_time(exp) or not _is_time(iat):
        raise JwtInvalid("The JWT must carry numeric `iat` and `exp` claims")
    if iat > now + CLOCK_SKEW_SECONDS or exp <= iat or exp - iat > MAX_LIFETIME_SECONDS:
        raise JwtInvalid(
            f"The JWT's `iat` must not be in the future and it must live at most {MAX_LIFETIME_SECONDS} s"
        )
    if exp <= now - CLOCK_SKEW_SECONDS:
        raise JwtExpired()
    return claims


def _is_time(value: Any) -> bool:
    # Python's JSON parser reads NaN and Infinity, which every comparison would let by.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
