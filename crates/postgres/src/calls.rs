//! `CallRepository`: call records, history pages and statistics.

use async_trait::async_trait;
use outcall_domain::ports::{CallRepository, CasOutcome, RepositoryError};
use outcall_domain::queries::{
    AwaitingReport, CallActivity, CallDashboard, CallListQuery, CallPage, CallStats,
    ReportBacklogQuery, Tally,
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

/// The missed-report backlog (`CallRepository::calls_awaiting_report`): calls never tried that
/// ended in `[$2, $1)`, oldest first, then calls whose next try is at or before `$3`, earliest
/// first; at most `$4`. Each branch repeats the predicate of calls_report_fetch_due_idx (0006)
/// and reads one range of it in the index's own order, stopping after `$4` rows: the never-tried
/// branch seeks to `report_fetch_next_at IS NULL AND end_time >= $2`, so calls outside the
/// window are never read, and the due branch stops at the first try not due yet, before the
/// calls given up on ('infinity'). Both branches and the whole are ordered as the index is
/// (the never-tried branch too, although its next try is NULL throughout: that is what lets
/// the planner read the index in order), so the plan merges two index scans without a sort.
const AWAITING_REPORT: &str = concat!(
    "SELECT * FROM ( \
         (SELECT ",
    call_columns!(),
    ", report_fetch_attempts, report_fetch_next_at FROM calls \
          WHERE analysis_at IS NULL AND conversation_id IS NOT NULL \
            AND report_fetch_next_at IS NULL AND end_time >= $2 AND end_time < $1 \
            AND status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
          ORDER BY report_fetch_next_at NULLS FIRST, end_time, call_id LIMIT $4) \
         UNION ALL \
         (SELECT ",
    call_columns!(),
    ", report_fetch_attempts, report_fetch_next_at FROM calls \
          WHERE analysis_at IS NULL AND conversation_id IS NOT NULL \
            AND report_fetch_next_at <= $3 \
            AND status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
          ORDER BY report_fetch_next_at NULLS FIRST, end_time, call_id LIMIT $4) \
     ) due \
     ORDER BY report_fetch_next_at NULLS FIRST, end_time, call_id LIMIT $4"
);

