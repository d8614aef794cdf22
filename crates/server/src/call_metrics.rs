//! Counts what happens to calls, whichever path changes them: a [`CallRepository`] decorator
//! that compares each successful write with the record it replaces.
//!
//! - `calls_ended_total{status}`: a call reached a terminal status (`completed`, `busy`,
//!   `failed`, `no-answer`, `canceled`), counted once per call, on the write that made it
//!   terminal: a Twilio status callback, a placement the provider refused, the bridge failing
//!   the call, an initiation-failure webhook, an admin's edit, or an admin adding a call that
//!   had already ended.
//! - `call_outcomes_total{outcome}`: the first post-call report applied to a call, by the
//!   outcome it set (`interested`, `not-interested`, `callback`, `unavailable`, `unknown`, or
//!   `none` when the report carried no usable outcome); counted once per call, whether the
//!   report came by webhook or from the missed-report fetch.
//!
//! The domain services stay free of metrics. The price is one extra read by id before a
//! write that can matter (the call is terminal or has a report), never on the live-call path
//! before the end. Because every write is a compare-and-set on `version`, a write that
//! succeeds replaced exactly the version read before it, so nothing is counted twice or
//! missed, also with several replicas.

use std::sync::Arc;

use async_trait::async_trait;
use outcall_domain::Timestamp;
use outcall_domain::call::Call;
use outcall_domain::ports::{CallRepository, CasOutcome, RepositoryError};
use outcall_domain::queries::{
    AwaitingReport, CallActivity, CallDashboard, CallListQuery, CallPage, CallStats,
    ReportBacklogQuery,
};
use outcall_domain::values::{CallId, CallSid, ClientId, ConversationId};

/// What a write changed that the metrics count.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counted {
    /// The terminal status the call reached.
    ended: Option<&'static str>,
    /// The outcome of the first report applied.
    outcome: Option<&'static str>,
}

/// Whether writing `call` may end it or complete its first report: only then is the stored
/// version worth reading first.
fn may_count(call: &Call) -> bool {
    call.data.status().is_terminal() || call.details.analysis_at.is_some()
}

/// What replacing `before` by `after` counts; `None` before: `after` is a new record (an
/// admin adding a call that already ended counts as it ending).
fn counted(before: Option<&Call>, after: &Call) -> Counted {
    let was_terminal = before.is_some_and(|b| b.data.status().is_terminal());
    let was_reported = before.is_some_and(|b| b.details.analysis_at.is_some());
    let is = after.data.status();
    Counted {
        ended: (!was_terminal && is.is_terminal()).then_some(is.as_str()),
        outcome: (!was_reported && after.details.analysis_at.is_some())
            .then(|| after.details.outcome.map_or("none", |o| o.as_str())),
    }
}

fn record(counted: &Counted) {
    if let Some(status) = counted.ended {
        metrics::counter!("calls_ended_total", "status" => status).increment(1);
    }
    if let Some(outcome) = counted.outcome {
        metrics::counter!("call_outcomes_total", "outcome" => outcome).increment(1);
    }
}

/// A [`CallRepository`] that counts call endings and outcomes (see the module docs).
pub struct MeteredCalls {
    inner: Arc<dyn CallRepository>,
}

