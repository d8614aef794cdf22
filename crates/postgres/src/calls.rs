//! `CallRepository`: call records, history pages and statistics.

use async_trait::async_trait;
use outcall_domain::ports::{CallRepository, CasOutcome, RepositoryError};
use outcall_domain::queries::{
    CallActivity, CallDashboard, CallListQuery, CallPage, CallStats, Tally,
};
use outcall_domain::{
    BoundedText, Call, CallId, CallOutcome, CallSid, CallStatus, ClientId, ClientMeta,
    ConversationId, PhoneNumber, Sentiment, Timestamp,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row as _};

use crate::PgStore;
use crate::error::{classify, corrupt};
use crate::rows::{self, call_columns, duration_param, sip_response_code_param, text_param};

/// Binds the mutable columns of `call`, from `call_sid` to `updated_at` (29 values), in the
/// order both `INSERT` and `UPDATE` below use.
fn bind_mutable<'q>(
    query: Query<'q, Postgres, PgArguments>,
    call: &Call,
) -> anyhow::Result<Query<'q, Postgres, PgArguments>> {
    let data = &call.data;
    let details = &call.details;
    Ok(query
        .bind(data.call_sid.as_ref().map(CallSid::as_str))
        .bind(text_param(data.request_id.as_ref()))
        .bind(data.phone.as_str())
        .bind(data.from.as_ref().map(PhoneNumber::as_str))
        .bind(data.agent_id.as_ref().map(|a| a.as_str()))
        .bind(data.start_time)
        .bind(data.end_time)
        .bind(duration_param(data.duration, "call duration")?)
        .bind(data.status().as_str())
        .bind(text_param(data.recording_url.as_ref()))
        .bind(text_param(data.error_code.as_ref()))
        .bind(text_param(data.error_message.as_ref()))
        .bind(data.conversation_id.as_ref().map(ConversationId::as_str))
        .bind(text_param(data.answered_by.as_ref()))
        .bind(sip_response_code_param(data.sip_response_code)?)
        .bind(text_param(data.first_message.as_ref()))
        .bind(outcall_domain::values::dynamic_json::to_json(
            &data.dynamic_variables,
        )?)
        .bind(text_param(data.end_reason.as_ref()))
        .bind(details.outcome.map(CallOutcome::as_str))
        .bind(text_param(details.summary.as_ref()))
        .bind(text_param(details.transcript.as_ref()))
        .bind(details.sentiment.map(Sentiment::as_str))
        .bind(text_param(details.next_action.as_ref()))
        .bind(details.next_action_date)
        .bind(text_param(details.agent_notes.as_ref()))
        .bind(text_param(details.call_successful.as_ref()))
        .bind(duration_param(
            details.agent_duration_secs,
            "agent duration",
        )?)
        .bind(details.analysis_at)
        .bind(call.updated_at))
}

fn count(row: &PgRow, column: &str) -> anyhow::Result<u64> {
    Ok(u64::try_from(rows::get::<i64>(row, column)?)?)
}

fn optional_call(row: Option<PgRow>, what: String) -> Result<Option<Call>, RepositoryError> {
    row.map(|row| rows::call(&row))
        .transpose()
        .map_err(|e| corrupt(e, format!("decoding {what}")))
}

// A page with its totals in one statement (one snapshot). Totals come from the trigger-kept
// tallies instead of counting the client's calls; the LEFT JOIN keeps them when the offset
// is past the end. The status filter has its own statement so each plan uses its own index.
const PAGE_ALL: &str = concat!(
    "SELECT t.total, t.total AS filtered, p.* FROM ( \
         SELECT COALESCE((SELECT calls FROM call_tallies WHERE client_id = $1), 0) AS total \
     ) t LEFT JOIN LATERAL ( \
         SELECT ",
    call_columns!(),
    " FROM calls WHERE client_id = $1 \
         ORDER BY start_time DESC, call_id DESC LIMIT $2 OFFSET $3 \
     ) p ON TRUE \
     ORDER BY p.start_time DESC, p.call_id DESC"
);

const PAGE_BY_STATUS: &str = concat!(
    "SELECT COALESCE(t.total, 0) AS total, COALESCE(t.filtered, 0) AS filtered, p.* FROM ( \
         SELECT calls AS total, CASE $4::TEXT \
             WHEN 'queued' THEN status_queued WHEN 'initiated' THEN status_initiated \
             WHEN 'ringing' THEN status_ringing WHEN 'in-progress' THEN status_in_progress \
             WHEN 'completed' THEN status_completed WHEN 'busy' THEN status_busy \
             WHEN 'failed' THEN status_failed WHEN 'no-answer' THEN status_no_answer \
             WHEN 'canceled' THEN status_canceled END AS filtered \
         FROM (SELECT 1) one LEFT JOIN call_tallies ON client_id = $1 \
     ) t LEFT JOIN LATERAL ( \
         SELECT ",
    call_columns!(),
    " FROM calls WHERE client_id = $1 AND status = $4::TEXT \
         ORDER BY start_time DESC, call_id DESC LIMIT $2 OFFSET $3 \
     ) p ON TRUE \
     ORDER BY p.start_time DESC, p.call_id DESC"
);

