-- Exact per-client call counts kept by triggers, so that call statistics, history totals and
-- the dashboard read a few rows per client instead of aggregating every call.
--
-- Each call counts once in each of three dimensions: its status, its outcome and its
-- sentiment (a NULL outcome or sentiment counts as 'unknown'). Durations are summed on the
-- status rows only, so a client's total duration is the sum over its status rows. That bounds
-- the table at 9 + 5 + 4 rows per client whatever the mix of calls; rows that fall to zero
-- calls are deleted, so a deleted client leaves nothing behind (there is deliberately no
-- foreign key: cascaded call deletes update these rows while the client row is going away).
--
-- The triggers are statement-level with transition tables, so a bulk insert of a million
-- calls updates each tally row once. TRUNCATE does not fire them: after a TRUNCATE of calls
-- (or anything else that bypasses triggers) run `SELECT call_tallies_rebuild();`.

CREATE TABLE call_tallies (
    client_id           TEXT COLLATE "C" NOT NULL,
    dimension           TEXT NOT NULL,
    value               TEXT NOT NULL,
    calls               BIGINT NOT NULL,
    total_duration      BIGINT NOT NULL,
    calls_with_duration BIGINT NOT NULL,
    CONSTRAINT call_tallies_pkey PRIMARY KEY (client_id, dimension, value),
    CONSTRAINT call_tallies_dimension_check
        CHECK (dimension IN ('status', 'outcome', 'sentiment'))
);

-- The tally keys one call counts under. Inlined by the planner into the queries below.
CREATE FUNCTION call_tally_keys(
    p_status TEXT, p_outcome TEXT, p_sentiment TEXT, p_duration INTEGER
) RETURNS TABLE (dimension TEXT, value TEXT, total_duration BIGINT, calls_with_duration BIGINT)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    VALUES ('status', p_status, COALESCE(p_duration, 0)::BIGINT,
            CASE WHEN p_duration IS NULL THEN 0 ELSE 1 END::BIGINT),
           ('outcome', COALESCE(p_outcome, 'unknown'), 0::BIGINT, 0::BIGINT),
           ('sentiment', COALESCE(p_sentiment, 'unknown'), 0::BIGINT, 0::BIGINT)
$$;

-- Deltas are grouped and applied in key order, so concurrent statements lock tally rows in
-- the same order and cannot deadlock on each other.
CREATE FUNCTION call_tallies_track() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO call_tallies AS t
            (client_id, dimension, value, calls, total_duration, calls_with_duration)
        SELECT n.client_id, k.dimension, k.value,
               COUNT(*), SUM(k.total_duration), SUM(k.calls_with_duration)
        FROM new_calls n
        CROSS JOIN LATERAL call_tally_keys(n.status, n.outcome, n.sentiment, n.duration) k
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (client_id, dimension, value) DO UPDATE SET
            calls = t.calls + EXCLUDED.calls,
            total_duration = t.total_duration + EXCLUDED.total_duration,
            calls_with_duration = t.calls_with_duration + EXCLUDED.calls_with_duration;
        RETURN NULL;
    END IF;

    IF TG_OP = 'UPDATE' THEN
        -- Old values count -1, new ones +1; rows whose tallied fields did not change cancel out.
        INSERT INTO call_tallies AS t
            (client_id, dimension, value, calls, total_duration, calls_with_duration)
        SELECT client_id, dimension, value,
               SUM(calls), SUM(total_duration), SUM(calls_with_duration)
        FROM (
            SELECT o.client_id, k.dimension, k.value, -1::BIGINT AS calls,
                   -k.total_duration AS total_duration,
                   -k.calls_with_duration AS calls_with_duration
            FROM old_calls o
            CROSS JOIN LATERAL call_tally_keys(o.status, o.outcome, o.sentiment, o.duration) k
            UNION ALL
            SELECT n.client_id, k.dimension, k.value, 1::BIGINT,
                   k.total_duration, k.calls_with_duration
            FROM new_calls n
            CROSS JOIN LATERAL call_tally_keys(n.status, n.outcome, n.sentiment, n.duration) k
        ) changes
        GROUP BY 1, 2, 3
        HAVING SUM(calls) <> 0 OR SUM(total_duration) <> 0 OR SUM(calls_with_duration) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (client_id, dimension, value) DO UPDATE SET
            calls = t.calls + EXCLUDED.calls,
            total_duration = t.total_duration + EXCLUDED.total_duration,
            calls_with_duration = t.calls_with_duration + EXCLUDED.calls_with_duration;
    ELSE
        INSERT INTO call_tallies AS t
            (client_id, dimension, value, calls, total_duration, calls_with_duration)
        SELECT o.client_id, k.dimension, k.value,
               -COUNT(*), -SUM(k.total_duration), -SUM(k.calls_with_duration)
        FROM old_calls o
        CROSS JOIN LATERAL call_tally_keys(o.status, o.outcome, o.sentiment, o.duration) k
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (client_id, dimension, value) DO UPDATE SET
            calls = t.calls + EXCLUDED.calls,
            total_duration = t.total_duration + EXCLUDED.total_duration,
            calls_with_duration = t.calls_with_duration + EXCLUDED.calls_with_duration;
    END IF;

    DELETE FROM call_tallies t
    WHERE t.calls = 0
      AND t.client_id IN (SELECT DISTINCT o.client_id FROM old_calls o);
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

-- Recomputes every tally from the calls table (an operator's repair tool).
CREATE FUNCTION call_tallies_rebuild() RETURNS void
LANGUAGE sql
AS $$
    DELETE FROM call_tallies;
    INSERT INTO call_tallies
        (client_id, dimension, value, calls, total_duration, calls_with_duration)
    SELECT c.client_id, k.dimension, k.value,
           COUNT(*), SUM(k.total_duration), SUM(k.calls_with_duration)
    FROM calls c
    CROSS JOIN LATERAL call_tally_keys(c.status, c.outcome, c.sentiment, c.duration) k
    GROUP BY 1, 2, 3;
$$;