/// `CallRepository::record_report_fetch`: a compare-and-set on the count alone, touching
/// neither `version` nor `updated_at`. A NULL next try (given up) is stored as 'infinity'.
const RECORD_REPORT_FETCH: &str = "UPDATE calls \
     SET report_fetch_attempts = $3, \
         report_fetch_next_at = COALESCE($4, 'infinity'::TIMESTAMPTZ) \
     WHERE call_id = $1 AND report_fetch_attempts = $2 AND analysis_at IS NULL";

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
        query: &ReportBacklogQuery,
    ) -> Result<Vec<AwaitingReport>, RepositoryError> {
        let rows = sqlx::query(AWAITING_REPORT)
            .bind(query.ended_before)
            .bind(query.ended_after)
            .bind(query.now)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(e, "reading calls awaiting a post-call report"))?;
        rows.iter()
            .map(|row| -> anyhow::Result<AwaitingReport> {
                let call = rows::call(row)?;
                let attempts: i32 = rows::get(row, "report_fetch_attempts")?;
                let fetch_attempts = u32::try_from(attempts).map_err(|_| {
                    anyhow::anyhow!(
                        "stored call {} is corrupt: column report_fetch_attempts is {attempts}",
                        call.id
                    )
                })?;
                Ok(AwaitingReport {
                    call,
                    fetch_attempts,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| corrupt(e, "decoding calls awaiting a post-call report"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(call_id = %call_id))]
    async fn record_report_fetch(
        &self,
        call_id: &CallId,
        seen_attempts: u32,
        attempts: u32,
        next_at: Option<Timestamp>,
    ) -> Result<bool, RepositoryError> {
        let context = || format!("recording a report fetch of call {call_id}");
        let count = |n: u32| {
            i32::try_from(n)
                .map_err(|_| corrupt(anyhow::anyhow!("{n} report fetches do not fit"), context()))
        };
        let result = sqlx::query(RECORD_REPORT_FETCH)
            .bind(call_id.as_str())
            .bind(count(seen_attempts)?)
            .bind(count(attempts)?)
            .bind(next_at)
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, context()))?;
        Ok(result.rows_affected() > 0)
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
    ///
    /// 60,000 calls: 20,000 analysed, 20,000 never tried that ended before the window, 10,000
    /// given up on, 5,000 tried and not due yet, and 5,000 of each due group. Either branch
    /// of the query must seek into calls_report_fetch_due_idx and stop after the limit, never
    /// reading the calls outside the window or given up on.
    #[tokio::test]
    async fn the_awaiting_report_query_reads_only_the_head_of_each_due_range_of_its_index() {
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

        let now = chrono::Utc::now();
        let mut conn = store.pool.acquire().await.expect("a connection");
        sqlx::query(
            "INSERT INTO clients (client_id, status, agent_id, twilio_phone_number, full_name, \
             email, email_normalized, phone, search_text, secret_hash, created_at, updated_at) \
             VALUES ('c1', 'Active', 'agent_1', '+18001234567', 'Owner', 'o@example.com', \
             'o@example.com', '+12125551234', 'owner', 'h', $1, $1)",
        )
        .bind(now)
        .execute(&mut *conn)
        .await
        .expect("a client");
        // n: 1..=60000. Kinds by n: analysed (<= 20000), never tried and ended 10 days ago
        // (<= 40000), given up (<= 50000), next try tomorrow (<= 55000), due retry (<= 57500),
        // never tried inside the window (the rest).
        sqlx::query(
            "INSERT INTO calls (call_id, client_id, phone, start_time, end_time, status, \
             conversation_id, analysis_at, report_fetch_attempts, report_fetch_next_at, \
             created_at, updated_at, version) \
             SELECT 'k' || n, 'c1', '+12125550000', t - INTERVAL '1 minute', t, 'completed', \
               'conv_' || n, \
               CASE WHEN n <= 20000 THEN t END, \
               CASE WHEN n > 40000 AND n <= 57500 THEN 3 ELSE 0 END, \
               CASE WHEN n <= 40000 THEN NULL \
                    WHEN n <= 50000 THEN 'infinity'::TIMESTAMPTZ \
                    WHEN n <= 55000 THEN $1 + INTERVAL '1 day' \
                    WHEN n <= 57500 THEN $1 - INTERVAL '1 hour' END, \
               t, t, 0 \
             FROM (SELECT n, CASE WHEN n <= 40000 THEN $1 - INTERVAL '10 days' - n * INTERVAL '1 second' \
                                  ELSE $1 - INTERVAL '1 day' - n * INTERVAL '1 second' END AS t \
                   FROM generate_series(1, 60000) n) seeded",
        )
        .bind(now)
        .execute(&mut *conn)
        .await
        .expect("seeding calls");
        sqlx::query("ANALYZE calls")
            .execute(&mut *conn)
            .await
            .expect("analysing");

        let explain = |ended_after: Timestamp| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {AWAITING_REPORT}"
            )))
            .bind(now - chrono::Duration::minutes(15))
            .bind(ended_after)
            .bind(now)
            .bind(50_i64)
        };
        // Inside a 72-hour window the never-tried branch fills the limit; with a window that
        // holds none of them, the due branch has to.
        for ended_after in [
            now - chrono::Duration::hours(72),
            now - chrono::Duration::minutes(20),
        ] {
            let plan: Vec<String> = explain(ended_after)
                .fetch_all(&mut *conn)
                .await
                .expect("explaining")
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect();
            let plan = plan.join("\n");
            assert_eq!(
                plan.matches("Index Scan using calls_report_fetch_due_idx")
                    .count(),
                2,
                "{plan}"
            );
            assert!(!plan.contains("Seq Scan"), "{plan}");
            assert!(!plan.contains("Bitmap"), "{plan}");
            // Merge Append of the two scans in index order: nothing is sorted.
            assert!(!plan.contains("Sort Method"), "{plan}");
            // No branch reads, and filters away, more than the rows it returns.
            assert!(!plan.contains("Rows Removed by Filter"), "{plan}");
            for line in plan.lines().filter(|l| l.contains("Index Scan")) {
                let rows: u64 = line
                    .split("rows=")
                    .nth(1)
                    .and_then(|r| r.split([' ', ')']).next())
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(u64::MAX);
                assert!(rows <= 50, "{plan}");
            }
        }
    }
}
