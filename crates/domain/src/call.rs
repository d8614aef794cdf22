//! The call aggregate: `callData` (what happened on the line) and `callDetails` (what the
//! conversation achieved), as in the API contract.

use std::fmt;

use crate::Timestamp;
use crate::call_status::{CallStatus, StatusChange};
use crate::values::{
    AgentId, BoundedText, CallId, CallSid, ClientId, ConversationId, DynamicVariables, PhoneNumber,
};

/// How a conversation ended for the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallOutcome {
    Interested,
    NotInterested,
    Callback,
    Unavailable,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callOutcome must be one of interested, not-interested, callback, unavailable, unknown")]
pub struct CallOutcomeError;

impl CallOutcome {
    pub const ALL: [CallOutcome; 5] = [
        Self::Interested,
        Self::NotInterested,
        Self::Callback,
        Self::Unavailable,
        Self::Unknown,
    ];

    /// # Errors
    /// [`CallOutcomeError`] for a value outside the set.
    pub fn parse(raw: &str) -> Result<Self, CallOutcomeError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == raw)
            .ok_or(CallOutcomeError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interested => "interested",
            Self::NotInterested => "not-interested",
            Self::Callback => "callback",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The callee's attitude as the analysis judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callSentiment must be one of positive, neutral, negative, unknown")]
pub struct SentimentError;

impl Sentiment {
    pub const ALL: [Sentiment; 4] = [Self::Positive, Self::Neutral, Self::Negative, Self::Unknown];

    /// # Errors
    /// [`SentimentError`] for a value outside the set.
    pub fn parse(raw: &str) -> Result<Self, SentimentError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or(SentimentError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Neutral => "neutral",
            Self::Negative => "negative",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Sentiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits on the free-text fields of a call, in characters.
pub mod limits {
    pub const REQUEST_ID: usize = 128;
    pub const RECORDING_URL: usize = 2048;
    pub const ERROR_CODE: usize = 32;
    pub const ERROR_MESSAGE: usize = 1000;
    pub const ANSWERED_BY: usize = 32;
    pub const SUMMARY: usize = 20_000;
    pub const TRANSCRIPT: usize = 500_000;
    pub const NEXT_ACTION: usize = 200;
    pub const AGENT_NOTES: usize = 5000;
    pub const FIRST_MESSAGE: usize = 1000;
    /// The longest call duration accepted, in seconds (a week; Twilio caps calls at 24 h).
    pub const MAX_DURATION_SECS: u32 = 7 * 24 * 3600;
    pub const END_REASON: usize = 500;
    pub const CALL_SUCCESSFUL: usize = 32;
}

/// Error code recorded when outcall itself could not learn whether the provider accepted a
/// call (timeout, connection lost). Such a failure is provisional: a later status callback from
/// the provider still applies, because the call may in fact have been placed.
pub const TRANSPORT_FAILURE_CODE: &str = "outcall-transport";

/// What happened on the line (`callData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallData {
    pub call_sid: Option<CallSid>,
    pub request_id: Option<BoundedText>,
    pub phone: PhoneNumber,
    pub from: Option<PhoneNumber>,
    pub agent_id: Option<AgentId>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    /// Seconds on the line, as Twilio reports it.
    pub duration: Option<u32>,
    status: CallStatus,
    pub recording_url: Option<BoundedText>,
    pub error_code: Option<BoundedText>,
    pub error_message: Option<BoundedText>,
    pub conversation_id: Option<ConversationId>,
    pub answered_by: Option<BoundedText>,
    /// The final SIP response code Twilio reported (e.g. 487 when ringing timed out).
    pub sip_response_code: Option<u16>,
    /// The agent's opening line requested for this call, if any.
    pub first_message: Option<BoundedText>,
    /// Per-call values handed to the voice agent.
    pub dynamic_variables: DynamicVariables,
    /// Why the call ended, when outcall knows more than the status says (the agent hung up,
    /// the agent's audio format was unusable, the stream dropped, ...).
    pub end_reason: Option<BoundedText>,
}

impl CallData {
    /// A call record in `status` with every optional field unset. The status given here is
    /// the record's starting point (history imports may start in any status); afterwards it
    /// only changes through [`Call::apply_status`].
    pub fn new(phone: PhoneNumber, start_time: Timestamp, status: CallStatus) -> Self {
        Self {
            call_sid: None,
            request_id: None,
            phone,
            from: None,
            agent_id: None,
            start_time,
            end_time: None,
            duration: None,
            status,
            recording_url: None,
            error_code: None,
            error_message: None,
            conversation_id: None,
            answered_by: None,
            sip_response_code: None,
            first_message: None,
            dynamic_variables: DynamicVariables::default(),
            end_reason: None,
        }
    }

    pub fn status(&self) -> CallStatus {
        self.status
    }
}

/// What the conversation achieved (`callDetails`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallDetails {
    pub outcome: Option<CallOutcome>,
    pub summary: Option<BoundedText>,
    pub transcript: Option<BoundedText>,
    pub sentiment: Option<Sentiment>,
    pub next_action: Option<BoundedText>,
    pub next_action_date: Option<Timestamp>,
    pub agent_notes: Option<BoundedText>,
    /// The agent provider's verdict: `success`, `failure` or `unknown`.
    pub call_successful: Option<BoundedText>,
    /// The agent provider's measure of the conversation, in seconds.
    pub agent_duration_secs: Option<u32>,
    /// When the post-call report that filled these details was emitted; an older report
    /// never overwrites a newer one.
    pub analysis_at: Option<Timestamp>,
}

/// One call in a client's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub client_id: ClientId,
    pub data: CallData,
    pub details: CallDetails,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version: every stored change increments it, and a write
    /// succeeds only against the version it read (see `CallRepository::update`).
    pub version: i64,
}

