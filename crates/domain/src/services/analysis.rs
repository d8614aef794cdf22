use std::sync::Arc;

use crate::analysis::{AnalysisMapping, InitiationFailure, PostCallReport};
use crate::call::{Call, StatusEvent, limits};
use crate::call_status::CallStatus;
use crate::ports::{CallRepository, CasOutcome, Clock, RepositoryError, VoiceAgent};
use crate::values::{BoundedText, CallId};

/// What became of a post-call event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The call was updated. `rejected` lists data-collection values that did not fit
    /// (`(id, why)`), for the caller to log.
    Applied {
        call_id: CallId,
        rejected: Vec<(String, &'static str)>,
    },
    /// Nothing changed: the same or a newer report was applied before.
    AlreadyApplied { call_id: CallId },
    /// No call matches the conversation (or the call id it carried).
    UnknownCall,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for AnalysisError {
    fn from(err: RepositoryError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("storing a post-call report"))
    }
}

const MAX_CAS_ATTEMPTS: usize = 64;

/// Completes call records from the voice-agent provider's post-call reports.
#[derive(Clone)]
pub struct PostCallAnalysis {
    calls: Arc<dyn CallRepository>,
    agent: Arc<dyn VoiceAgent>,
    clock: Arc<dyn Clock>,
    mapping: AnalysisMapping,
}

impl PostCallAnalysis {
    pub fn new(
        calls: Arc<dyn CallRepository>,
        agent: Arc<dyn VoiceAgent>,
        clock: Arc<dyn Clock>,
        mapping: AnalysisMapping,
    ) -> Self {
        Self {
            calls,
            agent,
            clock,
            mapping,
        }
    }

    /// The call a provider event is about: by conversation id first, else by the call id the
    /// conversation carried.
    async fn find(
        &self,
        conversation: Option<&crate::values::ConversationId>,
        call_id: Option<&CallId>,
    ) -> Result<Option<Call>, AnalysisError> {
        if let Some(conversation) = conversation
            && let Some(call) = self.calls.find_by_conversation(conversation).await?
        {
            return Ok(Some(call));
        }
        match call_id {
            Some(id) => Ok(self.calls.find_by_id(id).await?),
            None => Ok(None),
        }
    }

