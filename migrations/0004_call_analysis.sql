-- What the post-call analysis added to a call (CallData::end_reason; CallDetails::
-- call_successful, agent_duration_secs, analysis_at), and the index behind
-- CallRepository::calls_awaiting_report.
--
-- One ALTER TABLE: a single catalog change and, for the CHECK, a single scan of existing rows
-- (all NULL, so it passes); no column has a default, so no table rewrite. The call_tallies
-- triggers (0002) compare only the columns they track (client_id, status, outcome, sentiment,
-- duration), so writes that change only these columns leave the tallies untouched.

ALTER TABLE calls
    -- BoundedText of at most call::limits::END_REASON characters.
    ADD COLUMN end_reason TEXT NULL,
    -- BoundedText of at most call::limits::CALL_SUCCESSFUL characters.
    ADD COLUMN call_successful TEXT NULL,
    -- Seconds, as `duration`: never negative, at most i32::MAX (the adapter refuses more).
    ADD COLUMN agent_duration_secs INTEGER NULL
        CONSTRAINT calls_agent_duration_secs_check CHECK (agent_duration_secs >= 0),
    -- When the post-call report that filled the details was emitted; NULL until one applies.
    ADD COLUMN analysis_at TIMESTAMPTZ NULL;

-- Ended calls bridged to a conversation and still without a report, oldest end first (ties
-- by id): the fallback that fetches missed reports reads the head of this index. Analysed
-- calls leave it, so it stays as small as the backlog. The query's terminal-status filter
-- is applied to the rows the index yields (calls still live have, as a rule, no end time).
CREATE INDEX calls_awaiting_report_idx ON calls (end_time, call_id)
    WHERE analysis_at IS NULL AND conversation_id IS NOT NULL;
