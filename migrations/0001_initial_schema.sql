-- Clients, their calls, revoked tokens and admins.
--
-- Identifiers use the "C" collation so that ordering and equality are byte-wise whatever the
-- database's locale, exactly as in the SQLite adapter. Constraint names are explicit because
-- the adapter maps unique violations to domain errors by name.

CREATE TABLE clients (
    client_id           TEXT COLLATE "C" NOT NULL,
    status              TEXT NOT NULL,
    agent_id            TEXT NOT NULL,
    twilio_phone_number TEXT NOT NULL,
    full_name           TEXT NOT NULL,
    email               TEXT NOT NULL,
    -- Email::normalized(): uniqueness is case-insensitive.
    email_normalized    TEXT NOT NULL,
    phone               TEXT NOT NULL,
    business_name       TEXT,
    city                TEXT,
    job_title           TEXT,
    notes               TEXT,
    -- ClientMeta::search_text(), already lower-cased; rewritten on every write.
    search_text         TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    token_version       BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT clients_pkey PRIMARY KEY (client_id),
    CONSTRAINT clients_email_normalized_key UNIQUE (email_normalized),
    CONSTRAINT clients_status_check CHECK (status IN ('Active', 'Inactive', 'Suspended'))
);

-- Listing: newest first, ties by id; with and without a status filter.
CREATE INDEX clients_created_at_idx ON clients (created_at DESC, client_id DESC);
CREATE INDEX clients_status_idx ON clients (status, created_at DESC, client_id DESC);

CREATE TABLE calls (
    call_id          TEXT COLLATE "C" NOT NULL,
    client_id        TEXT COLLATE "C" NOT NULL,
    call_sid         TEXT COLLATE "C",
    request_id       TEXT,
    phone            TEXT NOT NULL,
    from_number      TEXT,
    agent_id         TEXT,
    start_time       TIMESTAMPTZ NOT NULL,
    end_time         TIMESTAMPTZ,
    duration         INTEGER,
    status           TEXT NOT NULL,
    recording_url    TEXT,
    error_code       TEXT,
    error_message    TEXT,
    conversation_id  TEXT COLLATE "C",
    answered_by      TEXT,
    outcome          TEXT,
    summary          TEXT,
    transcript       TEXT,
    sentiment        TEXT,
    next_action      TEXT,
    next_action_date TIMESTAMPTZ,
    agent_notes      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- Optimistic concurrency: every write is a compare-and-set on it.
    version          BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT calls_pkey PRIMARY KEY (call_id),
    CONSTRAINT calls_client_id_fkey FOREIGN KEY (client_id)
        REFERENCES clients (client_id) ON DELETE CASCADE,
    CONSTRAINT calls_call_sid_key UNIQUE (call_sid),
    CONSTRAINT calls_duration_check CHECK (duration >= 0),
    CONSTRAINT calls_status_check CHECK (status IN (
        'queued', 'initiated', 'ringing', 'in-progress',
        'completed', 'busy', 'failed', 'no-answer', 'canceled')),
    CONSTRAINT calls_outcome_check CHECK (outcome IN (
        'interested', 'not-interested', 'callback', 'unavailable', 'unknown')),
    CONSTRAINT calls_sentiment_check CHECK (sentiment IN (
        'positive', 'neutral', 'negative', 'unknown'))
);

-- A client's history page, newest first, with and without a status filter.
CREATE INDEX calls_client_start_idx ON calls (client_id, start_time DESC, call_id DESC);
CREATE INDEX calls_client_status_start_idx
    ON calls (client_id, status, start_time DESC, call_id DESC);
-- Recent activity across clients (ties by id are an incremental sort of a few rows) and the
-- dashboard's "recent" range count, which stays an index-only scan of a narrow index.
CREATE INDEX calls_start_time_idx ON calls (start_time DESC);
-- Post-call webhooks find their call by conversation.
CREATE INDEX calls_conversation_id_idx ON calls (conversation_id)
    WHERE conversation_id IS NOT NULL;

CREATE TABLE revoked_tokens (
    token_id   TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT revoked_tokens_pkey PRIMARY KEY (token_id),
    CONSTRAINT revoked_tokens_client_id_fkey FOREIGN KEY (client_id)
        REFERENCES clients (client_id) ON DELETE CASCADE
);

-- Deleting a client cascades here; expired entries are purged by expiry.
CREATE INDEX revoked_tokens_client_id_idx ON revoked_tokens (client_id);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE admins (
    username      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT admins_pkey PRIMARY KEY (username)
);