/// Ended calls bridged to a conversation without a report, ended before `$1`, oldest first,
/// at most `$2`. The first two conditions are the predicate of calls_awaiting_report_idx
/// (0004), whose (end_time, call_id) order is the one asked for: the plan reads the head of
/// that small index instead of every ended call.
const AWAITING_REPORT: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls \
     WHERE analysis_at IS NULL AND conversation_id IS NOT NULL \
       AND end_time < $1 \
       AND status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
     ORDER BY end_time, call_id LIMIT $2"
);

/// The `call_tallies` column counting calls in `status`.
fn status_column(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Queued => "status_queued",
        CallStatus::Initiated => "status_initiated",
        CallStatus::Ringing => "status_ringing",
        CallStatus::InProgress => "status_in_progress",
        CallStatus::Completed => "status_completed",
        CallStatus::Busy => "status_busy",
        CallStatus::Failed => "status_failed",
        CallStatus::NoAnswer => "status_no_answer",
        CallStatus::Canceled => "status_canceled",
    }
}

/// The `call_tallies` column counting calls with `outcome` (`Unknown` includes no outcome).
fn outcome_column(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Interested => "outcome_interested",
        CallOutcome::NotInterested => "outcome_not_interested",
        CallOutcome::Callback => "outcome_callback",
        CallOutcome::Unavailable => "outcome_unavailable",
        CallOutcome::Unknown => "outcome_unknown",
    }
}

/// The `call_tallies` column counting calls with `sentiment` (`Unknown` includes none).
fn sentiment_column(sentiment: Sentiment) -> &'static str {
    match sentiment {
        Sentiment::Positive => "sentiment_positive",
        Sentiment::Neutral => "sentiment_neutral",
        Sentiment::Negative => "sentiment_negative",
        Sentiment::Unknown => "sentiment_unknown",
    }
}