impl MeteredCalls {
    pub fn new(inner: Arc<dyn CallRepository>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl CallRepository for MeteredCalls {
    async fn insert(&self, call: &Call) -> Result<(), RepositoryError> {
        self.inner.insert(call).await?;
        record(&counted(None, call));
        Ok(())
    }

    async fn find(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
    ) -> Result<Option<Call>, RepositoryError> {
        self.inner.find(client_id, call_id).await
    }

    async fn find_by_id(&self, call_id: &CallId) -> Result<Option<Call>, RepositoryError> {
        self.inner.find_by_id(call_id).await
    }

    async fn find_by_sid(&self, sid: &CallSid) -> Result<Option<Call>, RepositoryError> {
        self.inner.find_by_sid(sid).await
    }

    async fn find_by_conversation(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<Option<Call>, RepositoryError> {
        self.inner.find_by_conversation(conversation_id).await
    }

    async fn update(&self, call: &Call) -> Result<CasOutcome, RepositoryError> {
        // Metrics never fail a write: without the stored version nothing is counted.
        let before = if may_count(call) {
            match self.inner.find_by_id(&call.id).await {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::debug!(call_id = %call.id, %error, "call metrics skipped a write");
                    None
                }
            }
        } else {
            None
        };
        let outcome = self.inner.update(call).await?;
        if outcome == CasOutcome::Updated
            && let Some(before) = before.filter(|b| b.version == call.version)
        {
            record(&counted(Some(&before), call));
        }
        Ok(outcome)
    }

    async fn list_for_client(
        &self,
        client_id: &ClientId,
        query: &CallListQuery,
    ) -> Result<CallPage, RepositoryError> {
        self.inner.list_for_client(client_id, query).await
    }

    async fn stats_for_client(&self, client_id: &ClientId) -> Result<CallStats, RepositoryError> {
        self.inner.stats_for_client(client_id).await
    }

    async fn dashboard(&self, recent_since: Timestamp) -> Result<CallDashboard, RepositoryError> {
        self.inner.dashboard(recent_since).await
    }

    async fn calls_awaiting_report(
        &self,
        query: &ReportBacklogQuery,
    ) -> Result<Vec<AwaitingReport>, RepositoryError> {
        self.inner.calls_awaiting_report(query).await
    }

    async fn record_report_fetch(
        &self,
        call_id: &CallId,
        seen_attempts: u32,
        attempts: u32,
        next_at: Option<Timestamp>,
    ) -> Result<bool, RepositoryError> {
        self.inner
            .record_report_fetch(call_id, seen_attempts, attempts, next_at)
            .await
    }

    async fn recent_activity(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallActivity>, RepositoryError> {
        self.inner.recent_activity(since, limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use outcall_domain::call::CallOutcome;
    use outcall_domain::test_support::{call_fixture, fixed_now, stored_calls};
    use outcall_domain::{CallStatus, StatusChange};

    use super::*;

    fn call(status: CallStatus) -> Call {
        call_fixture("c1", "call_1", status)
    }

    fn reported(mut call: Call, outcome: Option<CallOutcome>) -> Call {
        call.details.analysis_at = Some(fixed_now());
        call.details.outcome = outcome;
        call
    }

    #[test]
    fn reaching_a_terminal_status_counts_the_status_once() {
        for status in [
            CallStatus::Completed,
            CallStatus::Busy,
            CallStatus::Failed,
            CallStatus::NoAnswer,
            CallStatus::Canceled,
        ] {
            assert_eq!(
                counted(Some(&call(CallStatus::InProgress)), &call(status)).ended,
                Some(status.as_str())
            );
            // Already ended: a later write (transcript, report) counts nothing again.
            assert_eq!(counted(Some(&call(status)), &call(status)).ended, None);
        }
        assert_eq!(
            counted(Some(&call(CallStatus::Queued)), &call(CallStatus::Ringing)),
            Counted::default()
        );
    }

    #[test]
    fn a_new_record_counts_as_what_it_already_is() {
        assert_eq!(counted(None, &call(CallStatus::Queued)), Counted::default());
        let ended = call(CallStatus::Completed);
        assert_eq!(
            counted(None, &reported(ended, Some(CallOutcome::Callback))),
            Counted {
                ended: Some("completed"),
                outcome: Some("callback")
            }
        );
    }

    #[test]
    fn the_first_report_counts_its_outcome_or_none() {
        let ended = call(CallStatus::Completed);
        assert_eq!(
            counted(
                Some(&ended),
                &reported(ended.clone(), Some(CallOutcome::Interested))
            ),
            Counted {
                ended: None,
                outcome: Some("interested")
            }
        );
        assert_eq!(
            counted(Some(&ended), &reported(ended.clone(), None)).outcome,
            Some("none")
        );
        // A newer report replacing the first, or an admin editing the outcome: not counted.
        let first = reported(ended.clone(), Some(CallOutcome::Callback));
        let second = reported(ended.clone(), Some(CallOutcome::NotInterested));
        assert_eq!(counted(Some(&first), &second).outcome, None);
        let mut edited = ended.clone();
        edited.details.outcome = Some(CallOutcome::Interested);
        assert_eq!(counted(Some(&ended), &edited).outcome, None);
    }

    #[test]
    fn only_writes_of_ended_or_reported_calls_read_the_stored_version_first() {
        assert!(!may_count(&call(CallStatus::InProgress)));
        assert!(may_count(&call(CallStatus::NoAnswer)));
        assert!(may_count(&reported(call(CallStatus::InProgress), None)));
    }

    /// A local recorder sees what `MeteredCalls` counts.
    async fn counts_of(
        store: Arc<Mutex<Option<Call>>>,
        writes: impl AsyncFnOnce(&MeteredCalls),
    ) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let calls = MeteredCalls::new(Arc::new(stored_calls(store)));
        writes(&calls).await;
        metrics.render()
    }

    #[tokio::test]
    async fn an_ending_written_through_the_decorator_is_counted_once() {
        let store = Arc::new(Mutex::new(Some(call(CallStatus::InProgress))));
        let text = counts_of(store, async |calls| {
            for _ in 0..2 {
                // Read, change, write back: the services' pattern.
                let mut call = calls
                    .find_by_id(&CallId::parse("call_1").expect("valid"))
                    .await
                    .expect("read")
                    .expect("stored");
                if call.apply_status(CallStatus::Busy, fixed_now()) == StatusChange::Advance {
                    assert_eq!(
                        calls.update(&call).await.expect("write"),
                        CasOutcome::Updated
                    );
                }
            }
        })
        .await;
        assert!(
            text.contains(r#"calls_ended_total{status="busy"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_write_that_loses_the_compare_and_set_counts_nothing() {
        let store = Arc::new(Mutex::new(Some(call(CallStatus::InProgress))));
        let text = counts_of(store, async |calls| {
            let mut stale = call(CallStatus::Completed);
            stale.version = 41;
            assert_eq!(
                calls.update(&stale).await.expect("write"),
                CasOutcome::Conflict
            );
        })
        .await;
        assert!(!text.contains("calls_ended_total"), "{text}");
    }
}
