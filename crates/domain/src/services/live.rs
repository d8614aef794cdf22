use std::sync::Arc;

use crate::call::{Call, StatusEvent, limits};
use crate::call_status::CallStatus;
use crate::ports::{
    CallRepository, CasOutcome, ClientRepository, Clock, RepositoryError, Telephony,
};
use crate::values::{AgentId, BoundedText, CallId, ConversationId, DynamicValue, DynamicVariables};

/// Everything the media bridge needs to start the agent side of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamContext {
    pub call_id: CallId,
    pub agent_id: AgentId,
    /// The call's own variables plus outcall's: `outcall_call_id`, `client_business_name`,
    /// `today` (YYYY-MM-DD, UTC).
    pub dynamic_variables: DynamicVariables,
    pub first_message: Option<BoundedText>,
}

/// Why a media stream may not be bridged.
#[derive(Debug, thiserror::Error)]
pub enum StreamRefusal {
    #[error("no such call")]
    UnknownCall,
    #[error("the call has already ended")]
    CallEnded,
    #[error("the call has no agent")]
    NoAgent,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for StreamRefusal {
    fn from(err: RepositoryError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("reading a call for its media stream"))
    }
}

/// What the media bridge records about a live call.
#[derive(Clone)]
pub struct LiveCalls {
    calls: Arc<dyn CallRepository>,
    clients: Arc<dyn ClientRepository>,
    telephony: Arc<dyn Telephony>,
    clock: Arc<dyn Clock>,
}

const MAX_CAS_ATTEMPTS: usize = 64;

