//! ElevenLabs' conversation JSON — the `data` of a post-call webhook and the answer of
//! `GET /v1/convai/conversations/{id}`, which share one shape — mapped onto the domain's
//! report types. Only the fields outcall uses are declared; every other field is skipped.

use std::collections::BTreeMap;

use chrono::DateTime;
use outcall_domain::Timestamp;
use outcall_domain::analysis::{InitiationFailure, PostCallReport, Speaker, TranscriptTurn};
use outcall_domain::values::{CallId, CallSid, ConversationId};
use serde::Deserialize;
use serde_json::Value;

/// The dynamic variable in which outcall hands its own call id to the conversation, so that
/// post-call events can be matched to the call even before the conversation id is recorded.
pub const CALL_ID_VARIABLE: &str = "outcall_call_id";

/// The conversation fields outcall reads.
#[derive(Deserialize)]
pub(crate) struct Conversation {
    conversation_id: String,
    /// `initiated | in-progress | processing | done | failed`.
    pub(crate) status: Option<String>,
    transcript: Option<Vec<Turn>>,
    metadata: Option<Metadata>,
    /// `null` until the conversation is analysed.
    pub(crate) analysis: Option<Analysis>,
    conversation_initiation_client_data: Option<ClientData>,
}

#[derive(Deserialize)]
struct Turn {
    role: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    start_time_unix_secs: Option<Number>,
    call_duration_secs: Option<Number>,
}

#[derive(Deserialize)]
pub(crate) struct Analysis {
    call_successful: Option<String>,
    transcript_summary: Option<String>,
    data_collection_results: Option<BTreeMap<String, Collected>>,
}

#[derive(Deserialize)]
struct Collected {
    value: Option<Value>,
}

#[derive(Deserialize)]
struct ClientData {
    dynamic_variables: Option<DynamicVariables>,
}

/// Only outcall's own variable: the others are skipped without being built.
#[derive(Deserialize)]
struct DynamicVariables {
    #[serde(rename = "outcall_call_id")]
    call_id: Option<Value>,
}

/// `data` of a `call_initiation_failure` event. Its shape is not documented officially, so
/// everything is optional and loosely typed.
#[derive(Deserialize)]
pub(crate) struct FailureData {
    conversation_id: Option<Value>,
    failure_reason: Option<Value>,
    /// `{type: "twilio" | "sip", body: {...the telephony provider's payload...}}`.
    metadata: Option<Value>,
    conversation_initiation_client_data: Option<ClientData>,
}

/// A number that may arrive as a JSON number or as a numeric string (one ElevenLabs table
/// types `event_timestamp` as a string).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Number {
    fn as_f64(&self) -> Option<f64> {
        let value = match self {
            // Unix seconds and call lengths stay far below 2^53, so nothing is lost.
            #[allow(clippy::cast_precision_loss)]
            Self::Int(i) => *i as f64,
            Self::Float(f) => *f,
            Self::Text(s) => s.trim().parse().ok()?,
        };
        value.is_finite().then_some(value)
    }

    /// As unix seconds (fractions kept to the millisecond).
    pub(crate) fn as_timestamp(&self) -> Option<Timestamp> {
        if let Self::Int(secs) = self {
            return DateTime::from_timestamp(*secs, 0);
        }
        let millis = (self.as_f64()? * 1000.0).round();
        // Out-of-range values are refused by chrono below; the cast only saturates.
        #[allow(clippy::cast_possible_truncation)]
        DateTime::from_timestamp_millis(millis as i64)
    }

    /// As whole non-negative seconds that fit a `u32`.
    fn as_secs(&self) -> Option<u32> {
        let secs = self.as_f64()?.round();
        // Range-checked just before the cast.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (0.0..=f64::from(u32::MAX))
            .contains(&secs)
            .then_some(secs as u32)
    }
}

