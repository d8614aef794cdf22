-- Not CONCURRENTLY: sqlx holds its migration lock (a session advisory lock) while it applies
-- a migration, and replicas that start together wait for that lock inside a statement; a
-- concurrent index build waits for every such statement to end, and they wait for it: a
-- deadlock (seen when three replicas started at once). A plain build blocks writes to calls
-- (not reads) while it scans the table, about a second per million calls. On a much larger
-- table, build the index by hand first, with CONCURRENTLY and this name: this migration then
-- finds it and only drops the old one.
--
-- The backlog query reads this index in two ranges, each in its own order, and stops after
-- the limit: calls never tried (next_at IS NULL) that ended inside the window, by end time;
-- then calls tried before whose next try is due (next_at <= now), by next try. Calls outside
-- the window, not due yet or given up on lie outside both ranges and are never read. Analysed
-- calls leave the index, as before. NULLS FIRST is the order the query asks for.
CREATE INDEX IF NOT EXISTS calls_report_fetch_due_idx
    ON calls (report_fetch_next_at NULLS FIRST, end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;

-- The index 0004 built for the backlog query before per-call backoff; nothing reads it any
-- more. Dropped last, so its exclusive lock is held only until the commit right after.
DROP INDEX IF EXISTS calls_awaiting_report_idx;
