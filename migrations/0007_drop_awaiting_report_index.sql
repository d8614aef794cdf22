-- no-transaction
-- The index 0004 built for the backlog query before per-call backoff (0005, 0006); nothing
-- reads it any more. Dropped without blocking writes to calls.
DROP INDEX CONCURRENTLY IF EXISTS calls_awaiting_report_idx;
