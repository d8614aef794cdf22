-- The missed-report fetch's bookkeeping per call (CallRepository::record_report_fetch), and
-- the index behind CallRepository::calls_awaiting_report, which now skips calls whose next
-- try is not due and calls given up on.
--
-- Neither column is part of the Call aggregate: a write of the call (CallRepository::update)
-- leaves them alone, and recording a try changes neither version nor updated_at. The
-- call_tallies triggers (0002) compare only the columns they track, so these writes leave the
-- tallies untouched.
--
-- One ALTER TABLE: a constant default is stored in the catalog (no table rewrite), and there
-- is no CHECK to scan existing rows for (the adapter refuses to read a negative count).

ALTER TABLE calls
    -- Fetches of the report that came back without one.
    ADD COLUMN report_fetch_attempts INTEGER NOT NULL DEFAULT 0,
    -- When the call is next due for a fetch: NULL while it was never tried; 'infinity' once
    -- it is given up on (out of tries, or past the window), so it sorts after every instant.
    ADD COLUMN report_fetch_next_at TIMESTAMPTZ NULL;

-- The backlog query reads this index in two ranges, each in its own order, and stops after
-- the limit: calls never tried (next_at IS NULL) that ended inside the window, by end time;
-- then calls tried before whose next try is due (next_at <= now), by next try. Calls outside
-- the window, not due yet or given up on lie outside both ranges and are never read. Analysed
-- calls leave the index, as before. NULLS FIRST is the order the query asks for.
DROP INDEX calls_awaiting_report_idx;
CREATE INDEX calls_report_fetch_due_idx
    ON calls (report_fetch_next_at NULLS FIRST, end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;