impl LiveCalls {
    pub fn new(
        calls: Arc<dyn CallRepository>,
        clients: Arc<dyn ClientRepository>,
        telephony: Arc<dyn Telephony>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            calls,
            clients,
            telephony,
            clock,
        }
    }

    /// Checks that a stream names a live call (and, when the stream says which agent, that it
    /// is the call's agent) and gathers what the agent side needs.
    ///
    /// # Errors
    /// `UnknownCall`, `CallEnded`, `NoAgent` (or a different agent), `Unexpected`.
    pub async fn claim_stream(
        &self,
        call_id: &CallId,
        claimed_agent: Option<&str>,
    ) -> Result<StreamContext, StreamRefusal> {
        let call = self
            .calls
            .find_by_id(call_id)
            .await?
            .ok_or(StreamRefusal::UnknownCall)?;
        if call.data.status().is_terminal() {
            return Err(StreamRefusal::CallEnded);
        }
        let agent_id = call.data.agent_id.clone().ok_or(StreamRefusal::NoAgent)?;
        if claimed_agent.is_some_and(|claimed| claimed != agent_id.as_str()) {
            return Err(StreamRefusal::NoAgent);
        }
        let business = self
            .clients
            .find(&call.client_id)
            .await?
            .and_then(|client| client.meta.business_name.map(BoundedText::into_string));
        let today = self.clock.now().format("%Y-%m-%d").to_string();
        let mut entries: Vec<(String, DynamicValue)> = call
            .data
            .dynamic_variables
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        entries.push((
            "outcall_call_id".into(),
            DynamicValue::Text(call.id.as_str().to_owned()),
        ));
        entries.push((
            "client_business_name".into(),
            DynamicValue::Text(business.unwrap_or_default()),
        ));
        entries.push(("today".into(), DynamicValue::Text(today)));
        // outcall's own variables win over same-named request variables.
        let dynamic_variables = DynamicVariables::new(dedup_last_wins(entries))
            .map_err(|e| StreamRefusal::Unexpected(anyhow::anyhow!("dynamic variables: {e}")))?;
        Ok(StreamContext {
            call_id: call.id,
            agent_id,
            dynamic_variables,
            first_message: call.data.first_message,
        })
    }

    /// Records the agent provider's conversation id on the call.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn record_conversation(
        &self,
        call_id: &CallId,
        conversation: &ConversationId,
    ) -> Result<(), StreamRefusal> {
        self.modify(call_id, |call| {
            if call.data.conversation_id.as_ref() == Some(conversation) {
                return false;
            }
            call.data.conversation_id = Some(conversation.clone());
            true
        })
        .await
    }

    /// Stores the live transcript (replaced later by the post-call report's, if one comes).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn record_transcript(
        &self,
        call_id: &CallId,
        transcript: &str,
    ) -> Result<(), StreamRefusal> {
        let text: String = transcript.chars().take(limits::TRANSCRIPT).collect();
        let Ok(text) = BoundedText::parse(&text, limits::TRANSCRIPT) else {
            return Ok(()); // nothing said yet
        };
        self.modify(call_id, |call| {
            // A post-call report's transcript is authoritative: never overwrite it.
            if call.details.analysis_at.is_some() || call.details.transcript.as_ref() == Some(&text)
            {
                return false;
            }
            call.details.transcript = Some(text.clone());
            true
        })
        .await
    }

    /// Records why the bridged conversation ended (first reason wins).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn record_end(&self, call_id: &CallId, reason: &str) -> Result<(), StreamRefusal> {
        let reason: String = reason.chars().take(limits::END_REASON).collect();
        let Ok(reason) = BoundedText::parse(&reason, limits::END_REASON) else {
            return Ok(());
        };
        self.modify(call_id, |call| {
            if call.data.end_reason.is_some() {
                return false;
            }
            call.data.end_reason = Some(reason.clone());
            true
        })
        .await
    }

    /// Ends the phone call through the telephony provider so the line never stays open after
    /// the agent side is gone. A call that already ended is left alone.
    ///
    /// # Errors
    /// `Unexpected` when the provider cannot be reached.
    pub async fn hang_up(&self, call_id: &CallId) -> Result<(), StreamRefusal> {
        let call = self
            .calls
            .find_by_id(call_id)
            .await?
            .ok_or(StreamRefusal::UnknownCall)?;
        if call.data.status().is_terminal() {
            return Ok(());
        }
        let Some(sid) = call.data.call_sid else {
            return Ok(());
        };
        self.telephony.end_call(&sid).await.map_err(|e| {
            StreamRefusal::Unexpected(anyhow::Error::new(e).context("ending the call"))
        })
    }

    /// Marks a call failed for a reason outcall found (unusable agent audio format, ...), and
    /// ends it at the provider.
    ///
    /// # Errors
    /// `Unexpected` on storage or provider failure.
    pub async fn fail(&self, call_id: &CallId, reason: &str) -> Result<(), StreamRefusal> {
        self.record_end(call_id, reason).await?;
        self.hang_up(call_id).await?;
        let now = self.clock.now();
        self.modify(call_id, |call| {
            call.apply_status_event(
                &StatusEvent {
                    status: Some(CallStatus::Failed),
                    ..StatusEvent::default()
                },
                now,
            )
        })
        .await
    }

    async fn modify(
        &self,
        call_id: &CallId,
        mut change: impl FnMut(&mut Call) -> bool,
    ) -> Result<(), StreamRefusal> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(mut call) = self.calls.find_by_id(call_id).await? else {
                return Err(StreamRefusal::UnknownCall);
            };
            if !change(&mut call) {
                return Ok(());
            }
            call.updated_at = self.clock.now();
            match self.calls.update(&call).await? {
                CasOutcome::Updated => return Ok(()),
                CasOutcome::Conflict => continue,
                CasOutcome::Missing => return Err(StreamRefusal::UnknownCall),
            }
        }
        Err(StreamRefusal::Unexpected(anyhow::anyhow!(
            "call {call_id} kept changing"
        )))
    }
}