/// A call record to add to a client's history.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub data: CallData,
    pub details: CallDetails,
}

/// A partial change to a call. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallPatch {
    pub call_sid: Option<CallSid>,
    pub status: Option<CallStatus>,
    pub end_time: Option<Timestamp>,
    pub duration: Option<u32>,
    pub recording_url: Option<BoundedText>,
    pub conversation_id: Option<ConversationId>,
    pub outcome: Option<CallOutcome>,
    pub summary: Option<BoundedText>,
    pub transcript: Option<BoundedText>,
    pub sentiment: Option<Sentiment>,
    pub next_action: Option<BoundedText>,
    pub next_action_date: Option<Timestamp>,
    pub agent_notes: Option<BoundedText>,
}

/// One call-progress event from the telephony provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusEvent {
    pub status: Option<CallStatus>,
    pub call_sid: Option<CallSid>,
    /// Seconds on the line (`CallDuration`), on terminal events.
    pub duration: Option<u32>,
    pub answered_by: Option<BoundedText>,
    pub recording_url: Option<BoundedText>,
    pub sip_response_code: Option<u16>,
}

/// A status in a patch that the rules refuse (e.g. `ringing` after `completed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call status cannot change from {from} to {to}")]
pub struct StatusRegression {
    pub from: CallStatus,
    pub to: CallStatus,
}

impl Call {
    /// Moves the call to `next` if the status rules allow it; stale and repeated statuses
    /// leave the call untouched. Reaching a terminal status stamps the end time unless one
    /// is already known.
    pub fn apply_status(&mut self, next: CallStatus, at: Timestamp) -> StatusChange {
        let change = self.data.status.transition(next);
        if change == StatusChange::Advance {
            self.data.status = next;
            if next.is_terminal() && self.data.end_time.is_none() {
                self.data.end_time = Some(at);
            }
            self.updated_at = at;
        }
        change
    }

    /// Applies a provider's call-progress event through the status rules and returns whether
    /// anything changed. Stale events change nothing; repeated ones update the details they
    /// carry (duration, answered-by, recording, SIP code) and leave the others alone; a call sid
    /// is recorded whenever the call has none yet. A provisional failure (see [`TRANSPORT_FAILURE_CODE`]) yields to whatever the
    /// provider reports, since the call may have been placed after all.
    pub fn apply_status_event(&mut self, event: &StatusEvent, at: Timestamp) -> bool {
        let mut changed = false;
        if let (None, Some(sid)) = (&self.data.call_sid, &event.call_sid) {
            self.data.call_sid = Some(sid.clone());
            changed = true;
        }
        let provisional = self.data.status == CallStatus::Failed
            && self
                .data
                .error_code
                .as_ref()
                .is_some_and(|c| c.as_str() == TRANSPORT_FAILURE_CODE);
        let change = match event.status {
            None => StatusChange::Repeat,
            Some(next) if provisional && next != CallStatus::Failed => {
                self.data.status = next;
                self.data.end_time = next.is_terminal().then_some(at);
                self.updated_at = at;
                StatusChange::Advance
            }
            Some(next) => self.apply_status(next, at),
        };
        match change {
            StatusChange::Stale => return changed,
            StatusChange::Advance => changed = true,
            StatusChange::Repeat => {}
        }
        changed |= fill(&mut self.data.duration, &event.duration);
        changed |= fill(&mut self.data.answered_by, &event.answered_by);
        changed |= fill(&mut self.data.recording_url, &event.recording_url);
        changed |= fill(&mut self.data.sip_response_code, &event.sip_response_code);
        if changed {
            self.updated_at = at;
        }
        changed
    }

