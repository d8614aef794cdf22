//! `CallRepository` over SQLite.

use anyhow::Context;
use async_trait::async_trait;
use outcall_domain::Timestamp;
use outcall_domain::call::{Call, CallData, CallDetails, CallOutcome, Sentiment, limits};
use outcall_domain::call_status::CallStatus;
use outcall_domain::client::ClientMeta;
use outcall_domain::ports::{CallRepository, CasOutcome, RepositoryError};
use outcall_domain::queries::{
    AwaitingReport, CallActivity, CallDashboard, CallListQuery, CallPage, CallStats,
    ReportBacklogQuery, Tally,
};
use outcall_domain::values::{
    AgentId, BoundedText, CallId, CallSid, ClientId, ConversationId, PhoneNumber,
};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite};

use crate::SqliteStore;
use crate::rows::{
    corrupt, count, db_error, get, millis, opt_millis, parse, parse_opt, sql_offset, text,
    text_opt, timestamp, timestamp_opt,
};

/// The columns `call_from_row` reads, in one place for every SELECT.
macro_rules! call_columns {
    () => {
        "call_id, client_id, call_sid, request_id, phone, from_number, agent_id, start_time, \
         end_time, duration, status, recording_url, error_code, error_message, \
         conversation_id, answered_by, sip_response_code, first_message, dynamic_variables, \
         end_reason, outcome, summary, transcript, sentiment, next_action, next_action_date, \
         agent_notes, call_successful, agent_duration_secs, analysis_at, created_at, \
         updated_at, version"
    };
}

macro_rules! select_calls {
    ($rest:literal) => {
        concat!("SELECT ", call_columns!(), " FROM calls ", $rest)
    };
}

/// The missed-report backlog (`CallRepository::calls_awaiting_report`): calls never tried that
/// ended in `[?2, ?1)`, oldest first, then calls whose next try is at or before `?3`, earliest
/// first; at most `?4`. Each branch repeats the predicate of calls_report_fetch_due_idx word
/// for word (SQLite uses a partial index only when it can prove its predicate) and reads one
/// range of it in the index's own order, stopping after `?4` rows: calls outside the window,
/// not due yet or given up on (i64::MAX) are never read. The unary `+` keeps the planner off
/// calls_status_idx: without statistics it would otherwise read every ended call of the
/// history through it and sort them. The outer sort orders at most twice `?4` rows.
const AWAITING_REPORT: &str = concat!(
    "SELECT * FROM ( \
       SELECT * FROM (",
    "SELECT ",
    call_columns!(),
    ", report_fetch_attempts, report_fetch_next_at FROM calls \
         WHERE analysis_at IS NULL AND conversation_id IS NOT NULL \
           AND report_fetch_next_at IS NULL AND end_time >= ?2 AND end_time < ?1 \
           AND +status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
         ORDER BY end_time, call_id LIMIT ?4",
    ") UNION ALL SELECT * FROM (",
    "SELECT ",
    call_columns!(),
    ", report_fetch_attempts, report_fetch_next_at FROM calls \
         WHERE analysis_at IS NULL AND conversation_id IS NOT NULL \
           AND report_fetch_next_at <= ?3 \
           AND +status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
         ORDER BY report_fetch_next_at, end_time, call_id LIMIT ?4",
    ")) ORDER BY report_fetch_next_at NULLS FIRST, end_time, call_id LIMIT ?4"
);

/// `CallRepository::record_report_fetch`: a compare-and-set on the count alone, touching
/// neither `version` nor `updated_at`. A NULL next try (given up) is stored as i64::MAX.
const RECORD_REPORT_FETCH: &str = "UPDATE calls \
     SET report_fetch_attempts = ?3, report_fetch_next_at = COALESCE(?4, 9223372036854775807) \
     WHERE call_id = ?1 AND report_fetch_attempts = ?2 AND analysis_at IS NULL";

