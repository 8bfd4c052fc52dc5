-- Scheduled jobs: one row per run, the reports' per-user opt-outs, and the recordings
-- the retention job expires (the calls issue writes them).

-- A run of a job for one period. outcome 'running' while it works; a run that died
-- (its holder process is gone) is taken over by the next one, which carries its
-- checkpoint on, so what was done is not done twice. At most one run of a period is
-- running and at most one is done.
CREATE TABLE job_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job           TEXT NOT NULL,
    period        TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    period_end    TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'http', 'startup')),
    outcome       TEXT NOT NULL DEFAULT 'running'
                  CHECK (outcome IN ('running', 'done', 'failed', 'interrupted')),
    holder        TEXT NOT NULL DEFAULT '',
    resumed_from  INTEGER REFERENCES job_runs (id),
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    counts        TEXT NOT NULL DEFAULT '{}',
    checkpoint    TEXT NOT NULL DEFAULT '{}',
    error         TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX job_runs_by_period ON job_runs (job, period);
CREATE UNIQUE INDEX job_runs_one_running ON job_runs (job, period) WHERE outcome = 'running';
CREATE UNIQUE INDEX job_runs_one_done ON job_runs (job, period) WHERE outcome = 'done';

-- The report emails a user has turned off (no row: every report is sent).
CREATE TABLE job_preferences (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    daily_summary  INTEGER NOT NULL DEFAULT 1 CHECK (daily_summary IN (0, 1)),
    weekly_report  INTEGER NOT NULL DEFAULT 1 CHECK (weekly_report IN (0, 1)),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- A call's recording, an object in its user's store. The retention job deletes the
-- object and stamps expired_at; the row (and the call) stay.
CREATE TABLE call_recordings (
    call_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_id  TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expired_at TEXT,
    PRIMARY KEY (call_id, object_id)
) STRICT;
CREATE INDEX call_recordings_to_expire ON call_recordings (created_at) WHERE expired_at IS NULL;

-- The reports sum the ledger's consumed credits over a time window.
CREATE INDEX credit_ledger_by_kind_time ON credit_ledger (kind, created_at);
