-- Integrations: a user's OAuth connections to Google Calendar, HubSpot, Salesforce and
-- Microsoft Teams, the one-time states of flows in progress, and the outbox of the
-- deliveries each connection makes after a call.

-- One connection per user and provider. `tokens` is the provider's token answer, sealed
-- under the master key with the row id bound; `account` (JSON) names the connected
-- account and holds no secret. status 'broken': the provider refused the refresh token
-- (invalid_grant); the user must connect again.
CREATE TABLE integrations (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('connected', 'broken')),
    account      TEXT NOT NULL DEFAULT '{}',
    scopes       TEXT NOT NULL DEFAULT '',
    tokens       BLOB NOT NULL,
    expires_at   TEXT,
    last_error   TEXT NOT NULL DEFAULT '',
    connected_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (user_id, provider)
) STRICT;

-- A connect flow in progress. Only a hash of the state is kept (it travels in URLs);
-- the PKCE verifier is sealed. A state is deleted when it is used.
CREATE TABLE integration_states (
    state_hash   BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    verifier     BLOB NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;
CREATE INDEX integration_states_by_expiry ON integration_states (expires_at);

-- The outbox: one row per delivery, written in the transaction of the change that
-- caused it. The payload is sealed (the delivery id bound) and set to NULL once
-- delivered. A sender claims a due row by setting lease_until; a row whose lease ran
-- out (the sender stopped mid-way) is due again. idempotency_key goes to the provider
-- where it has one, so a resend after a crash does not double the delivery.
CREATE TABLE integration_deliveries (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    payload         BLOB,
    idempotency_key TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT NOT NULL DEFAULT '',
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((status = 'delivered') = (payload IS NULL))
) STRICT;
CREATE INDEX integration_deliveries_due ON integration_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX integration_deliveries_by_user ON integration_deliveries (user_id, provider, id);