impl Conversation {
    /// The report this conversation yields, stamped `event_at`.
    ///
    /// # Errors
    /// A short reason when `conversation_id` is not a valid id.
    pub(crate) fn into_report(self, event_at: Timestamp) -> Result<PostCallReport, String> {
        let conversation_id = ConversationId::parse(&self.conversation_id)
            .map_err(|_| "conversation_id is not a valid conversation id".to_owned())?;
        let call_id = call_id_of(self.conversation_initiation_client_data.as_ref());
        let transcript = self
            .transcript
            .unwrap_or_default()
            .into_iter()
            .filter_map(Turn::into_domain)
            .collect();
        let duration_secs = self
            .metadata
            .as_ref()
            .and_then(|m| m.call_duration_secs.as_ref())
            .and_then(Number::as_secs);
        let analysis = self.analysis;
        let (summary, call_successful, data_collection) = match analysis {
            Some(a) => (
                a.transcript_summary.filter(|s| !s.trim().is_empty()),
                a.call_successful.filter(|s| !s.trim().is_empty()),
                render_data_collection(a.data_collection_results.unwrap_or_default()),
            ),
            None => (None, None, BTreeMap::new()),
        };
        Ok(PostCallReport {
            conversation_id,
            call_id,
            event_at,
            summary,
            transcript,
            data_collection,
            call_successful,
            duration_secs,
        })
    }

    /// When the conversation ended: start plus length (`None` without a readable start).
    pub(crate) fn ended_at(&self) -> Option<Timestamp> {
        let metadata = self.metadata.as_ref()?;
        let start = metadata.start_time_unix_secs.as_ref()?.as_timestamp()?;
        let length = metadata
            .call_duration_secs
            .as_ref()
            .and_then(Number::as_secs)
            .unwrap_or(0);
        Some(start + chrono::Duration::seconds(i64::from(length)))
    }
}

impl Turn {
    /// Turns with no words or an unknown speaker carry nothing for the transcript.
    fn into_domain(self) -> Option<TranscriptTurn> {
        let speaker = match self.role.as_deref()? {
            "agent" => Speaker::Agent,
            "user" => Speaker::User,
            _ => return None,
        };
        let text = self.message.filter(|m| !m.trim().is_empty())?;
        Some(TranscriptTurn { speaker, text })
    }
}

impl FailureData {
    pub(crate) fn into_failure(self, event_at: Timestamp) -> InitiationFailure {
        let conversation_id = self
            .conversation_id
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|id| ConversationId::parse(id).ok());
        let call_sid = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("body"))
            .and_then(|b| b.get("CallSid"))
            .and_then(Value::as_str)
            .and_then(|sid| CallSid::parse(sid).ok());
        let reason = self
            .failure_reason
            .as_ref()
            .and_then(render_value)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        InitiationFailure {
            conversation_id,
            call_id: call_id_of(self.conversation_initiation_client_data.as_ref()),
            call_sid,
            reason,
            event_at,
        }
    }
}

/// outcall's call id from the dynamic variables, when present and valid.
fn call_id_of(client_data: Option<&ClientData>) -> Option<CallId> {
    client_data?
        .dynamic_variables
        .as_ref()?
        .call_id
        .as_ref()?
        .as_str()
        .and_then(|id| CallId::parse(id).ok())
}

/// Data-collection results by id with their values as text; results without a value are
/// left out.
fn render_data_collection(results: BTreeMap<String, Collected>) -> BTreeMap<String, String> {
    results
        .into_iter()
        .filter_map(|(id, result)| Some((id, render_value(result.value.as_ref()?)?)))
        .collect()
}

/// Strings as they are, numbers and booleans as JSON writes them, `null` as nothing, and
/// (not expected, but kept rather than lost) arrays and objects as compact JSON.
fn render_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_integers_floats_and_numeric_strings() {
        let at = |n: Number| n.as_timestamp().map(|t| t.timestamp_millis());
        assert_eq!(at(Number::Int(1_739_537_297)), Some(1_739_537_297_000));
        assert_eq!(at(Number::Float(1.5)), Some(1_500));
        assert_eq!(
            at(Number::Text(" 1739537297 ".into())),
            Some(1_739_537_297_000)
        );
        assert_eq!(at(Number::Text("soon".into())), None);
        assert_eq!(Number::Float(21.6).as_secs(), Some(22));
        assert_eq!(Number::Int(-1).as_secs(), None);
        assert_eq!(Number::Float(f64::from(u32::MAX) * 2.0).as_secs(), None);
    }
}
