use std::sync::Arc;

use crate::analysis::{AnalysisMapping, InitiationFailure, PostCallReport};
use crate::call::{Call, StatusEvent, limits};
use crate::call_status::CallStatus;
use crate::ports::{
    CallRepository, CasOutcome, Clock, RepositoryError, VoiceAgent, VoiceAgentError,
};
use crate::queries::{AwaitingReport, ReportBacklogQuery};
use crate::values::{BoundedText, CallId, ConversationId};

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
    /// The event names the call (by the call id in its variables) but another conversation
    /// than the one the call was bridged to: e.g. an agent connection prepared on one replica
    /// and left unused when the stream landed on another. Nothing changed.
    OtherConversation { call_id: CallId },
}

/// Whether `reported` is a different conversation than the one `call` was bridged to.
fn is_other_conversation(call: &Call, reported: Option<&ConversationId>) -> bool {
    matches!(
        (call.data.conversation_id.as_ref(), reported),
        (Some(recorded), Some(reported)) if recorded != reported
    )
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
            if is_other_conversation(&call, Some(&report.conversation_id)) {
                return Ok(ReportOutcome::OtherConversation { call_id: call.id });
            }
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
            if is_other_conversation(&call, failure.conversation_id.as_ref()) {
                return Ok(ReportOutcome::OtherConversation { call_id: call.id });
            }
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

    /// One round of the fallback for missed webhooks: fetches the reports of the calls the
    /// backlog says are due (see [`MissedReportPolicy`]) and applies those the provider has.
    ///
    /// A call whose report does not come back (not analysed yet, unknown to the provider, a
    /// provider error) is tried again after a wait that doubles with each try, and given up
    /// on after `max_attempts` tries or once its next try would fall outside the window; so a
    /// call that never gets a report cannot hold back newer ones or make the provider be asked
    /// the same thing every round. When the provider refuses a request (a bad key, say), the
    /// round stops there: every other request would be refused the same way.
    ///
    /// # Errors
    /// `Unexpected` on storage failure; provider errors for single calls are counted as
    /// fruitless tries.
    pub async fn fetch_missed_reports(
        &self,
        policy: &MissedReportPolicy,
    ) -> Result<MissedReportRound, AnalysisError> {
        let now = self.clock.now();
        let query = ReportBacklogQuery {
            ended_before: now - policy.grace,
            ended_after: now - policy.window,
            now,
            limit: policy.batch,
        };
        let waiting = self.calls.calls_awaiting_report(&query).await?;
        let mut round = MissedReportRound::default();
        for AwaitingReport {
            call,
            fetch_attempts,
        } in waiting
        {
            let Some(conversation) = call.data.conversation_id.as_ref() else {
                continue;
            };
            let ended = call.data.end_time.unwrap_or(call.data.start_time);
            // Out of tries or past the window under the current settings (they may have
            // changed since the last try): given up on without asking the provider. A retry
            // scheduled at the window's edge comes due a round later: one grace of slack.
            if fetch_attempts >= policy.max_attempts || ended + policy.grace < query.ended_after {
                if self
                    .calls
                    .record_report_fetch(&call.id, fetch_attempts, fetch_attempts, None)
                    .await?
                {
                    round.given_up += 1;
                }
                continue;
            }
            let fetched = self.agent.fetch_report(conversation).await;
            if matches!(fetched, Err(VoiceAgentError::Rejected(_))) {
                // Most likely the provider refuses us (a revoked key), not this call: no try
                // is charged to it, so an outage does not use up every call's tries. It is put
                // off by one grace all the same, so that a refusal of this call alone does not
                // hold back the others; and the round ends.
                if self
                    .calls
                    .record_report_fetch(
                        &call.id,
                        fetch_attempts,
                        fetch_attempts,
                        Some(now + policy.grace),
                    )
                    .await?
                {
                    round.deferred += 1;
                }
                round.refused = true;
                break;
            }
            if let Ok(Some(report)) = fetched
                && let ReportOutcome::Applied { call_id, .. } = self.apply_report(&report).await?
                && call_id == call.id
            {
                round.completed += 1;
                continue;
            }
            // No report for this call: not analysed yet, unknown to the provider, an error, or
            // a report that found another call. Try again later, if at all.
            let attempts = fetch_attempts.saturating_add(1);
            let next = now + policy.backoff(attempts);
            let next_at =
                (attempts < policy.max_attempts && next <= ended + policy.window).then_some(next);
            if self
                .calls
                .record_report_fetch(&call.id, fetch_attempts, attempts, next_at)
                .await?
            {
                if next_at.is_some() {
                    round.deferred += 1;
                } else {
                    round.given_up += 1;
                }
            }
        }
        Ok(round)
    }
}

