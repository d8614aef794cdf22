-- outcall's schema for SQLite. Column names match the PostgreSQL schema; timestamps are
-- INTEGER milliseconds since the Unix epoch (UTC) so that ordering and comparison are exact.
-- STRICT tables reject values of the wrong type instead of silently converting them.

CREATE TABLE clients (
    client_id           TEXT    NOT NULL PRIMARY KEY,
    status              TEXT    NOT NULL CHECK (status IN ('Active', 'Inactive', 'Suspended')),
    agent_id            TEXT    NOT NULL,
    twilio_phone_number TEXT    NOT NULL,
    full_name           TEXT    NOT NULL,
    email               TEXT    NOT NULL,
    -- Email::normalized(): uniqueness ignores case.
    email_normalized    TEXT    NOT NULL UNIQUE,
    phone               TEXT    NOT NULL,
    business_name       TEXT,
    city                TEXT,
    job_title           TEXT,
    notes               TEXT,
    -- ClientMeta::search_text(), recomputed on every write; matched with instr().
    search_text         TEXT    NOT NULL,
    secret_hash         TEXT    NOT NULL,
    token_version       INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX clients_created_idx ON clients (created_at DESC, client_id DESC);
CREATE INDEX clients_status_idx ON clients (status, created_at DESC, client_id DESC);

CREATE TABLE calls (
    call_id          TEXT    NOT NULL PRIMARY KEY,
    client_id        TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    call_sid         TEXT    UNIQUE,
    request_id       TEXT,
    phone            TEXT    NOT NULL,
    from_number      TEXT,
    agent_id         TEXT,
    start_time       INTEGER NOT NULL,
    end_time         INTEGER,
    duration         INTEGER CHECK (duration >= 0),
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'initiated', 'ringing',
                         'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled')),
    recording_url    TEXT,
    error_code       TEXT,
    error_message    TEXT,
    conversation_id  TEXT,
    answered_by      TEXT,
    outcome          TEXT    CHECK (outcome IN ('interested', 'not-interested', 'callback',
                         'unavailable', 'unknown')),
    summary          TEXT,
    transcript       TEXT,
    sentiment        TEXT    CHECK (sentiment IN ('positive', 'neutral', 'negative', 'unknown')),
    next_action      TEXT,
    next_action_date INTEGER,
    agent_notes      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL DEFAULT 0
) STRICT;

-- A client's history page (and the ON DELETE CASCADE lookup by client_id).
CREATE INDEX calls_client_start_idx ON calls (client_id, start_time DESC, call_id DESC);
-- A client's history filtered by status, and per-client statistics.
CREATE INDEX calls_client_status_start_idx ON calls (client_id, status, start_time DESC, call_id DESC);
-- Recent activity and the dashboard's "recent" count across clients.
CREATE INDEX calls_start_idx ON calls (start_time DESC, call_id DESC);
-- Dashboard counts by status across clients.
CREATE INDEX calls_status_idx ON calls (status);
-- Post-call webhooks find the call by its ElevenLabs conversation.
CREATE INDEX calls_conversation_idx ON calls (conversation_id) WHERE conversation_id IS NOT NULL;

CREATE TABLE revoked_tokens (
    token_id   TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    expires_at INTEGER,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_client_idx ON revoked_tokens (client_id);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE admins (
    username      TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
