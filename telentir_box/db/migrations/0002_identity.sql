-- Identity: users, server-side sessions and API keys.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name         TEXT NOT NULL DEFAULT '',
    last_name          TEXT NOT NULL DEFAULT '',
    phone              TEXT NOT NULL DEFAULT '',
    password_hash      TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    super_admin        INTEGER NOT NULL DEFAULT 0 CHECK (super_admin IN (0, 1)),
    phone_verified_at  TEXT,
    totp_secret_sealed BLOB,
    totp_enabled       INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step     INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- One row per issued session token (its jti); logout and password change revoke rows.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pending_2fa INTEGER NOT NULL DEFAULT 0 CHECK (pending_2fa IN (0, 1)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id);

-- API keys are stored only as a keyed hash of the secret.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at TEXT
) STRICT;
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

-- Ten one-time 2FA recovery codes per user, stored as keyed hashes.
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- The phone code in flight for a user (at most one), hashed, with expiry and attempts.
CREATE TABLE phone_codes (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phone      TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    sent_at    TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;

-- Single-use tokens (password reset links, team invites), stored as keyed hashes.
CREATE TABLE auth_tokens (
    token_hash BLOB PRIMARY KEY,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset', 'invite')),
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    created_by TEXT,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

-- Every authentication event: login ok/failed, lockouts, 2FA on/off, keys, roles.
CREATE TABLE auth_audit (
    id         INTEGER PRIMARY KEY,
    event      TEXT NOT NULL,
    user_id    TEXT,
    actor_id   TEXT,
    ip         TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX auth_audit_by_user ON auth_audit (user_id, id);