type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Binds, in order, every field `update` may change: call_sid, request_id, phone,
/// from_number, agent_id, start_time, end_time, duration, status, recording_url, error_code,
/// error_message, conversation_id, answered_by, sip_response_code, first_message,
/// dynamic_variables, end_reason, outcome, summary, transcript, sentiment, next_action,
/// next_action_date, agent_notes, call_successful, agent_duration_secs, analysis_at,
/// updated_at.
///
/// # Errors
/// When a value cannot be stored: a SIP response code outside 100..=699 (the column's CHECK,
/// with a clearer message) or dynamic variables that do not encode.
fn bind_mutable(query: Query, call: &Call) -> anyhow::Result<Query> {
    let data = &call.data;
    let details = &call.details;
    let sip_response_code = match data.sip_response_code {
        Some(code) if !(100..=699).contains(&code) => {
            anyhow::bail!("SIP response code {code} is outside 100..=699")
        }
        code => code.map(i64::from),
    };
    let dynamic_variables = outcall_domain::values::dynamic_json::to_json(&data.dynamic_variables)?;
    Ok(query
        .bind(data.call_sid.as_ref().map(CallSid::as_str))
        .bind(opt_text(&data.request_id))
        .bind(data.phone.as_str())
        .bind(data.from.as_ref().map(PhoneNumber::as_str))
        .bind(data.agent_id.as_ref().map(AgentId::as_str))
        .bind(millis(data.start_time))
        .bind(opt_millis(data.end_time))
        .bind(data.duration.map(i64::from))
        .bind(data.status().as_str())
        .bind(opt_text(&data.recording_url))
        .bind(opt_text(&data.error_code))
        .bind(opt_text(&data.error_message))
        .bind(data.conversation_id.as_ref().map(ConversationId::as_str))
        .bind(opt_text(&data.answered_by))
        .bind(sip_response_code)
        .bind(opt_text(&data.first_message))
        .bind(dynamic_variables)
        .bind(opt_text(&data.end_reason))
        .bind(details.outcome.map(CallOutcome::as_str))
        .bind(opt_text(&details.summary))
        .bind(opt_text(&details.transcript))
        .bind(details.sentiment.map(Sentiment::as_str))
        .bind(opt_text(&details.next_action))
        .bind(opt_millis(details.next_action_date))
        .bind(opt_text(&details.agent_notes))
        .bind(opt_text(&details.call_successful))
        .bind(details.agent_duration_secs.map(i64::from))
        .bind(opt_millis(details.analysis_at))
        .bind(millis(call.updated_at)))
}

fn opt_text(text: &Option<BoundedText>) -> Option<&str> {
    text.as_ref().map(BoundedText::as_str)
}

fn call_from_row(row: &SqliteRow) -> anyhow::Result<Call> {
    let id: String = get(row, "call_id")?;
    read_call(row).with_context(|| format!("stored call {id:?} is corrupt"))
}