    /// Fills the details from a post-call report unless a report at least as recent was
    /// applied already (redelivery, or a late older report). Returns whether it applied.
    pub fn apply_report(
        &mut self,
        report: &crate::analysis::PostCallReport,
        mapped: &crate::analysis::MappedDetails,
        at: Timestamp,
    ) -> bool {
        if self
            .details
            .analysis_at
            .is_some_and(|seen| seen >= report.event_at)
        {
            return false;
        }
        let text = |value: &str, max: usize| BoundedText::parse(&truncate(value, max), max).ok();
        let d = &mut self.details;
        d.analysis_at = Some(report.event_at);
        if let Some(summary) = &report.summary {
            d.summary = text(summary, limits::SUMMARY);
        }
        let transcript = crate::analysis::render_transcript(&report.transcript);
        if !transcript.is_empty() {
            d.transcript = text(&transcript, limits::TRANSCRIPT);
        }
        if mapped.outcome.is_some() {
            d.outcome = mapped.outcome;
        }
        if mapped.sentiment.is_some() {
            d.sentiment = mapped.sentiment;
        }
        if let Some(action) = &mapped.next_action {
            d.next_action = text(action, limits::NEXT_ACTION);
        }
        if mapped.next_action_date.is_some() {
            d.next_action_date = mapped.next_action_date;
        }
        if let Some(notes) = &mapped.agent_notes {
            d.agent_notes = text(notes, limits::AGENT_NOTES);
        }
        if let Some(verdict) = &report.call_successful {
            d.call_successful = text(verdict, limits::CALL_SUCCESSFUL);
        }
        if report.duration_secs.is_some() {
            d.agent_duration_secs = report.duration_secs;
        }
        if self.data.conversation_id.is_none() {
            self.data.conversation_id = Some(report.conversation_id.clone());
        }
        self.updated_at = at;
        true
    }

    /// Applies an explicit change (an admin's edit). A status that would move the call
    /// backwards is refused as a whole, so nothing is half-applied.
    ///
    /// # Errors
    /// [`StatusRegression`] when `patch.status` is stale for the current status.
    pub fn apply_patch(
        &mut self,
        patch: &CallPatch,
        at: Timestamp,
    ) -> Result<(), StatusRegression> {
        if let Some(next) = patch.status {
            let from = self.data.status;
            if from.transition(next) == StatusChange::Stale {
                return Err(StatusRegression { from, to: next });
            }
        }
        // End time first, so a terminal status given with an explicit end time keeps it.
        if let Some(end) = patch.end_time {
            self.data.end_time = Some(end);
        }
        if let Some(next) = patch.status {
            self.apply_status(next, at);
        }
        let data = &mut self.data;
        set(&mut data.call_sid, &patch.call_sid);
        set(&mut data.duration, &patch.duration);
        set(&mut data.recording_url, &patch.recording_url);
        set(&mut data.conversation_id, &patch.conversation_id);
        let details = &mut self.details;
        set(&mut details.outcome, &patch.outcome);
        set(&mut details.summary, &patch.summary);
        set(&mut details.transcript, &patch.transcript);
        set(&mut details.sentiment, &patch.sentiment);
        set(&mut details.next_action, &patch.next_action);
        set(&mut details.next_action_date, &patch.next_action_date);
        set(&mut details.agent_notes, &patch.agent_notes);
        self.updated_at = at;
        Ok(())
    }
}

/// The first `max` characters of `value` (provider texts are cut, not refused).
fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// Sets `field` to `value` when a value is given and differs; reports whether it changed.
fn fill<T: Clone + PartialEq>(field: &mut Option<T>, value: &Option<T>) -> bool {
    match value {
        Some(v) if field.as_ref() != Some(v) => {
            *field = Some(v.clone());
            true
        }
        _ => false,
    }
}