/// How the fallback for missed webhooks works through the calls without a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedReportPolicy {
    /// A call is first tried this long after it ended (the webhook's chance to come first).
    /// Also the wait after the first fruitless try; each further one doubles it.
    pub grace: chrono::Duration,
    /// Calls that ended longer ago than this are never tried (again).
    pub window: chrono::Duration,
    /// The most tries per call.
    pub max_attempts: u32,
    /// The longest wait between two tries.
    pub max_backoff: chrono::Duration,
    /// The most calls tried per round.
    pub batch: u32,
}

impl MissedReportPolicy {
    /// The wait after the `attempts`-th fruitless try (counting from 1): `grace * 2^(attempts
    /// - 1)`, at most `max_backoff`.
    pub fn backoff(&self, attempts: u32) -> chrono::Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.grace
            .checked_mul(1_i32 << doublings)
            .map_or(self.max_backoff, |wait| wait.min(self.max_backoff))
    }
}

/// What one round of [`PostCallAnalysis::fetch_missed_reports`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissedReportRound {
    /// Calls completed with a fetched report.
    pub completed: usize,
    /// Calls tried without getting their report, due again later.
    pub deferred: usize,
    /// Calls given up on: out of tries, or past the window.
    pub given_up: usize,
    /// The provider refused a request, which ended the round early.
    pub refused: bool,
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
        // A call the bridge never recorded a conversation for (it dropped before the agent's
        // metadata): the call id the report carries finds it.
        let store = Arc::new(Mutex::new(Some(call_fixture(
            "c1",
            "call_1",
            CallStatus::Completed,
        ))));
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
        assert_eq!(
            stored(&store).data.conversation_id,
            Some(ConversationId::parse("conv_other").expect("valid"))
        );
    }

    #[tokio::test]
    async fn events_of_another_conversation_carrying_the_call_id_change_nothing() {
        // An agent connection prepared on one replica and left unused when the stream landed
        // on another still carries the call id; its events must not touch the bridged call.
        let store = bridged_call();
        let analysis = service(store.clone());
        analysis
            .apply_report(&report("conv_1", 1, "interested"))
            .await
            .expect("ok");
        let before = stored(&store);

        let mut unused = report("conv_unused", 5, "not-interested");
        unused.call_id = Some(CallId::parse("call_1").expect("valid"));
        unused.summary = None;
        assert_eq!(
            analysis.apply_report(&unused).await.expect("ok"),
            ReportOutcome::OtherConversation {
                call_id: CallId::parse("call_1").expect("valid")
            }
        );
        let failure = InitiationFailure {
            conversation_id: Some(ConversationId::parse("conv_unused").expect("valid")),
            call_id: Some(CallId::parse("call_1").expect("valid")),
            call_sid: None,
            reason: "closed before it started".into(),
            event_at: fixed_now(),
        };
        assert!(matches!(
            analysis
                .apply_initiation_failure(&failure)
                .await
                .expect("ok"),
            ReportOutcome::OtherConversation { .. }
        ));
        assert_eq!(stored(&store), before, "nothing written");
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

    mod missed_reports {
        use std::collections::HashMap;

        use super::*;
        use crate::ports::MockCallRepository;

        /// When a stored call is next due for a fetch.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Next {
            Untried,
            At(crate::Timestamp),
            Never,
        }

        #[derive(Debug, Clone)]
        struct Entry {
            call: Call,
            attempts: u32,
            next: Next,
        }

        type Store = Arc<Mutex<Vec<Entry>>>;

        /// What the provider answers for a conversation.
        #[derive(Debug, Clone, Copy)]
        enum Answer {
            Report,
            NotFound,
            Failing,
            Refused,
        }

        struct World {
            store: Store,
            now: Arc<Mutex<crate::Timestamp>>,
            asked: Arc<Mutex<Vec<String>>>,
            analysis: PostCallAnalysis,
        }

        fn policy() -> MissedReportPolicy {
            MissedReportPolicy {
                grace: Duration::minutes(15),
                window: Duration::hours(72),
                max_attempts: 8,
                max_backoff: Duration::hours(2),
                batch: 2,
            }
        }

        /// A call bridged to `conv_<id>` that ended `ended_ago` before [`fixed_now`].
        fn ended(id: &str, ended_ago: Duration) -> Entry {
            let mut call = call_fixture("c1", id, CallStatus::Completed);
            call.data.end_time = Some(fixed_now() - ended_ago);
            call.data.conversation_id =
                Some(ConversationId::parse(&format!("conv_{id}")).expect("valid"));
            Entry {
                call,
                attempts: 0,
                next: Next::Untried,
            }
        }

        /// A repository keeping `store` by the backlog contract of the port.
        fn repository(store: &Store) -> MockCallRepository {
            let mut calls = MockCallRepository::new();
            let s = store.clone();
            calls.expect_calls_awaiting_report().returning(move |q| {
                let entries = s.lock().expect("lock").clone();
                let waiting = |e: &&Entry| {
                    e.call.details.analysis_at.is_none()
                        && e.call.data.conversation_id.is_some()
                        && e.call.data.status().is_terminal()
                };
                let end = |e: &Entry| e.call.data.end_time.expect("ended");
                let mut untried: Vec<Entry> = entries
                    .iter()
                    .filter(waiting)
                    .filter(|e| e.next == Next::Untried)
                    .filter(|e| end(e) >= q.ended_after && end(e) < q.ended_before)
                    .cloned()
                    .collect();
                untried.sort_by_key(|e| (end(e), e.call.id.clone()));
                let mut due: Vec<(crate::Timestamp, Entry)> = entries
                    .iter()
                    .filter(waiting)
                    .filter_map(|e| match e.next {
                        Next::At(at) if at <= q.now => Some((at, e.clone())),
                        _ => None,
                    })
                    .collect();
                due.sort_by_key(|(at, e)| (*at, end(e), e.call.id.clone()));
                Ok(untried
                    .into_iter()
                    .chain(due.into_iter().map(|(_, e)| e))
                    .take(usize::try_from(q.limit).expect("small"))
                    .map(|e| AwaitingReport {
                        call: e.call,
                        fetch_attempts: e.attempts,
                    })
                    .collect())
            });
            let s = store.clone();
            calls
                .expect_record_report_fetch()
                .returning(move |id, seen, attempts, next_at| {
                    let mut entries = s.lock().expect("lock");
                    let Some(entry) = entries.iter_mut().find(|e| {
                        &e.call.id == id
                            && e.attempts == seen
                            && e.call.details.analysis_at.is_none()
                    }) else {
                        return Ok(false);
                    };
                    entry.attempts = attempts;
                    entry.next = next_at.map_or(Next::Never, Next::At);
                    Ok(true)
                });
            let s = store.clone();
            calls.expect_find_by_conversation().returning(move |conv| {
                Ok(s.lock()
                    .expect("lock")
                    .iter()
                    .find(|e| e.call.data.conversation_id.as_ref() == Some(conv))
                    .map(|e| e.call.clone()))
            });
            let s = store.clone();
            calls.expect_update().returning(move |call| {
                let mut entries = s.lock().expect("lock");
                let Some(entry) = entries.iter_mut().find(|e| e.call.id == call.id) else {
                    return Ok(CasOutcome::Missing);
                };
                if entry.call.version != call.version {
                    return Ok(CasOutcome::Conflict);
                }
                entry.call = Call {
                    version: call.version + 1,
                    ..call.clone()
                };
                Ok(CasOutcome::Updated)
            });
            calls
        }

        fn world(entries: Vec<Entry>, answers: &[(&str, Answer)]) -> World {
            let store: Store = Arc::new(Mutex::new(entries));
            let now = Arc::new(Mutex::new(fixed_now()));
            let asked = Arc::new(Mutex::new(Vec::new()));
            let mut clock = MockClock::new();
            let n = now.clone();
            clock
                .expect_now()
                .returning(move || *n.lock().expect("lock"));
            let answers: HashMap<String, Answer> = answers
                .iter()
                .map(|(id, answer)| (format!("conv_{id}"), *answer))
                .collect();
            let mut agent = MockVoiceAgent::new();
            let a = asked.clone();
            agent.expect_fetch_report().returning(move |conv| {
                a.lock().expect("lock").push(conv.as_str().to_owned());
                match answers
                    .get(conv.as_str())
                    .copied()
                    .unwrap_or(Answer::NotFound)
                {
                    Answer::Report => {
                        let mut r = report(conv.as_str(), 0, "interested");
                        r.event_at = fixed_now();
                        Ok(Some(r))
                    }
                    Answer::NotFound => Ok(None),
                    Answer::Failing => Err(VoiceAgentError::Unavailable(anyhow::anyhow!("503"))),
                    Answer::Refused => Err(VoiceAgentError::Rejected("HTTP 401".into())),
                }
            });
            World {
                analysis: PostCallAnalysis::new(
                    Arc::new(repository(&store)),
                    Arc::new(agent),
                    Arc::new(clock),
                    AnalysisMapping::default(),
                ),
                store,
                now,
                asked,
            }
        }

        impl World {
            async fn round(&self, policy: &MissedReportPolicy) -> MissedReportRound {
                self.analysis
                    .fetch_missed_reports(policy)
                    .await
                    .expect("a round")
            }

            fn advance(&self, by: Duration) {
                *self.now.lock().expect("lock") += by;
            }

            /// The conversations asked for since the last call, in order.
            fn asked(&self) -> Vec<String> {
                std::mem::take(&mut *self.asked.lock().expect("lock"))
            }

            fn entry(&self, id: &str) -> Entry {
                self.store
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|e| e.call.id.as_str() == id)
                    .cloned()
                    .expect("stored")
            }
        }

        #[test]
        fn the_wait_doubles_from_the_grace_period_up_to_the_cap_without_overflowing() {
            let policy = policy();
            let waits: Vec<i64> = (1..=6).map(|n| policy.backoff(n).num_minutes()).collect();
            assert_eq!(waits, [15, 30, 60, 120, 120, 120]);
            assert_eq!(policy.backoff(0), Duration::minutes(15));
            assert_eq!(policy.backoff(u32::MAX), Duration::hours(2));
        }

        #[tokio::test]
        async fn calls_that_never_get_a_report_no_longer_block_newer_ones() {
            // Two old calls fill the batch; the provider never has their reports.
            let w = world(
                vec![
                    ended("old1", Duration::hours(3)),
                    ended("old2", Duration::hours(2)),
                    ended("new", Duration::minutes(20)),
                ],
                &[
                    ("old1", Answer::NotFound),
                    ("old2", Answer::Failing),
                    ("new", Answer::Report),
                ],
            );
            let first = w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_old1", "conv_old2"]);
            assert_eq!(
                first,
                MissedReportRound {
                    deferred: 2,
                    ..MissedReportRound::default()
                }
            );
            // The next round, a minute later, reaches the newer call and leaves the old ones be.
            w.advance(Duration::minutes(1));
            let second = w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_new"]);
            assert_eq!(second.completed, 1);
            assert!(w.entry("new").call.details.analysis_at.is_some());
            // Nothing is due until the old calls' waits are over; then they are asked again.
            w.advance(Duration::minutes(5));
            assert_eq!(w.round(&policy()).await, MissedReportRound::default());
            assert!(w.asked().is_empty());
            w.advance(Duration::minutes(10));
            w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_old1", "conv_old2"]);
        }

        #[tokio::test]
        async fn the_wait_between_tries_grows_and_the_tries_stop_at_the_cap() {
            let w = world(vec![ended("lost", Duration::minutes(20))], &[]);
            let policy = policy();
            let mut waits = Vec::new();
            for attempt in 1..=policy.max_attempts {
                let round = w.round(&policy).await;
                assert_eq!(w.asked(), ["conv_lost"], "try {attempt}");
                let entry = w.entry("lost");
                assert_eq!(entry.attempts, attempt);
                match entry.next {
                    Next::At(at) => {
                        assert_eq!(round.deferred, 1);
                        let wait = at - *w.now.lock().expect("lock");
                        waits.push(wait.num_minutes());
                        // Just before the wait is over, nothing is asked.
                        w.advance(wait - Duration::seconds(1));
                        w.round(&policy).await;
                        assert!(w.asked().is_empty(), "try {attempt}");
                        w.advance(Duration::seconds(1));
                    }
                    other => {
                        assert_eq!(attempt, policy.max_attempts, "{other:?}");
                        assert_eq!(other, Next::Never);
                        assert_eq!(round.given_up, 1);
                    }
                }
            }
            assert_eq!(waits, [15, 30, 60, 120, 120, 120, 120]);
            // Given up: never asked again, however late.
            w.advance(Duration::hours(48));
            w.round(&policy).await;
            assert!(w.asked().is_empty());
        }

        #[tokio::test]
        async fn a_call_is_given_up_once_its_next_try_would_fall_outside_the_window() {
            // Ended 71 h 50 min ago: one try fits in the 72 h window, the 15-minute wait does not.
            let w = world(
                vec![ended("late", Duration::hours(72) - Duration::minutes(10))],
                &[],
            );
            let round = w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_late"]);
            assert_eq!(round.given_up, 1);
            assert_eq!(w.entry("late").next, Next::Never);
            assert_eq!(w.entry("late").attempts, 1);
        }

        #[tokio::test]
        async fn a_due_call_past_the_window_or_out_of_tries_is_given_up_without_asking() {
            // As after the settings were lowered: tried before, due now, but past the window or
            // out of tries under the current settings.
            let mut old = ended("old", Duration::hours(80));
            old.attempts = 3;
            old.next = Next::At(fixed_now() - Duration::minutes(1));
            let mut spent = ended("spent", Duration::hours(10));
            spent.attempts = 8;
            spent.next = Next::At(fixed_now() - Duration::minutes(1));
            let w = world(
                vec![old, spent],
                &[("old", Answer::Report), ("spent", Answer::Report)],
            );
            let round = w.round(&policy()).await;
            assert!(w.asked().is_empty());
            assert_eq!(round.given_up, 2);
            assert_eq!(w.entry("old").next, Next::Never);
            assert_eq!(w.entry("old").attempts, 3);
            assert_eq!(w.entry("spent").next, Next::Never);
        }

        #[tokio::test]
        async fn a_refusing_provider_ends_the_round_after_one_request() {
            let w = world(
                vec![
                    ended("a", Duration::hours(3)),
                    ended("b", Duration::hours(2)),
                ],
                &[("a", Answer::Refused), ("b", Answer::Refused)],
            );
            let round = w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_a"]);
            assert!(round.refused);
            assert_eq!(round.deferred, 1);
            // A refusal is not the call's fault: no try is charged to either call.
            assert_eq!(w.entry("a").attempts, 0);
            assert_eq!(w.entry("b").attempts, 0);
            // The refused call is put off all the same: the next round starts with the other.
            w.advance(Duration::minutes(1));
            w.round(&policy()).await;
            assert_eq!(w.asked(), ["conv_b"]);
        }
    }
}
