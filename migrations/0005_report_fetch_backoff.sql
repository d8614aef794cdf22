-- The missed-report fetch's bookkeeping per call (CallRepository::record_report_fetch). The
-- index the backlog query reads is built by 0006, in its own transaction, so that this
-- migration's exclusive lock ends with the ALTER.
--
-- Neither column is part of the Call aggregate: a write of the call (CallRepository::update)
-- leaves them alone, and recording a try changes neither version nor updated_at. The
-- call_tallies triggers (0002) compare only the columns they track, so these writes leave the
-- tallies untouched.
--
-- One ALTER TABLE: a constant default is stored in the catalog (no table rewrite), and there
-- is no CHECK to scan existing rows for (the adapter refuses to read a negative count). It
-- still needs a moment's exclusive lock: rather than queue every reader and writer of calls
-- behind a long transaction, give up after 5 s (the migration fails and can be run again).
SET LOCAL lock_timeout = '5s';

ALTER TABLE calls
    -- Fetches of the report that came back without one.
    ADD COLUMN report_fetch_attempts INTEGER NOT NULL DEFAULT 0,
    -- When the call is next due for a fetch: NULL while it was never tried; 'infinity' once
    -- it is given up on (out of tries, or past the window), so it sorts after every instant.
    ADD COLUMN report_fetch_next_at TIMESTAMPTZ NULL;
