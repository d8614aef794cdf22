-- no-transaction
-- Built without blocking writes to calls (CONCURRENTLY; sqlx runs this file outside a
-- transaction). Should a build fail half-way, PostgreSQL leaves an INVALID index: drop it
-- (DROP INDEX CONCURRENTLY calls_report_fetch_due_idx) and run the migration again.
--
-- The backlog query reads this index in two ranges, each in its own order, and stops after
-- the limit: calls never tried (next_at IS NULL) that ended inside the window, by end time;
-- then calls tried before whose next try is due (next_at <= now), by next try. Calls outside
-- the window, not due yet or given up on lie outside both ranges and are never read. Analysed
-- calls leave the index, as before. NULLS FIRST is the order the query asks for.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_report_fetch_due_idx
    ON calls (report_fetch_next_at NULLS FIRST, end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;