fn read_call(row: &SqliteRow) -> anyhow::Result<Call> {
    let mut data = CallData::new(
        parse(row, "phone", PhoneNumber::parse)?,
        timestamp(row, "start_time")?,
        parse(row, "status", CallStatus::parse)?,
    );
    data.call_sid = parse_opt(row, "call_sid", CallSid::parse)?;
    data.request_id = text_opt(row, "request_id", limits::REQUEST_ID)?;
    data.from = parse_opt(row, "from_number", PhoneNumber::parse)?;
    data.agent_id = parse_opt(row, "agent_id", AgentId::parse)?;
    data.end_time = timestamp_opt(row, "end_time")?;
    data.duration = seconds(row, "duration")?;
    data.recording_url = text_opt(row, "recording_url", limits::RECORDING_URL)?;
    data.error_code = text_opt(row, "error_code", limits::ERROR_CODE)?;
    data.error_message = text_opt(row, "error_message", limits::ERROR_MESSAGE)?;
    data.conversation_id = parse_opt(row, "conversation_id", ConversationId::parse)?;
    data.answered_by = text_opt(row, "answered_by", limits::ANSWERED_BY)?;
    data.sip_response_code = get::<Option<i64>>(row, "sip_response_code")?
        .map(u16::try_from)
        .transpose()
        .context("column sip_response_code is out of range")?;
    data.first_message = text_opt(row, "first_message", limits::FIRST_MESSAGE)?;
    let dynamic_variables: String = get(row, "dynamic_variables")?;
    data.dynamic_variables = outcall_domain::values::dynamic_json::from_json(&dynamic_variables)
        .context("column dynamic_variables holds an invalid value")?;
    data.end_reason = text_opt(row, "end_reason", limits::END_REASON)?;
    let details = CallDetails {
        outcome: parse_opt(row, "outcome", CallOutcome::parse)?,
        summary: text_opt(row, "summary", limits::SUMMARY)?,
        transcript: text_opt(row, "transcript", limits::TRANSCRIPT)?,
        sentiment: parse_opt(row, "sentiment", Sentiment::parse)?,
        next_action: text_opt(row, "next_action", limits::NEXT_ACTION)?,
        next_action_date: timestamp_opt(row, "next_action_date")?,
        agent_notes: text_opt(row, "agent_notes", limits::AGENT_NOTES)?,
        call_successful: text_opt(row, "call_successful", limits::CALL_SUCCESSFUL)?,
        agent_duration_secs: seconds(row, "agent_duration_secs")?,
        analysis_at: timestamp_opt(row, "analysis_at")?,
    };
    Ok(Call {
        id: parse(row, "call_id", CallId::parse)?,
        client_id: parse(row, "client_id", ClientId::parse)?,
        data,
        details,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
        version: get(row, "version")?,
    })
}

/// A nullable `INTEGER` of seconds as the domain's `u32`.
fn seconds(row: &SqliteRow, column: &'static str) -> anyhow::Result<Option<u32>> {
    get::<Option<i64>>(row, column)?
        .map(u32::try_from)
        .transpose()
        .with_context(|| format!("column {column} is out of range"))
}

fn one_call(row: Option<SqliteRow>) -> Result<Option<Call>, RepositoryError> {
    row.as_ref().map(call_from_row).transpose().map_err(corrupt)
}

fn all_calls(rows: &[SqliteRow]) -> Result<Vec<Call>, RepositoryError> {
    rows.iter()
        .map(call_from_row)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(corrupt)
}

/// Adds `(kind, key, n)` rows of a grouped count to the matching tally.
fn tally_row(
    row: &SqliteRow,
    by_status: &mut Tally<CallStatus>,
    by_outcome: &mut Tally<CallOutcome>,
    by_sentiment: Option<&mut Tally<Sentiment>>,
) -> anyhow::Result<()> {
    let kind: String = get(row, "kind")?;
    let n = count(row, "n")?;
    match (kind.as_str(), by_sentiment) {
        ("status", _) => by_status.add(parse(row, "key", CallStatus::parse)?, n),
        ("outcome", _) => by_outcome.add(parse(row, "key", CallOutcome::parse)?, n),
        ("sentiment", Some(tally)) => tally.add(parse(row, "key", Sentiment::parse)?, n),
        (other, _) => anyhow::bail!("unexpected aggregate kind {other:?}"),
    }
    Ok(())
}

