-- Calls: what the box keeps about each call in clear (operational metadata: ids, sids,
-- direction, status, times, durations, outcome), the live details it needs while the
-- call runs (sealed under the master key, NULL once the call is final), the session-call
-- JWTs already spent, and post-call webhooks that arrived before their call was known.

-- Times are ISO UTC text. status is the Call model's (ongoing, completed, missed,
-- voicemail, callback); twilio_status and twilio_sequence fold Twilio's status
-- callbacks (highest SequenceNumber wins). record_object_id is the Call item in the
-- user's calls store; transcription_object_id and audio_object_id its child objects.
CREATE TABLE calls (
    id                      TEXT PRIMARY KEY,
    user_id                 TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    direction               TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    phone_number_id         TEXT,
    server                  TEXT NOT NULL,
    call_sid                TEXT UNIQUE,
    conversation_id         TEXT UNIQUE,
    status                  TEXT NOT NULL DEFAULT 'ongoing',
    twilio_status           TEXT,
    twilio_sequence         INTEGER NOT NULL DEFAULT -1,
    answered_by             TEXT,
    outcome                 TEXT,
    started_at              TEXT NOT NULL,
    answered_at             TEXT,
    ended_at                TEXT,
    duration_seconds        INTEGER,
    record_object_id        TEXT,
    transcription_object_id TEXT,
    audio_object_id         TEXT,
    audio_source            TEXT,
    recording_sid           TEXT,
    final                   INTEGER NOT NULL DEFAULT 0,
    live                    BLOB,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
) STRICT;
CREATE INDEX calls_by_user ON calls (user_id, started_at);
CREATE INDEX calls_open ON calls (final, started_at) WHERE final = 0;

-- A digest of each session-call JWT that placed a call, until it expires: each JWT
-- places one call.
CREATE TABLE session_call_tokens (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX session_call_tokens_by_expiry ON session_call_tokens (expires_at);

-- A post-call webhook (its verified raw body, sealed) for a conversation no call names
-- yet: replayed when the call appears, dropped after [calls] unmatched_webhook_seconds.
CREATE TABLE call_webhooks_waiting (
    id              INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    call_sid        TEXT,
    body            BLOB NOT NULL,
    received_at     TEXT NOT NULL
) STRICT;
CREATE INDEX call_webhooks_waiting_by_conversation ON call_webhooks_waiting (conversation_id);
CREATE INDEX call_webhooks_waiting_by_sid ON call_webhooks_waiting (call_sid);
CREATE INDEX call_webhooks_waiting_by_age ON call_webhooks_waiting (received_at);