fn set<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
    if let Some(value) = value {
        *field = Some(value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> Timestamp {
        chrono::Utc
            .timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn call(status: CallStatus) -> Call {
        Call {
            id: CallId::parse("call-1").expect("valid"),
            client_id: ClientId::parse("client-1").expect("valid"),
            data: CallData::new(
                PhoneNumber::parse("+12125551234").expect("valid"),
                at(0),
                status,
            ),
            details: CallDetails::default(),
            created_at: at(0),
            updated_at: at(0),
            version: 0,
        }
    }

    #[test]
    fn reaching_a_terminal_status_stamps_the_end_time_once() {
        let mut c = call(CallStatus::InProgress);
        assert_eq!(
            c.apply_status(CallStatus::Completed, at(60)),
            StatusChange::Advance
        );
        assert_eq!(c.data.end_time, Some(at(60)));
        assert_eq!(
            c.apply_status(CallStatus::Failed, at(90)),
            StatusChange::Stale
        );
        assert_eq!(c.data.status(), CallStatus::Completed);
        assert_eq!(c.data.end_time, Some(at(60)));
    }

    #[test]
    fn a_patch_with_a_backwards_status_changes_nothing() {
        let mut c = call(CallStatus::Completed);
        let before = c.clone();
        let patch = CallPatch {
            status: Some(CallStatus::Ringing),
            outcome: Some(CallOutcome::Interested),
            ..CallPatch::default()
        };
        assert_eq!(
            c.apply_patch(&patch, at(5)),
            Err(StatusRegression {
                from: CallStatus::Completed,
                to: CallStatus::Ringing
            })
        );
        assert_eq!(c, before);
    }

    #[test]
    fn a_patch_keeps_an_explicit_end_time_and_sets_only_given_fields() {
        let mut c = call(CallStatus::InProgress);
        c.details.summary = Some(BoundedText::parse("kept", 10).expect("valid"));
        let patch = CallPatch {
            status: Some(CallStatus::Completed),
            end_time: Some(at(900)),
            duration: Some(900),
            outcome: Some(CallOutcome::Callback),
            ..CallPatch::default()
        };
        c.apply_patch(&patch, at(1000)).expect("forward move");
        assert_eq!(c.data.status(), CallStatus::Completed);
        assert_eq!(c.data.end_time, Some(at(900)));
        assert_eq!(c.data.duration, Some(900));
        assert_eq!(c.details.outcome, Some(CallOutcome::Callback));
        assert_eq!(
            c.details.summary.as_ref().map(BoundedText::as_str),
            Some("kept")
        );
    }

    fn event(status: CallStatus) -> StatusEvent {
        StatusEvent {
            status: Some(status),
            ..StatusEvent::default()
        }
    }

    #[test]
    fn status_events_advance_ignore_stale_and_fill_missing_details_on_repeats() {
        let mut c = call(CallStatus::Queued);
        assert!(c.apply_status_event(&event(CallStatus::InProgress), at(10)));
        assert!(
            !c.apply_status_event(&event(CallStatus::Ringing), at(11)),
            "late ringing is stale"
        );
        let completed = StatusEvent {
            duration: Some(42),
            ..event(CallStatus::Completed)
        };
        assert!(c.apply_status_event(&event(CallStatus::Completed), at(60)));
        assert_eq!(c.data.duration, None);
        assert!(
            c.apply_status_event(&completed, at(61)),
            "a repeat fills in the duration"
        );
        assert!(
            !c.apply_status_event(&completed, at(62)),
            "the same event twice changes nothing"
        );
        assert_eq!(
            (c.data.status(), c.data.duration, c.data.end_time),
            (CallStatus::Completed, Some(42), Some(at(60)))
        );
        let stale = StatusEvent {
            duration: Some(99),
            ..event(CallStatus::NoAnswer)
        };
        assert!(!c.apply_status_event(&stale, at(70)));
        assert_eq!(c.data.duration, Some(42));
    }

    #[test]
    fn a_provisional_transport_failure_yields_to_the_providers_report() {
        let mut c = call(CallStatus::Failed);
        c.data.error_code = BoundedText::parse(TRANSPORT_FAILURE_CODE, 32).ok();
        assert!(c.apply_status_event(&event(CallStatus::Ringing), at(5)));
        assert_eq!(c.data.status(), CallStatus::Ringing);
        assert_eq!(c.data.end_time, None);
        let mut real = call(CallStatus::Failed);
        assert!(
            !real.apply_status_event(&event(CallStatus::Ringing), at(5)),
            "a reported failure is final"
        );
    }

    #[test]
    fn outcome_and_sentiment_sets_are_exact() {
        for o in CallOutcome::ALL {
            assert_eq!(CallOutcome::parse(o.as_str()), Ok(o));
        }
        for s in Sentiment::ALL {
            assert_eq!(Sentiment::parse(s.as_str()), Ok(s));
        }
        assert_eq!(CallOutcome::parse("Interested"), Err(CallOutcomeError));
        assert_eq!(CallOutcome::parse("not_interested"), Err(CallOutcomeError));
        assert_eq!(Sentiment::parse("happy"), Err(SentimentError));
    }
}
