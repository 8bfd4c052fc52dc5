"""Whether an event stream's credential still allows streaming, asked of the database
(never of a cache): a stream is authorised when it opens and rechecked while it stays
open, and when tickets are redeemed."""

from __future__ import annotations

from datetime import datetime

from telentir_box.auth.principal import Principal, principal_of, unexpired
from telentir_box.db import users as users_repo
from telentir_box.db.database import Database


async def stream_principal(db: Database, credential_id: str, now: datetime) -> Principal | None:
    """The caller behind a session (ses_...) or API key (ak_...) id as it is now, or None
    when that credential may no longer stream: session revoked, expired or waiting for
    its 2FA code, key deleted, user gone or phone no longer verified."""
    async with db.reading() as conn:
        if credential_id.startswith("ses_"):
            credential = unexpired(await users_repo.session_credential(conn, credential_id), now)
            kind = {"session_id": credential_id}
        elif credential_id.startswith("ak_"):
            credential = await users_repo.api_key_credential_by_id(conn, credential_id)
            kind = {"api_key_id": credential_id}
        else:
            return None
    if credential is None or credential.pending_2fa or not credential.phone_verified:
        return None
    return principal_of(credential, **kind)


def credential_id(principal: Principal) -> str | None:
    """What a stream opened by `principal` is rechecked by."""
    return principal.session_id or principal.api_key_id
