-- Exact per-client call counts kept by triggers, so that call statistics, history totals and
-- the dashboard read one row per client instead of aggregating every call.
--
-- One row per client that has calls: how many calls it has per status, per outcome and per
-- sentiment (a NULL outcome or sentiment counts as unknown), the sum of durations and how
-- many calls have one. A row falling to zero calls is deleted, so a deleted client leaves
-- nothing behind. There is deliberately no foreign key: cascaded call deletes update these
-- rows while the client row is going away.
--
-- The triggers are statement-level with transition tables, so a bulk insert of many calls
-- updates each client's row once, and an update that changes none of the tallied columns
-- (status, outcome, sentiment, duration) does not touch this table at all. TRUNCATE does not
-- fire them: after a TRUNCATE of calls, or anything else that bypasses triggers, run
-- `SELECT call_tallies_rebuild();`.

CREATE TABLE call_tallies (
    client_id              TEXT COLLATE "C" NOT NULL,
    calls                  BIGINT NOT NULL,
    total_duration         BIGINT NOT NULL,
    calls_with_duration    BIGINT NOT NULL,
    status_queued          BIGINT NOT NULL,
    status_initiated       BIGINT NOT NULL,
    status_ringing         BIGINT NOT NULL,
    status_in_progress     BIGINT NOT NULL,
    status_completed       BIGINT NOT NULL,
    status_busy            BIGINT NOT NULL,
    status_failed          BIGINT NOT NULL,
    status_no_answer       BIGINT NOT NULL,
    status_canceled        BIGINT NOT NULL,
    outcome_interested     BIGINT NOT NULL,
    outcome_not_interested BIGINT NOT NULL,
    outcome_callback       BIGINT NOT NULL,
    outcome_unavailable    BIGINT NOT NULL,
    outcome_unknown        BIGINT NOT NULL,
    sentiment_positive     BIGINT NOT NULL,
    sentiment_neutral      BIGINT NOT NULL,
    sentiment_negative     BIGINT NOT NULL,
    sentiment_unknown      BIGINT NOT NULL,
    CONSTRAINT call_tallies_pkey PRIMARY KEY (client_id)
) WITH (fillfactor = 50); -- rows are rewritten on every tallied change: room for HOT updates

-- One call entering (+1) or leaving (-1) the tallies.
CREATE TYPE call_tally_change AS (
    client_id TEXT,
    sign      INTEGER,
    status    TEXT,
    outcome   TEXT,
    sentiment TEXT,
    duration  INTEGER
);

-- Adds signed changes to the tallies (`IS NOT DISTINCT FROM`: a NULL outcome or sentiment
-- must count 0, not NULL, for the named values). Rows are upserted in client order, so concurrent
-- statements lock tally rows in the same order and cannot deadlock on each other.
CREATE FUNCTION call_tallies_apply(changes call_tally_change[]) RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO call_tallies AS t (
        client_id, calls, total_duration, calls_with_duration,
        status_queued, status_initiated, status_ringing, status_in_progress,
        status_completed, status_busy, status_failed, status_no_answer, status_canceled,
        outcome_interested, outcome_not_interested, outcome_callback, outcome_unavailable,
        outcome_unknown,
        sentiment_positive, sentiment_neutral, sentiment_negative, sentiment_unknown)
    SELECT c.client_id,
           SUM(c.sign),
           SUM(c.sign * COALESCE(c.duration, 0)),
           SUM(c.sign * (c.duration IS NOT NULL)::INT),
           SUM(c.sign * (c.status = 'queued')::INT),
           SUM(c.sign * (c.status = 'initiated')::INT),
           SUM(c.sign * (c.status = 'ringing')::INT),
           SUM(c.sign * (c.status = 'in-progress')::INT),
           SUM(c.sign * (c.status = 'completed')::INT),
           SUM(c.sign * (c.status = 'busy')::INT),
           SUM(c.sign * (c.status = 'failed')::INT),
           SUM(c.sign * (c.status = 'no-answer')::INT),
           SUM(c.sign * (c.status = 'canceled')::INT),
           SUM(c.sign * (c.outcome IS NOT DISTINCT FROM 'interested')::INT),
           SUM(c.sign * (c.outcome IS NOT DISTINCT FROM 'not-interested')::INT),
           SUM(c.sign * (c.outcome IS NOT DISTINCT FROM 'callback')::INT),
           SUM(c.sign * (c.outcome IS NOT DISTINCT FROM 'unavailable')::INT),
           SUM(c.sign * (COALESCE(c.outcome, 'unknown') = 'unknown')::INT),
           SUM(c.sign * (c.sentiment IS NOT DISTINCT FROM 'positive')::INT),
           SUM(c.sign * (c.sentiment IS NOT DISTINCT FROM 'neutral')::INT),
           SUM(c.sign * (c.sentiment IS NOT DISTINCT FROM 'negative')::INT),
           SUM(c.sign * (COALESCE(c.sentiment, 'unknown') = 'unknown')::INT)
    FROM unnest(changes) AS c
    GROUP BY c.client_id
    ORDER BY c.client_id
    ON CONFLICT (client_id) DO UPDATE SET
        calls = t.calls + EXCLUDED.calls,
        total_duration = t.total_duration + EXCLUDED.total_duration,
        calls_with_duration = t.calls_with_duration + EXCLUDED.calls_with_duration,
        status_queued = t.status_queued + EXCLUDED.status_queued,
        status_initiated = t.status_initiated + EXCLUDED.status_initiated,
        status_ringing = t.status_ringing + EXCLUDED.status_ringing,
        status_in_progress = t.status_in_progress + EXCLUDED.status_in_progress,
        status_completed = t.status_completed + EXCLUDED.status_completed,
        status_busy = t.status_busy + EXCLUDED.status_busy,
        status_failed = t.status_failed + EXCLUDED.status_failed,
        status_no_answer = t.status_no_answer + EXCLUDED.status_no_answer,
        status_canceled = t.status_canceled + EXCLUDED.status_canceled,
        outcome_interested = t.outcome_interested + EXCLUDED.outcome_interested,
        outcome_not_interested = t.outcome_not_interested + EXCLUDED.outcome_not_interested,
        outcome_callback = t.outcome_callback + EXCLUDED.outcome_callback,
        outcome_unavailable = t.outcome_unavailable + EXCLUDED.outcome_unavailable,
        outcome_unknown = t.outcome_unknown + EXCLUDED.outcome_unknown,
        sentiment_positive = t.sentiment_positive + EXCLUDED.sentiment_positive,
        sentiment_neutral = t.sentiment_neutral + EXCLUDED.sentiment_neutral,
        sentiment_negative = t.sentiment_negative + EXCLUDED.sentiment_negative,
        sentiment_unknown = t.sentiment_unknown + EXCLUDED.sentiment_unknown;

    DELETE FROM call_tallies t
    WHERE t.calls = 0
      AND t.client_id IN (SELECT c.client_id FROM unnest(changes) AS c);