#[async_trait]
impl CallRepository for SqliteStore {
    async fn insert(&self, call: &Call) -> Result<(), RepositoryError> {
        let insert = sqlx::query(
            "INSERT INTO calls (call_sid, request_id, phone, from_number, agent_id, start_time, \
             end_time, duration, status, recording_url, error_code, error_message, \
             conversation_id, answered_by, sip_response_code, first_message, dynamic_variables, \
             end_reason, outcome, summary, transcript, sentiment, next_action, \
             next_action_date, agent_notes, call_successful, agent_duration_secs, analysis_at, \
             updated_at, call_id, client_id, created_at, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
             ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        bind_mutable(insert, call)
            .with_context(|| format!("inserting call {}", call.id))
            .map_err(corrupt)?
            .bind(call.id.as_str())
            .bind(call.client_id.as_str())
            .bind(millis(call.created_at))
            .bind(call.version)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "inserting a call"))?;
        Ok(())
    }

    async fn find(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
    ) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(select_calls!("WHERE call_id = ? AND client_id = ?"))
            .bind(call_id.as_str())
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error(e, "finding a client's call"))?;
        one_call(row)
    }

    async fn find_by_id(&self, call_id: &CallId) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(select_calls!("WHERE call_id = ?"))
            .bind(call_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error(e, "finding a call by id"))?;
        one_call(row)
    }

    async fn find_by_sid(&self, sid: &CallSid) -> Result<Option<Call>, RepositoryError> {
        let row = sqlx::query(select_calls!("WHERE call_sid = ?"))
            .bind(sid.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error(e, "finding a call by sid"))?;
        one_call(row)
    }

    async fn find_by_conversation(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<Option<Call>, RepositoryError> {
        // Conversation ids are not unique by constraint; the newest call wins deterministically.
        let row = sqlx::query(select_calls!(
            "WHERE conversation_id = ? ORDER BY start_time DESC, call_id DESC LIMIT 1"
        ))
        .bind(conversation_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(e, "finding a call by conversation"))?;
        one_call(row)
    }

    async fn update(&self, call: &Call) -> Result<CasOutcome, RepositoryError> {
        let update = sqlx::query(
            "UPDATE calls SET call_sid = ?, request_id = ?, phone = ?, from_number = ?, \
             agent_id = ?, start_time = ?, end_time = ?, duration = ?, status = ?, \
             recording_url = ?, error_code = ?, error_message = ?, conversation_id = ?, \
             answered_by = ?, sip_response_code = ?, first_message = ?, \
             dynamic_variables = ?, end_reason = ?, outcome = ?, summary = ?, transcript = ?, \
             sentiment = ?, next_action = ?, next_action_date = ?, agent_notes = ?, \
             call_successful = ?, agent_duration_secs = ?, analysis_at = ?, updated_at = ?, \
             version = version + 1 \
             WHERE call_id = ? AND client_id = ? AND version = ?",
        );
        let done = bind_mutable(update, call)
            .with_context(|| format!("updating call {}", call.id))
            .map_err(corrupt)?
            .bind(call.id.as_str())
            .bind(call.client_id.as_str())
            .bind(call.version)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "updating a call"))?;
        if done.rows_affected() > 0 {
            return Ok(CasOutcome::Updated);
        }
        // Nothing matched: either someone else wrote first, or the call is gone.
        let exists = sqlx::query("SELECT 1 FROM calls WHERE call_id = ? AND client_id = ?")
            .bind(call.id.as_str())
            .bind(call.client_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error(e, "checking a call after a lost update"))?;
        Ok(if exists.is_some() {
            CasOutcome::Conflict
        } else {
            CasOutcome::Missing
        })
    }

    async fn list_for_client(
        &self,
        client_id: &ClientId,
        query: &CallListQuery,
    ) -> Result<CallPage, RepositoryError> {
        let page = match query.status {
            None => sqlx::query(select_calls!(
                "WHERE client_id = ? ORDER BY start_time DESC, call_id DESC LIMIT ? OFFSET ?"
            ))
            .bind(client_id.as_str()),
            Some(status) => sqlx::query(select_calls!(
                "WHERE client_id = ? AND status = ? \
                 ORDER BY start_time DESC, call_id DESC LIMIT ? OFFSET ?"
            ))
            .bind(client_id.as_str())
            .bind(status.as_str()),
        }
        .bind(i64::from(query.limit))
        .bind(sql_offset(query.offset));
        // `filtered` equals `total` when no status is given (a NULL status matches all).
        let totals = sqlx::query(
            "SELECT COUNT(*) AS total, \
             COALESCE(SUM(?1 IS NULL OR status = ?1), 0) AS filtered \
             FROM calls WHERE client_id = ?2",
        )
        .bind(query.status.map(CallStatus::as_str))
        .bind(client_id.as_str());

        // One read transaction: the page and its counts come from the same snapshot.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error(e, "starting a call listing"))?;
        let rows = page
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(e, "listing a client's calls"))?;
        let totals = totals
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error(e, "counting a client's calls"))?;
        tx.commit()
            .await
            .map_err(|e| db_error(e, "finishing a call listing"))?;

        Ok(CallPage {
            total: count(&totals, "total").map_err(corrupt)?,
            filtered: count(&totals, "filtered").map_err(corrupt)?,
            calls: all_calls(&rows)?,
        })
    }

    async fn stats_for_client(&self, client_id: &ClientId) -> Result<CallStats, RepositoryError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error(e, "starting call statistics"))?;
        let groups = sqlx::query(
            "SELECT 'status' AS kind, status AS key, COUNT(*) AS n \
             FROM calls WHERE client_id = ?1 GROUP BY status \
             UNION ALL \
             SELECT 'outcome', COALESCE(outcome, 'unknown'), COUNT(*) \
             FROM calls WHERE client_id = ?1 GROUP BY 2 \
             UNION ALL \
             SELECT 'sentiment', COALESCE(sentiment, 'unknown'), COUNT(*) \
             FROM calls WHERE client_id = ?1 GROUP BY 2",
        )
        .bind(client_id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error(e, "grouping a client's calls"))?;
        let totals = sqlx::query(
            "SELECT COUNT(*) AS total, COALESCE(SUM(duration), 0) AS total_duration, \
             COUNT(duration) AS calls_with_duration FROM calls WHERE client_id = ?",
        )
        .bind(client_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(e, "totalling a client's calls"))?;
        tx.commit()
            .await
            .map_err(|e| db_error(e, "finishing call statistics"))?;

        let mut stats = CallStats::empty();
        for row in &groups {
            tally_row(
                row,
                &mut stats.by_status,
                &mut stats.by_outcome,
                Some(&mut stats.by_sentiment),
            )
            .context("reading call statistics")
            .map_err(corrupt)?;
        }
        stats.total = count(&totals, "total").map_err(corrupt)?;
        stats.total_duration = count(&totals, "total_duration").map_err(corrupt)?;
        stats.calls_with_duration = count(&totals, "calls_with_duration").map_err(corrupt)?;
        Ok(stats)
    }

    async fn dashboard(&self, recent_since: Timestamp) -> Result<CallDashboard, RepositoryError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error(e, "starting the dashboard"))?;
        let groups = sqlx::query(
            "SELECT 'status' AS kind, status AS key, COUNT(*) AS n FROM calls GROUP BY status \
             UNION ALL \
             SELECT 'outcome', COALESCE(outcome, 'unknown'), COUNT(*) FROM calls GROUP BY 2",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error(e, "grouping all calls"))?;
        let totals = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM calls) AS total, \
             (SELECT COUNT(*) FROM calls WHERE start_time >= ?) AS recent",
        )
        .bind(millis(recent_since))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(e, "counting all calls"))?;
        tx.commit()
            .await
            .map_err(|e| db_error(e, "finishing the dashboard"))?;

        let mut dashboard = CallDashboard {
            total: count(&totals, "total").map_err(corrupt)?,
            recent: count(&totals, "recent").map_err(corrupt)?,
            by_status: Tally::statuses(),
            by_outcome: Tally::outcomes(),
        };
        for row in &groups {
            tally_row(
                row,
                &mut dashboard.by_status,
                &mut dashboard.by_outcome,
                None,
            )
            .context("reading dashboard counts")
            .map_err(corrupt)?;
        }
        Ok(dashboard)
    }

    async fn calls_awaiting_report(
        &self,
        query: &ReportBacklogQuery,
    ) -> Result<Vec<AwaitingReport>, RepositoryError> {
        let rows = sqlx::query(AWAITING_REPORT)
            .bind(millis(query.ended_before))
            .bind(millis(query.ended_after))
            .bind(millis(query.now))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(e, "listing calls awaiting a post-call report"))?;
        rows.iter()
            .map(|row| -> anyhow::Result<AwaitingReport> {
                let call = call_from_row(row)?;
                let attempts: i64 = get(row, "report_fetch_attempts")?;
                let fetch_attempts = u32::try_from(attempts).with_context(|| {
                    format!(
                        "stored call {:?} is corrupt: column report_fetch_attempts is {attempts}",
                        call.id.as_str()
                    )
                })?;
                Ok(AwaitingReport {
                    call,
                    fetch_attempts,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(corrupt)
    }

    async fn record_report_fetch(
        &self,
        call_id: &CallId,
        seen_attempts: u32,
        attempts: u32,
        next_at: Option<Timestamp>,
    ) -> Result<bool, RepositoryError> {
        let result = sqlx::query(RECORD_REPORT_FETCH)
            .bind(call_id.as_str())
            .bind(i64::from(seen_attempts))
            .bind(i64::from(attempts))
            .bind(next_at.map(millis))
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "recording a report fetch"))?;
        Ok(result.rows_affected() > 0)
    }

    async fn recent_activity(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallActivity>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT c.client_id, cl.full_name, cl.business_name, c.call_id, c.call_sid, \
             c.phone, c.status, c.start_time, c.duration, c.outcome \
             FROM calls c JOIN clients cl ON cl.client_id = c.client_id \
             WHERE c.start_time >= ? \
             ORDER BY c.start_time DESC, c.call_id DESC LIMIT ?",
        )
        .bind(millis(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error(e, "listing recent activity"))?;
        rows.iter()
            .map(activity_from_row)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(corrupt)
    }
}

