-- Billing: the team's plan and Stripe subscription, the Stripe events applied, credit
-- top-ups granted, call usage per period and the charge of every finished call.

-- The single team's account (one row). version is the `created` time of the newest
-- Stripe event applied to the subscription, so an older snapshot arriving late is
-- ignored; period_key names the current billing period (allowances count within it).
CREATE TABLE billing_account (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    plan_key               TEXT,
    status                 TEXT NOT NULL DEFAULT 'none',
    stripe_customer_id     TEXT NOT NULL DEFAULT '',
    stripe_subscription_id TEXT NOT NULL DEFAULT '',
    version                INTEGER NOT NULL DEFAULT 0,
    period_key             TEXT NOT NULL DEFAULT '',
    period_start           INTEGER NOT NULL DEFAULT 0,
    has_card               INTEGER NOT NULL DEFAULT 0 CHECK (has_card IN (0, 1)),
    updated_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
INSERT INTO billing_account (id) VALUES (1);

-- Every Stripe event applied, recorded in the transaction of its effect: a replay or
-- a retry finds its id here and changes nothing.
CREATE TABLE stripe_events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- A paid top-up Checkout session, granted once whichever event reports it.
CREATE TABLE credit_topups (
    session_id   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    credits      INTEGER NOT NULL CHECK (credits >= 0),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- Seconds and calls per user, billing period and direction: what BillingState.usage
-- reports and what the included minutes and calls are counted against.
CREATE TABLE call_usage (
    user_id   TEXT NOT NULL,
    period    TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    seconds   INTEGER NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    calls     INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    PRIMARY KEY (user_id, period, direction)
) STRICT;
CREATE INDEX call_usage_by_period ON call_usage (period);

-- What a finished call cost beyond the plan, one row per call: the charge happens once.
-- credits_uncovered is what the balance could not pay; stripe_state tracks the debit
-- of the Stripe-held balance ('none' when the ledger alone holds it).
CREATE TABLE call_charges (
    call_id           TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    period            TEXT NOT NULL,
    direction         TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    seconds           INTEGER NOT NULL CHECK (seconds >= 0),
    overage_seconds   INTEGER NOT NULL CHECK (overage_seconds >= 0),
    cost_cents        INTEGER NOT NULL CHECK (cost_cents >= 0),
    credits_charged   INTEGER NOT NULL CHECK (credits_charged >= 0),
    credits_uncovered INTEGER NOT NULL CHECK (credits_uncovered >= 0),
    stripe_state      TEXT NOT NULL DEFAULT 'none' CHECK (stripe_state IN ('none', 'pending', 'debited')),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX call_charges_pending ON call_charges (created_at) WHERE stripe_state = 'pending';
