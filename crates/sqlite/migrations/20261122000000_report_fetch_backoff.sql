-- The missed-report fetch's bookkeeping per call (CallRepository::record_report_fetch), and
-- the index behind CallRepository::calls_awaiting_report. Same names and meaning as
-- PostgreSQL's migrations/0005_report_fetch_backoff.sql. Neither column is part of the Call
-- aggregate: `update` leaves them alone, and recording a try changes neither version nor
-- updated_at.

-- Fetches of the report that came back without one.
ALTER TABLE calls ADD COLUMN report_fetch_attempts INTEGER NOT NULL DEFAULT 0
    CHECK (report_fetch_attempts >= 0);
-- INTEGER milliseconds since the Unix epoch (UTC) when the call is next due for a fetch: NULL
-- while it was never tried; 9223372036854775807 (i64::MAX) once it is given up on, so it
-- sorts after every instant.
ALTER TABLE calls ADD COLUMN report_fetch_next_at INTEGER;

-- Read in two ranges, each in its own order: calls never tried (next_at IS NULL, which SQLite
-- sorts first) that ended inside the window, by end time; then calls whose next try is due,
-- by next try. The query repeats the WHERE clause word for word so that SQLite can prove the
-- partial index applies.
DROP INDEX calls_awaiting_report_idx;
CREATE INDEX calls_report_fetch_due_idx ON calls (report_fetch_next_at, end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;