$$;

CREATE FUNCTION call_tallies_track() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    changes call_tally_change[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(n.client_id, 1, n.status, n.outcome, n.sentiment, n.duration)
                         ::call_tally_change)
        INTO changes FROM new_calls n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(o.client_id, -1, o.status, o.outcome, o.sentiment, o.duration)
                         ::call_tally_change)
        INTO changes FROM old_calls o;
    ELSE
        -- Only rows whose tallied columns changed: out with the old values, in with the new.
        SELECT array_agg(change) INTO changes FROM (
            SELECT ROW(o.client_id, -1, o.status, o.outcome, o.sentiment, o.duration)
                   ::call_tally_change AS change
            FROM old_calls o LEFT JOIN new_calls n ON n.call_id = o.call_id
            WHERE n.call_id IS NULL
               OR (o.client_id, o.status, o.outcome, o.sentiment, o.duration)
                  IS DISTINCT FROM (n.client_id, n.status, n.outcome, n.sentiment, n.duration)
            UNION ALL
            SELECT ROW(n.client_id, 1, n.status, n.outcome, n.sentiment, n.duration)
                   ::call_tally_change
            FROM new_calls n LEFT JOIN old_calls o ON o.call_id = n.call_id
            WHERE o.call_id IS NULL
               OR (o.client_id, o.status, o.outcome, o.sentiment, o.duration)
                  IS DISTINCT FROM (n.client_id, n.status, n.outcome, n.sentiment, n.duration)
        ) changed;
    END IF;
    IF changes IS NOT NULL THEN
        PERFORM call_tallies_apply(changes);
    END IF;
    RETURN NULL;
END;
$$;

-- Transition tables allow one event per trigger, hence three triggers on one function.
CREATE TRIGGER calls_tally_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS new_calls
    FOR EACH STATEMENT EXECUTE FUNCTION call_tallies_track();
CREATE TRIGGER calls_tally_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls
    FOR EACH STATEMENT EXECUTE FUNCTION call_tallies_track();
CREATE TRIGGER calls_tally_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS old_calls
    FOR EACH STATEMENT EXECUTE FUNCTION call_tallies_track();

-- Recomputes every tally from the calls table, one client at a time (an operator's repair
-- tool; see the header).
CREATE FUNCTION call_tallies_rebuild() RETURNS void
LANGUAGE sql
AS $$
    DELETE FROM call_tallies;
    SELECT call_tallies_apply(array_agg(
               ROW(c.client_id, 1, c.status, c.outcome, c.sentiment, c.duration)
               ::call_tally_change))
    FROM calls c
    GROUP BY c.client_id;
$$;
