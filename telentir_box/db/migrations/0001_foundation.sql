-- Foundation: the box's own secrets, its platform keypairs and the durable event log.

-- Secrets the box keeps (session-signing secret, setup token), sealed under the master key.
CREATE TABLE box_secrets (
    name       TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- The box's own RSA-OAEP server keypairs; private keys sealed under the master key.
CREATE TABLE platform_keys (
    name           TEXT PRIMARY KEY,
    public_spki    BLOB NOT NULL,
    sealed_private BLOB NOT NULL,
    is_current     INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE UNIQUE INDEX platform_keys_one_current ON platform_keys (is_current) WHERE is_current = 1;

-- AUTOINCREMENT: ids are never reused, even after pruning, because they are resume points.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX events_by_user ON events (user_id, id);
