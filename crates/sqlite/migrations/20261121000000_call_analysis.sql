-- What the post-call analysis added to a call (CallData::end_reason; CallDetails::
-- call_successful, agent_duration_secs, analysis_at), and the index behind
-- CallRepository::calls_awaiting_report. Same names and meaning as PostgreSQL's
-- migrations/0004_call_analysis.sql. Existing rows get NULL, which the CHECK accepts.

-- BoundedText of at most call::limits::END_REASON characters.
ALTER TABLE calls ADD COLUMN end_reason TEXT;
-- BoundedText of at most call::limits::CALL_SUCCESSFUL characters.
ALTER TABLE calls ADD COLUMN call_successful TEXT;
-- Seconds, as `duration`: never negative.
ALTER TABLE calls ADD COLUMN agent_duration_secs INTEGER CHECK (agent_duration_secs >= 0);
-- INTEGER milliseconds since the Unix epoch (UTC); NULL until a post-call report applies.
ALTER TABLE calls ADD COLUMN analysis_at INTEGER;

-- Ended calls bridged to a conversation and still without a report, oldest end first (ties
-- by id). The query repeats this WHERE clause word for word so that SQLite can prove the
-- partial index applies.
CREATE INDEX calls_awaiting_report_idx ON calls (end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;