    /// Applies a `post_call_transcription` report. Idempotent: redelivery changes nothing, and
    /// an older report never overwrites a newer one.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn apply_report(
        &self,
        report: &PostCallReport,
    ) -> Result<ReportOutcome, AnalysisError> {
        let mapped = self.mapping.map(&report.data_collection);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(mut call) = self
                .find(Some(&report.conversation_id), report.call_id.as_ref())
                .await?
            else {
                return Ok(ReportOutcome::UnknownCall);
            };
            if !call.apply_report(report, &mapped, self.clock.now()) {
                return Ok(ReportOutcome::AlreadyApplied { call_id: call.id });
            }
            match self.calls.update(&call).await? {
                CasOutcome::Updated => {
                    return Ok(ReportOutcome::Applied {
                        call_id: call.id,
                        rejected: mapped.rejected,
                    });
                }
                CasOutcome::Conflict => continue,
                CasOutcome::Missing => return Ok(ReportOutcome::UnknownCall),
            }
        }
        Err(AnalysisError::Unexpected(anyhow::anyhow!(
            "call kept changing while applying a post-call report"
        )))
    }

    /// Marks the call failed with the provider's reason (`call_initiation_failure`).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn apply_initiation_failure(
        &self,
        failure: &InitiationFailure,
    ) -> Result<ReportOutcome, AnalysisError> {
        let reason = format!(
            "voice agent could not start the conversation: {}",
            failure.reason
        );
        for _ in 0..MAX_CAS_ATTEMPTS {
            let found = self
                .find(failure.conversation_id.as_ref(), failure.call_id.as_ref())
                .await?;
            let found = match (found, &failure.call_sid) {
                (Some(call), _) => Some(call),
                (None, Some(sid)) => self.calls.find_by_sid(sid).await?,
                (None, None) => None,
            };
            let Some(mut call) = found else {
                return Ok(ReportOutcome::UnknownCall);
            };
            let event = StatusEvent {
                status: Some(CallStatus::Failed),
                ..StatusEvent::default()
            };
            let now = self.clock.now();
            let mut changed = call.apply_status_event(&event, now);
            if call.data.end_reason.is_none() {
                call.data.end_reason = BoundedText::parse(
                    &reason.chars().take(limits::END_REASON).collect::<String>(),
                    limits::END_REASON,
                )
                .ok();
                changed |= call.data.end_reason.is_some();
            }
            if !changed {
                return Ok(ReportOutcome::AlreadyApplied { call_id: call.id });
            }
            match self.calls.update(&call).await? {
                CasOutcome::Updated => {
                    return Ok(ReportOutcome::Applied {
                        call_id: call.id,
                        rejected: Vec::new(),
                    });
                }
                CasOutcome::Conflict => continue,
                CasOutcome::Missing => return Ok(ReportOutcome::UnknownCall),
            }
        }
        Err(AnalysisError::Unexpected(anyhow::anyhow!(
            "call kept changing while applying an initiation failure"
        )))
    }

    /// The fallback for missed webhooks: fetches reports of calls that ended more than
    /// `grace` ago without one, and applies those the provider has. Returns how many calls
    /// were completed.
    ///
    /// # Errors
    /// `Unexpected` on storage failure; provider errors for single calls are skipped.
    pub async fn fetch_missed_reports(
        &self,
        grace: chrono::Duration,
        batch: u32,
    ) -> Result<usize, AnalysisError> {
        let ended_before = self.clock.now() - grace;
        let waiting = self
            .calls
            .calls_awaiting_report(ended_before, batch)
            .await?;
        let mut completed = 0;
        for call in waiting {
            let Some(conversation) = call.data.conversation_id.as_ref() else {
                continue;
            };
            // One provider hiccup must not stop the others; the next round retries it.
            let Ok(Some(report)) = self.agent.fetch_report(conversation).await else {
                continue;
            };
            if matches!(
                self.apply_report(&report).await?,
                ReportOutcome::Applied { .. }
            ) {
                completed += 1;
            }
        }
        Ok(completed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use chrono::Duration;

    use super::*;
    use crate::analysis::{Speaker, TranscriptTurn};
    use crate::call::{CallOutcome, Sentiment};
    use crate::ports::{MockClock, MockVoiceAgent};
    use crate::test_support::{call_fixture, fixed_now, stored_calls};
    use crate::values::ConversationId;

    fn service(store: Arc<Mutex<Option<Call>>>) -> PostCallAnalysis {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        PostCallAnalysis::new(
            Arc::new(stored_calls(store)),
            Arc::new(MockVoiceAgent::new()),
            Arc::new(clock),
            AnalysisMapping::default(),
        )
    }

    fn bridged_call() -> Arc<Mutex<Option<Call>>> {
        let mut call = call_fixture("c1", "call_1", CallStatus::Completed);
        call.data.conversation_id = Some(ConversationId::parse("conv_1").expect("valid"));
        Arc::new(Mutex::new(Some(call)))
    }

    fn report(conversation: &str, minutes: i64, outcome: &str) -> PostCallReport {
        PostCallReport {
            conversation_id: ConversationId::parse(conversation).expect("valid"),
            call_id: None,
            event_at: fixed_now() + Duration::minutes(minutes),
            summary: Some(format!("summary at {minutes}")),
            transcript: vec![
                TranscriptTurn {
                    speaker: Speaker::Agent,
                    text: "Hello".into(),
                },
                TranscriptTurn {
                    speaker: Speaker::User,
                    text: "Hi".into(),
                },
            ],
            data_collection: BTreeMap::from([
                ("call_outcome".to_owned(), outcome.to_owned()),
                ("call_sentiment".to_owned(), "positive".to_owned()),
            ]),
            call_successful: Some("success".into()),
            duration_secs: Some(61),
        }
    }

    fn stored(store: &Arc<Mutex<Option<Call>>>) -> Call {
        store.lock().expect("lock").clone().expect("stored")
    }

    #[tokio::test]
    async fn a_report_fills_the_call_details() {
        let store = bridged_call();
        let outcome = service(store.clone())
            .apply_report(&report("conv_1", 1, "interested"))
            .await
            .expect("ok");
        assert!(matches!(outcome, ReportOutcome::Applied { .. }));
        let call = stored(&store);
        assert_eq!(
            call.details.summary.as_ref().map(BoundedText::as_str),
            Some("summary at 1")
        );
        assert_eq!(
            call.details.transcript.as_ref().map(BoundedText::as_str),
            Some("Agent: Hello\nUser: Hi")
        );
        assert_eq!(call.details.outcome, Some(CallOutcome::Interested));
        assert_eq!(call.details.sentiment, Some(Sentiment::Positive));
        assert_eq!(call.details.agent_duration_secs, Some(61));
    }

    #[tokio::test]
    async fn a_redelivered_or_older_report_changes_nothing() {
        let store = bridged_call();
        let analysis = service(store.clone());
        analysis
            .apply_report(&report("conv_1", 5, "callback"))
            .await
            .expect("ok");
        let version = stored(&store).version;
        let again = analysis
            .apply_report(&report("conv_1", 5, "callback"))
            .await
            .expect("ok");
        assert!(matches!(again, ReportOutcome::AlreadyApplied { .. }));
        let older = analysis
            .apply_report(&report("conv_1", 1, "interested"))
            .await
            .expect("ok");
        assert!(matches!(older, ReportOutcome::AlreadyApplied { .. }));
        let call = stored(&store);
        assert_eq!(call.version, version, "no write at all");
        assert_eq!(call.details.outcome, Some(CallOutcome::Callback));
    }

    #[tokio::test]
    async fn an_unknown_conversation_is_reported_and_a_carried_call_id_is_used() {
        let store = bridged_call();
        let analysis = service(store.clone());
        let mut by_id = report("conv_other", 1, "interested");
        assert_eq!(
            analysis.apply_report(&by_id).await.expect("ok"),
            ReportOutcome::UnknownCall
        );
        // The store's lookup by id finds the stored call whatever the id, so a carried id hits.
        by_id.call_id = Some(CallId::parse("call_1").expect("valid"));
        assert!(matches!(
            analysis.apply_report(&by_id).await.expect("ok"),
            ReportOutcome::Applied { .. }
        ));
    }

    #[tokio::test]
    async fn an_initiation_failure_marks_a_live_call_failed_with_the_reason() {
        let mut call = call_fixture("c1", "call_1", CallStatus::InProgress);
        call.data.conversation_id = Some(ConversationId::parse("conv_1").expect("valid"));
        let store = Arc::new(Mutex::new(Some(call)));
        let failure = InitiationFailure {
            conversation_id: Some(ConversationId::parse("conv_1").expect("valid")),
            call_id: None,
            call_sid: None,
            reason: "busy".into(),
            event_at: fixed_now(),
        };
        let outcome = service(store.clone())
            .apply_initiation_failure(&failure)
            .await
            .expect("ok");
        assert!(matches!(outcome, ReportOutcome::Applied { .. }));
        let call = stored(&store);
        assert_eq!(call.data.status(), CallStatus::Failed);
        assert!(
            call.data
                .end_reason
                .as_ref()
                .is_some_and(|r| r.as_str().contains("busy"))
        );
    }
}