/// Keeps the last value of each key, in first-seen order.
fn dedup_last_wins(entries: Vec<(String, DynamicValue)>) -> Vec<(String, DynamicValue)> {
    let mut out: Vec<(String, DynamicValue)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::{MockClientRepository, MockClock, MockTelephony};
    use crate::test_support::{call_fixture, client_fixture, fixed_now, stored_calls};

    fn live(store: Arc<Mutex<Option<Call>>>, telephony: MockTelephony) -> LiveCalls {
        let mut clients = MockClientRepository::new();
        clients.expect_find().returning(|id| {
            let mut client = client_fixture(id.as_str());
            client.meta.business_name = BoundedText::parse("Acme", 200).ok();
            Ok(Some(client))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        LiveCalls::new(
            Arc::new(stored_calls(store)),
            Arc::new(clients),
            Arc::new(telephony),
            Arc::new(clock),
        )
    }

    fn ringing_call() -> Arc<Mutex<Option<Call>>> {
        let mut call = call_fixture("c1", "call_1", CallStatus::InProgress);
        call.data.agent_id = AgentId::parse("agent_1").ok();
        call.data.dynamic_variables = DynamicVariables::new([
            ("name".to_owned(), DynamicValue::Text("Jane".into())),
            ("today".to_owned(), DynamicValue::Text("spoofed".into())),
        ])
        .expect("valid");
        Arc::new(Mutex::new(Some(call)))
    }

    #[tokio::test]
    async fn a_stream_gets_the_call_variables_plus_outcalls_own() {
        let context = live(ringing_call(), MockTelephony::new())
            .claim_stream(&CallId::parse("call_1").expect("valid"), Some("agent_1"))
            .await
            .expect("claimed");
        let vars = &context.dynamic_variables;
        assert_eq!(vars.get("name"), Some(&DynamicValue::Text("Jane".into())));
        assert_eq!(
            vars.get("outcall_call_id"),
            Some(&DynamicValue::Text("call_1".into()))
        );
        assert_eq!(
            vars.get("client_business_name"),
            Some(&DynamicValue::Text("Acme".into()))
        );
        assert_eq!(
            vars.get("today"),
            Some(&DynamicValue::Text("2025-03-20".into())),
            "outcall's value wins"
        );
    }

    #[tokio::test]
    async fn a_stream_for_an_ended_call_or_another_agent_is_refused() {
        let store = ringing_call();
        let calls = live(store.clone(), MockTelephony::new());
        let id = CallId::parse("call_1").expect("valid");
        assert!(matches!(
            calls.claim_stream(&id, Some("agent_other")).await,
            Err(StreamRefusal::NoAgent)
        ));
        if let Some(call) = store.lock().expect("lock").as_mut() {
            call.apply_status(CallStatus::Completed, fixed_now());
        }
        assert!(matches!(
            calls.claim_stream(&id, None).await,
            Err(StreamRefusal::CallEnded)
        ));
    }

    #[tokio::test]
    async fn the_live_transcript_never_replaces_a_post_call_one() {
        let store = ringing_call();
        let calls = live(store.clone(), MockTelephony::new());
        let id = CallId::parse("call_1").expect("valid");
        calls.record_transcript(&id, "Agent: Hi").await.expect("ok");
        if let Some(call) = store.lock().expect("lock").as_mut() {
            call.details.analysis_at = Some(fixed_now());
        }
        calls
            .record_transcript(&id, "Agent: Hi\nUser: later")
            .await
            .expect("ok");
        let call = store.lock().expect("lock").clone().expect("stored");
        assert_eq!(
            call.details.transcript.as_ref().map(BoundedText::as_str),
            Some("Agent: Hi")
        );
    }

    #[tokio::test]
    async fn failing_a_call_ends_it_at_the_provider_and_records_why() {
        let store = ringing_call();
        if let Some(call) = store.lock().expect("lock").as_mut() {
            call.data.call_sid =
                crate::values::CallSid::parse("CA0123456789abcdef0123456789abcdef").ok();
        }
        let mut telephony = MockTelephony::new();
        telephony.expect_end_call().times(1).returning(|_| Ok(()));
        let calls = live(store.clone(), telephony);
        calls
            .fail(
                &CallId::parse("call_1").expect("valid"),
                "agent audio format pcm_16000 is not ulaw_8000",
            )
            .await
            .expect("ok");
        let call = store.lock().expect("lock").clone().expect("stored");
        assert_eq!(call.data.status(), CallStatus::Failed);
        assert!(
            call.data
                .end_reason
                .as_ref()
                .is_some_and(|r| r.as_str().contains("pcm_16000"))
        );
    }
}
