-- The encrypted object store: user servers, wrapped keys, encrypted objects, the
-- per-user store index and publications. The box holds ciphertext and wrapped keys only.

-- A user's RSA servers. public_key is kept as the text the owner registered (clients
-- match it byte for byte); a generated private key is sealed under the master key.
CREATE TABLE user_servers (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    sealed_private BLOB,
    deprecated     INTEGER NOT NULL DEFAULT 0 CHECK (deprecated IN (0, 1)),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, name)
) STRICT;

-- AES-256 keys, RSA-OAEP-wrapped for `server` (a user server or a platform key name).
CREATE TABLE keys (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server     TEXT NOT NULL,
    key        BLOB NOT NULL,
    iv         BLOB NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}',
    deprecated INTEGER NOT NULL DEFAULT 0 CHECK (deprecated IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX keys_by_user ON keys (user_id, seq);

-- seq orders objects by creation (children lists, cursors). key_id has no foreign key:
-- deleting a key leaves its objects. Parents are removed with their descendants by code,
-- so that every removed object gets its event.
CREATE TABLE objects (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id            TEXT NOT NULL,
    related_object_id TEXT,
    content           BLOB NOT NULL,
    auth_tag          BLOB NOT NULL,
    metadata          TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX objects_by_user ON objects (user_id, seq);
CREATE INDEX objects_by_parent ON objects (related_object_id, seq);
CREATE INDEX objects_by_key ON objects (key_id, seq);

-- One row per provisioned user: the unique row that makes provisioning happen once.
CREATE TABLE store_roots (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE stores (
    user_id        TEXT NOT NULL REFERENCES store_roots (user_id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    default_key_id TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
) STRICT;

-- The server-readable copy (object_id) published for an item (related_id) under a type.
CREATE TABLE publications (
    seq        INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    related_id TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, type, related_id)
) STRICT;
CREATE INDEX publications_by_type ON publications (user_id, type, seq);
CREATE INDEX publications_by_object ON publications (object_id);
CREATE INDEX publications_by_related ON publications (related_id);