#[async_trait]
impl CallRepository for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %call.client_id, call_id = %call.id))]
    async fn insert(&self, call: &Call) -> Result<(), RepositoryError> {
        let context = || format!("inserting call {} of client {}", call.id, call.client_id);
        let query = sqlx::query(
            "INSERT INTO calls (call_id, client_id, created_at, version, call_sid, request_id, \
             phone, from_number, agent_id, start_time, end_time, duration, status, \
             recording_url, error_code, error_message, conversation_id, answered_by, \
             sip_response_code, first_message, dynamic_variables, end_reason, outcome, \
             summary, transcript, sentiment, next_action, next_action_date, agent_notes, \
             call_successful, agent_duration_secs, analysis_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, \
             $33)",
        )
        .bind(call.id.as_str())
        .bind(call.client_id.as_str())
        .bind(call.created_at)
        .bind(call.version);
        bind_mutable(query, call)
            .map_err(|e| corrupt(e, context()))?
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, context()))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %client_id, call_id = %call_id))]
    async fn find(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
    ) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls WHERE call_id = $1 AND client_id = $2"
        ))
        .bind(call_id.as_str())
        .bind(client_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading call {call_id} of client {client_id}")))?;
        optional_call(row, format!("call {call_id}"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(call_id = %call_id))]
    async fn find_by_id(&self, call_id: &CallId) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls WHERE call_id = $1"
        ))
        .bind(call_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading call {call_id}")))?;
        optional_call(row, format!("call {call_id}"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_by_sid(&self, sid: &CallSid) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls WHERE call_sid = $1"
        ))
        .bind(sid.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading the call with SID {sid}")))?;
        optional_call(row, format!("the call with SID {sid}"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_by_conversation(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<Option<Call>, RepositoryError> {
        // Not unique in the schema; should two calls ever share one, the latest wins.
        let row = sqlx::query(concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls WHERE conversation_id = $1 \
             ORDER BY start_time DESC, call_id DESC LIMIT 1"
        ))
        .bind(conversation_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| {
            classify(
                e,
                format!("reading the call of conversation {conversation_id}"),
            )
        })?;
        optional_call(row, format!("the call of conversation {conversation_id}"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %call.client_id, call_id = %call.id))]
    async fn update(&self, call: &Call) -> Result<CasOutcome, RepositoryError> {
        let context = || format!("updating call {} of client {}", call.id, call.client_id);
        // Scoped by owner as well as id (defence in depth for tenant isolation): a call of
        // another client is `Missing`, exactly as if it did not exist.
        let query = sqlx::query(
            "UPDATE calls SET call_sid = $4, request_id = $5, phone = $6, from_number = $7, \
             agent_id = $8, start_time = $9, end_time = $10, duration = $11, status = $12, \
             recording_url = $13, error_code = $14, error_message = $15, \
             conversation_id = $16, answered_by = $17, sip_response_code = $18, \
             first_message = $19, dynamic_variables = $20, end_reason = $21, outcome = $22, \
             summary = $23, transcript = $24, sentiment = $25, next_action = $26, \
             next_action_date = $27, agent_notes = $28, call_successful = $29, \
             agent_duration_secs = $30, analysis_at = $31, updated_at = $32, \
             version = version + 1 \
             WHERE call_id = $1 AND client_id = $2 AND version = $3",
        )
        .bind(call.id.as_str())
        .bind(call.client_id.as_str())
        .bind(call.version);
        let result = bind_mutable(query, call)
            .map_err(|e| corrupt(e, context()))?
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, context()))?;
        if result.rows_affected() > 0 {
            return Ok(CasOutcome::Updated);
        }
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE call_id = $1 AND client_id = $2) AS present",
        )
        .bind(call.id.as_str())
        .bind(call.client_id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, context()))?;
        let present: bool = rows::get(&row, "present").map_err(|e| corrupt(e, context()))?;
        Ok(if present {
            CasOutcome::Conflict
        } else {
            CasOutcome::Missing
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %client_id))]
    async fn list_for_client(
        &self,
        client_id: &ClientId,
        query: &CallListQuery,
    ) -> Result<CallPage, RepositoryError> {
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let page = |sql| {
            sqlx::query(sql)
                .bind(client_id.as_str())
                .bind(i64::from(query.limit))
                .bind(offset)
        };
        let statement = match query.status {
            None => page(PAGE_ALL),
            Some(status) => page(PAGE_BY_STATUS).bind(status.as_str()),
        };
        let rows = statement
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(e, format!("listing calls of client {client_id}")))?;
        let decode = || -> anyhow::Result<CallPage> {
            let mut page = CallPage {
                total: 0,
                filtered: 0,
                calls: Vec::with_capacity(rows.len()),
            };
            for row in &rows {
                page.total = count(row, "total")?;
                page.filtered = count(row, "filtered")?;
                if rows::get::<Option<String>>(row, "call_id")?.is_some() {
                    page.calls.push(rows::call(row)?);
                }
            }
            Ok(page)
        };
        decode().map_err(|e| corrupt(e, format!("decoding calls of client {client_id}")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %client_id))]
    async fn stats_for_client(&self, client_id: &ClientId) -> Result<CallStats, RepositoryError> {
        // One row, kept exact by the triggers; no row means no calls.
        let row = sqlx::query("SELECT * FROM call_tallies WHERE client_id = $1")
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(e, format!("reading call statistics of client {client_id}")))?;
        let Some(row) = row else {
            return Ok(CallStats::empty());
        };
        let decode = || -> anyhow::Result<CallStats> {
            let mut stats = CallStats::empty();
            stats.total = count(&row, "calls")?;
            stats.total_duration = count(&row, "total_duration")?;
            stats.calls_with_duration = count(&row, "calls_with_duration")?;
            for status in CallStatus::ALL {
                stats
                    .by_status
                    .add(status, count(&row, status_column(status))?);
            }
            for outcome in CallOutcome::ALL {
                stats
                    .by_outcome
                    .add(outcome, count(&row, outcome_column(outcome))?);
            }
            for sentiment in Sentiment::ALL {
                stats
                    .by_sentiment
                    .add(sentiment, count(&row, sentiment_column(sentiment))?);
            }
            Ok(stats)
        };
        decode().map_err(|e| corrupt(e, format!("decoding call statistics of client {client_id}")))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn dashboard(&self, recent_since: Timestamp) -> Result<CallDashboard, RepositoryError> {
        // The tallies summed over clients (one row each) plus an index-only range count for
        // "recent"; one statement, one snapshot.
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM calls WHERE start_time >= $1) AS recent, \
               COALESCE(SUM(calls), 0)::BIGINT AS calls, \
               COALESCE(SUM(status_queued), 0)::BIGINT AS status_queued, \
               COALESCE(SUM(status_initiated), 0)::BIGINT AS status_initiated, \
               COALESCE(SUM(status_ringing), 0)::BIGINT AS status_ringing, \
               COALESCE(SUM(status_in_progress), 0)::BIGINT AS status_in_progress, \
               COALESCE(SUM(status_completed), 0)::BIGINT AS status_completed, \
               COALESCE(SUM(status_busy), 0)::BIGINT AS status_busy, \
               COALESCE(SUM(status_failed), 0)::BIGINT AS status_failed, \
               COALESCE(SUM(status_no_answer), 0)::BIGINT AS status_no_answer, \
               COALESCE(SUM(status_canceled), 0)::BIGINT AS status_canceled, \
               COALESCE(SUM(outcome_interested), 0)::BIGINT AS outcome_interested, \
               COALESCE(SUM(outcome_not_interested), 0)::BIGINT AS outcome_not_interested, \
               COALESCE(SUM(outcome_callback), 0)::BIGINT AS outcome_callback, \
               COALESCE(SUM(outcome_unavailable), 0)::BIGINT AS outcome_unavailable, \
               COALESCE(SUM(outcome_unknown), 0)::BIGINT AS outcome_unknown \
             FROM call_tallies",
        )
        .bind(recent_since)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "reading the call dashboard"))?;
        let decode = || -> anyhow::Result<CallDashboard> {
            let mut dashboard = CallDashboard {
                total: count(&row, "calls")?,
                recent: count(&row, "recent")?,
                by_status: Tally::statuses(),
                by_outcome: Tally::outcomes(),
            };
            for status in CallStatus::ALL {
                dashboard
                    .by_status
                    .add(status, count(&row, status_column(status))?);
            }
            for outcome in CallOutcome::ALL {
                dashboard
                    .by_outcome
                    .add(outcome, count(&row, outcome_column(outcome))?);
            }
            Ok(dashboard)
        };
        decode().map_err(|e| corrupt(e, "decoding the call dashboard"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn calls_awaiting_report(
        &self,
        ended_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<Call>, RepositoryError> {
        let rows = sqlx::query(AWAITING_REPORT)
            .bind(ended_before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(e, "reading calls awaiting a post-call report"))?;
        rows.iter()
            .map(rows::call)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| corrupt(e, "decoding calls awaiting a post-call report"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn recent_activity(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallActivity>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT c.client_id, cl.full_name, cl.business_name, c.call_id, c.call_sid, \
             c.phone, c.status, c.start_time, c.duration, c.outcome \
             FROM calls c JOIN clients cl ON cl.client_id = c.client_id \
             WHERE c.start_time >= $1 \
             ORDER BY c.start_time DESC, c.call_id DESC LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(e, "reading recent call activity"))?;
        let name = |raw: &str| BoundedText::parse(raw, ClientMeta::FULL_NAME_MAX);
        let business = |raw: &str| BoundedText::parse(raw, ClientMeta::BUSINESS_NAME_MAX);
        rows.iter()
            .map(|row| -> anyhow::Result<CallActivity> {
                let duration: Option<i32> = rows::get(row, "duration")?;
                Ok(CallActivity {
                    client_id: rows::parsed(row, "client_id", ClientId::parse)?,
                    client_name: rows::parsed(row, "full_name", name)?,
                    business_name: rows::parsed_opt(row, "business_name", business)?,
                    call_id: rows::parsed(row, "call_id", CallId::parse)?,
                    call_sid: rows::parsed_opt(row, "call_sid", CallSid::parse)?,
                    phone: rows::parsed(row, "phone", PhoneNumber::parse)?,
                    status: rows::parsed(row, "status", CallStatus::parse)?,
                    start_time: row.try_get("start_time")?,
                    duration: duration.map(u32::try_from).transpose()?,
                    outcome: rows::parsed_opt(row, "outcome", CallOutcome::parse)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| corrupt(e, "decoding recent call activity"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use sqlx::Connection as _;

    use super::*;

    /// Like every database test of this crate, this needs `DATABASE_URL` to name a superuser
    /// of a throw-away server (`scripts/with-postgres cargo test -p outcall-postgres`).
    #[tokio::test]
    async fn the_awaiting_report_query_can_read_its_partial_index_in_order_without_sorting() {
        let server = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL names a throw-away PostgreSQL server (see scripts/with-postgres)",
        );
        let name = format!("outcall_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .expect("connecting to DATABASE_URL");
        // The name is generated above from a UUID, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("creating a database");
        let mut url = url::Url::parse(&server).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        let store = PgStore::connect(url.as_str(), 1).await.expect("connecting");
        store.migrate().await.expect("migrating");

        let mut conn = store.pool.acquire().await.expect("a connection");
        // An empty table is cheapest to scan whole; forbid that and sorting, so that the plan
        // shows whether an index can deliver the rows already in order.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .expect("setting");
        sqlx::query("SET enable_sort = off")
            .execute(&mut *conn)
            .await
            .expect("setting");
        let plan: Vec<String> =
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {AWAITING_REPORT}")))
                .bind(chrono::Utc::now())
                .bind(10_i64)
                .fetch_all(&mut *conn)
                .await
                .expect("explaining")
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using calls_awaiting_report_idx"),
            "{plan}"
        );
        assert!(!plan.contains("Sort"), "{plan}");
    }
}
