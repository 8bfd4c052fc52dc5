"""The plan catalog (from [billing.plans]) and the plan object as the real client
types it, camelCase fields included."""

from __future__ import annotations

from typing import Literal

import msgspec

from telentir_box.config import BillingConfig, PlanConfig
from telentir_box.errors import ValidationFailed

PlanKey = Literal["starter", "pro", "growth", "agency"]
# Stripe subscription states in which the plan's allowances apply.
ENTITLED = frozenset({"active", "trialing"})
# States after which a subscription gives no plan and can be replaced by a new one.
ENDED = frozenset({"canceled", "incomplete_expired"})


class Plan(msgspec.Struct, kw_only=True):
    key: str
    name: str
    monthlyPriceUsd: float
    includedMinutes: int
    overageUsdPerMinute: float
    includedLeads: int
    includedOutboundCalls: int
    includedInboundCalls: int
    outboundFixedUsd: float
    inboundFixedUsd: float
    leadOverageUsdPerLead: float


def plan_view(key: str, plan: PlanConfig) -> Plan:
    return Plan(
        key=key,
        name=plan.name,
        monthlyPriceUsd=plan.monthly_price_usd,
        includedMinutes=plan.included_minutes,
        overageUsdPerMinute=plan.overage_usd_per_minute,
        includedLeads=plan.included_leads,
        includedOutboundCalls=plan.included_outbound_calls,
        includedInboundCalls=plan.included_inbound_calls,
        outboundFixedUsd=plan.outbound_fixed_usd,
        inboundFixedUsd=plan.inbound_fixed_usd,
        leadOverageUsdPerLead=plan.lead_overage_usd_per_lead,
    )


def catalog_plan(billing: BillingConfig, key: str | None) -> PlanConfig | None:
    """The catalog's plan for `key`; None for no plan or a key the catalog lost."""
    return billing.plans.get(key) if key else None


def require_plan(billing: BillingConfig, key: str) -> PlanConfig:
    plan = billing.plans.get(key)
    if plan is None:
        raise ValidationFailed(f"unknown plan {key!r}; the catalog has {', '.join(billing.plans) or 'none'}")
    return plan


def plan_for_price(billing: BillingConfig, price_id: str, lookup_key: str | None) -> str | None:
    """The catalog key sold at a Stripe price: by price id, else by a lookup key such
    as "pro" or "pro_monthly"."""
    for key, plan in billing.plans.items():
        if plan.stripe_price and plan.stripe_price == price_id:
            return key
    if lookup_key:
        stem = lookup_key.removesuffix("_monthly")
        if stem in billing.plans:
            return stem
    return None