fn activity_from_row(row: &SqliteRow) -> anyhow::Result<CallActivity> {
    let read = || -> anyhow::Result<CallActivity> {
        Ok(CallActivity {
            client_id: parse(row, "client_id", ClientId::parse)?,
            client_name: text(row, "full_name", ClientMeta::FULL_NAME_MAX)?,
            business_name: text_opt(row, "business_name", ClientMeta::BUSINESS_NAME_MAX)?,
            call_id: parse(row, "call_id", CallId::parse)?,
            call_sid: parse_opt(row, "call_sid", CallSid::parse)?,
            phone: parse(row, "phone", PhoneNumber::parse)?,
            status: parse(row, "status", CallStatus::parse)?,
            start_time: timestamp(row, "start_time")?,
            duration: seconds(row, "duration")?,
            outcome: parse_opt(row, "outcome", CallOutcome::parse)?,
        })
    };
    read().with_context(|| {
        let id: String = row.try_get("call_id").unwrap_or_default();
        format!("stored activity of call {id:?} is corrupt")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    /// Each branch searches one range of calls_report_fetch_due_idx in the index's order
    /// (inside its co-routine, no sort, so the LIMIT stops the search); the only sorts are of
    /// the at most `limit` rows a branch yields, for the merge.
    #[tokio::test]
    async fn the_awaiting_report_query_searches_one_range_of_its_index_per_branch_without_sorting_it()
     {
        let store = SqliteStore::temporary().await.expect("temporary store");
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {AWAITING_REPORT}"
        )))
        .bind(0_i64)
        .bind(-10_i64)
        .bind(0_i64)
        .bind(10_i64)
        .fetch_all(&store.pool)
        .await
        .expect("explaining")
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect();
        let searches: Vec<&String> = plan
            .iter()
            .filter(|step| step.starts_with("SEARCH calls"))
            .collect();
        assert_eq!(searches.len(), 2, "{plan:?}");
        assert!(
            searches[0].contains(
                "USING INDEX calls_report_fetch_due_idx (report_fetch_next_at=? AND end_time>? AND end_time<?)"
            ),
            "{plan:?}"
        );
        assert!(
            searches[1].contains("USING INDEX calls_report_fetch_due_idx (report_fetch_next_at<?)"),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN calls")),
            "{plan:?}"
        );
        for (n, step) in plan.iter().enumerate() {
            if step.contains("TEMP B-TREE") {
                assert!(
                    n > 0 && plan[n - 1].starts_with("SCAN (subquery-"),
                    "{plan:?}"
                );
            }
        }
    }
}
