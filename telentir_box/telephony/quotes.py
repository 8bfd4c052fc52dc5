"""Phone-number price quotes: the `price.jwt` of a search result, an RS256 JWT the box
signs with its current platform key (so it verifies against the JWK of GET /api/server),
bound to the user, the number and its price, valid for [twilio] quote_ttl_seconds.
Single use is kept by the purchase, which records the jti."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.crypto.keyring import Keyring
from telentir_box.errors import AppError, NotFound
from telentir_box.ids import new_id
from telentir_box.telephony.twilio_client import NumberType

ISSUER = "telentir-box"
AUDIENCE = "telentir-box/phone-number-quote"


class QuoteInvalid(AppError):
    code, status, default_message = "QUOTE_INVALID", 400, "The price quote is not valid"


class QuoteExpired(AppError):
    code, status, default_message = "QUOTE_EXPIRED", 400, "The price quote has expired: search again"


class QuoteUsed(AppError):
    code, status, default_message = "QUOTE_USED", 409, "The price quote has already bought a number"


class QuotedNumber(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a quote promises: this number, of this type and country, at this price."""

    provider: Annotated[str, msgspec.Meta(pattern="^twilio$")]
    phone_number: Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{4,15}$")]
    name: Annotated[str, msgspec.Meta(max_length=200)]
    number_type: NumberType
    iso_country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{3}$")]
    amount: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,9}(\.[0-9]{1,6})?$")]


class Quote(msgspec.Struct, frozen=True):
    jti: str
    user_id: str
    expires_at: int
    number: QuotedNumber


class QuoteSigner:
    def __init__(self, keyring: Keyring, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._keyring = keyring
        self._ttl = ttl_seconds
        self._clock = clock

    def sign(self, user_id: str, number: QuotedNumber) -> str:
        now = int(self._clock())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "jti": new_id("quo"),
            "iat": now,
            "exp": now + self._ttl,
            "number": msgspec.to_builtins(number),
        }
        key = self._keyring.current
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.name.lower()})

    def verify(self, token: str, user_id: str) -> Quote:
        """The quote `token` carries, when the box signed it for `user_id` and it has
        not expired. Whether it was used already is the purchase's to check."""
        key = self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise QuoteExpired() from None
        except jwt.PyJWTError:
            raise QuoteInvalid() from None
        try:
            quote = msgspec.convert(
                {k: claims.get(k) for k in ("jti", "sub", "exp", "number")},
                _Claims,
            )
        except msgspec.ValidationError:
            raise QuoteInvalid() from None
        if quote.sub != user_id:
            # Another user's quote is, for this caller, a quote that does not exist.
            raise NotFound("Quote not found")
        return Quote(jti=quote.jti, user_id=quote.sub, expires_at=quote.exp, number=quote.number)

    def _signing_key(self, token: str) -> rsa.RSAPublicKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise QuoteInvalid() from None
        kid = header.get("kid")
        for name, platform in self._keyring.platform_keys.items():
            if isinstance(kid, str) and name.lower() == kid:
                return platform.public
        raise QuoteInvalid()


class _Claims(msgspec.Struct, frozen=True):
    jti: Annotated[str, msgspec.Meta(max_length=100)]
    sub: str
    exp: int
    number: QuotedNumber
