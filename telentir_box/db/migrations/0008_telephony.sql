-- Telephony: the phone numbers users bought through the box, the Twilio addresses they
-- registered, the price quotes already spent, and inbound configurations (what answers
-- a call to a number).

-- agent, human_agents and source are the client's JSON, validated by the box before it
-- is stored. knowledge_base_id has no foreign key: knowledge bases live in their own
-- migration, and the service checks the owner on every write.
CREATE TABLE inbound_configurations (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    description       TEXT,
    knowledge_base_id TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    agent             TEXT NOT NULL,
    human_agents      TEXT NOT NULL DEFAULT '[]',
    source            TEXT NOT NULL,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX inbound_configurations_by_user ON inbound_configurations (user_id, created_at);

-- A number answers for at most one configuration (inbound_configuration_id), and is
-- owned once: the voice webhook finds its number by phone_number.
CREATE TABLE phone_numbers (
    id                       TEXT PRIMARY KEY,
    user_id                  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    description              TEXT,
    phone_number             TEXT NOT NULL UNIQUE,
    provider                 TEXT NOT NULL CHECK (provider IN ('twilio')),
    sid                      TEXT NOT NULL UNIQUE,
    number_type              TEXT NOT NULL CHECK (number_type IN ('local', 'toll_free', 'mobile')),
    iso_country              TEXT NOT NULL,
    capabilities             TEXT NOT NULL DEFAULT '{}',
    price_currency           TEXT NOT NULL,
    price_amount             TEXT NOT NULL,
    address_sid              TEXT,
    inbound_configuration_id TEXT REFERENCES inbound_configurations (id) ON DELETE SET NULL,
    created_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX phone_numbers_by_user ON phone_numbers (user_id, created_at);
CREATE INDEX phone_numbers_by_configuration ON phone_numbers (inbound_configuration_id)
    WHERE inbound_configuration_id IS NOT NULL;

-- Twilio addresses are per account, so the box remembers whose each one is: a user may
-- buy only with an address they registered.
CREATE TABLE phone_number_addresses (
    sid        TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- The jti of every quote that bought a number, kept until the quote expires, so each
-- is good for one purchase. Inserted in the purchase's transaction.
CREATE TABLE phone_number_quotes_used (
    jti        TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX phone_number_quotes_used_by_expiry ON phone_number_quotes_used (expires_at);
