"""HTTP routes for connector ingestion (POST /api/connect) and lead credits
(GET /api/credits, GET /api/credits/ledger, POST /api/credits/grants)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from telentir_box.auth.guards import requires_auth, requires_object_auth, requires_role
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.connect.credits import MAX_GRANT, Summary
from telentir_box.connect.ingest import ConnectOutcome, Ingestion, run_connect
from telentir_box.errors import ServiceUnavailable, UpstreamFailed
from telentir_box.store.models import STORES
from telentir_box.web.openapi import documented, errors


class ConnectBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    repository: Annotated[str, documented(enum=list(STORES))]
    path: Annotated[str, documented(pattern=r"^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$", examples=["/get-leads"])]
    params: dict[str, Any] = {}


class GrantBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    credits: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT)]
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Balance(msgspec.Struct):
    amount: float
    currency: str


class LedgerView(msgspec.Struct):
    period: str
    allowance: int
    used: int
    remaining: int
    balance: int
    currency: str
    entries: list[dict[str, Any]]


def ledger_view(summary: Summary) -> LedgerView:
    return LedgerView(
        period=summary.period,
        allowance=summary.allowance,
        used=summary.used,
        remaining=max(0, summary.allowance - summary.used),
        balance=summary.balance,
        currency=summary.currency,
        entries=[dataclasses.asdict(entry) for entry in summary.entries],
    )


def sees_all_entries(principal: Principal) -> bool:
    return principal.super_admin or principal.role in ("admin", "owner")


OUTCOME_HEADERS = {
    "x-telentir-records-stored": "Records stored",
    "x-telentir-frames-skipped": "Frames that were not records",
    "x-telentir-credits-granted": "The credits granted, clamped (/get-leads only)",
    "x-telentir-connector": '"skipped: no credits available" or "interrupted" (what was stored stays)',
}


def outcome_headers(outcome: ConnectOutcome) -> dict[str, str]:
    headers = {
        "x-telentir-records-stored": str(outcome.stored),
        "x-telentir-frames-skipped": str(outcome.skipped),
    }
    if outcome.granted is not None:
        headers["x-telentir-credits-granted"] = str(outcome.granted)
    if not outcome.connector_called:
        headers["x-telentir-connector"] = "skipped: no credits available"
    elif outcome.interrupted:
        headers["x-telentir-connector"] = "interrupted"
    return headers


@post(
    "/connect",
    guards=[requires_object_auth],
    status_code=HTTP_204_NO_CONTENT,
    summary="Stream a connector's records into a store",
    tags=["connect"],
    responses=errors(UpstreamFailed, ServiceUnavailable),
    description="204 once the connector's stream ends; headers say what happened: "
    + "; ".join(f"`{name}`: {meaning}" for name, meaning in OUTCOME_HEADERS.items()),
)
async def connect(
    data: JSONBody[ConnectBody], box: NamedDependency[Box], principal: NamedDependency[Principal]
) -> Response[None]:
    """Stream the connector's records into a store; 204 once the stream ends. Headers say
    what happened: x-telentir-credits-granted (the clamped credits, on a metered path
    such as /get-leads only),
    x-telentir-records-stored, x-telentir-frames-skipped, and x-telentir-connector
    ("skipped: ..." when no credits were available and the connector was not called,
    "interrupted" when the stream broke after records were stored: those stay, the
    rest is refunded). A connector that cannot be reached, answers non-2xx or breaks
    before the first record gives 502 UPSTREAM_ERROR with everything refunded. A `path`
    not among `[connect] paths` (default: /get-leads) is 400 VALIDATION_ERROR, and the
    connector is not called."""
    parts = Ingestion(box.db, box.keyring, box.http, box.credits, box.config.connect)
    outcome = await run_connect(parts, principal.user_id, data.repository, data.path, data.params)
    return Response(None, status_code=HTTP_204_NO_CONTENT, headers=outcome_headers(outcome))


class CreditsController(Controller):
    path = "/credits"
    tags = ["connect"]

    @get("/", guards=[requires_auth], summary="The team's prepaid balance", responses=errors(UpstreamFailed))
    async def get_balance(self, box: NamedDependency[Box]) -> Balance:
        cents = await box.credits.prepaid_cents()
        return Balance(cents / 100, box.config.billing.currency)

    @get("/ledger", guards=[requires_auth], summary="This period's lead-credit allowance, use and entries")
    async def get_ledger(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> LedgerView:
        # Members see their own entries; the totals belong to the whole team.
        user_id = None if sees_all_entries(principal) else principal.user_id
        return ledger_view(await box.credits.summary(user_id))

    @post(
        "/grants",
        guards=[requires_role("admin")],
        status_code=201,
        summary="Grant prepaid lead credits",
        responses=errors(UpstreamFailed),
    )
    async def grant_credits(
        self, data: JSONBody[GrantBody], box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> LedgerView:
        await box.credits.grant(principal.user_id, data.credits, data.note)
        return ledger_view(await box.credits.summary(None))


connect_routes = [connect, CreditsController]
