//! The voice-agent provider's post-call report and how it maps onto a call's `callDetails`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::Timestamp;
use crate::call::{CallOutcome, Sentiment};
use crate::values::{CallId, CallSid, ConversationId};

/// Who spoke a transcript turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Agent,
    User,
}

impl Speaker {
    pub fn label(self) -> &'static str {
        match self {
            Self::Agent => "Agent",
            Self::User => "User",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptTurn {
    pub speaker: Speaker,
    pub text: String,
}

/// Renders turns as `Agent: ...\nUser: ...`, the `callTranscript` format.
pub fn render_transcript(turns: &[TranscriptTurn]) -> String {
    turns
        .iter()
        .filter(|turn| !turn.text.trim().is_empty())
        .map(|turn| format!("{}: {}", turn.speaker.label(), turn.text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the provider reports after analysing a conversation (`post_call_transcription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCallReport {
    pub conversation_id: ConversationId,
    /// outcall's own call id, when the conversation carried it in its dynamic variables.
    pub call_id: Option<CallId>,
    /// When the provider emitted the report; later reports win, earlier ones are stale.
    pub event_at: Timestamp,
    pub summary: Option<String>,
    pub transcript: Vec<TranscriptTurn>,
    /// Data-collection results by id, values rendered as text.
    pub data_collection: BTreeMap<String, String>,
    /// `success`, `failure` or `unknown`.
    pub call_successful: Option<String>,
    /// The provider's own measure of the conversation length, in seconds.
    pub duration_secs: Option<u32>,
}

/// The provider could not start the conversation for a call (`call_initiation_failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiationFailure {
    pub conversation_id: Option<ConversationId>,
    pub call_id: Option<CallId>,
    pub call_sid: Option<CallSid>,
    pub reason: String,
    pub event_at: Timestamp,
}

/// Which data-collection ids fill which `callDetails` fields. Configurable per deployment;
/// the defaults are the ids the documentation tells agencies to define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisMapping {
    pub outcome: String,
    pub sentiment: String,
    pub next_action: String,
    pub next_action_date: String,
    pub agent_notes: String,
}

impl Default for AnalysisMapping {
    fn default() -> Self {
        Self {
            outcome: "call_outcome".into(),
            sentiment: "call_sentiment".into(),
            next_action: "next_action".into(),
            next_action_date: "next_action_date".into(),
            agent_notes: "agent_notes".into(),
        }
    }
}

/// The `callDetails` values a report yields, and the values it carried that did not fit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedDetails {
    pub outcome: Option<CallOutcome>,
    pub sentiment: Option<Sentiment>,
    pub next_action: Option<String>,
    pub next_action_date: Option<Timestamp>,
    pub agent_notes: Option<String>,
    /// `(data-collection id, why)` for values outside the allowed sets (they became
    /// `unknown` or were left out); the caller logs them.
    pub rejected: Vec<(String, &'static str)>,
}

impl AnalysisMapping {
    /// Maps a report's data-collection results onto `callDetails` fields. An outcome or
    /// sentiment outside its set becomes `unknown`; an unreadable date is left out.
    pub fn map(&self, results: &BTreeMap<String, String>) -> MappedDetails {
        let mut mapped = MappedDetails::default();
        let value = |id: &str| results.get(id).map(|v| v.trim()).filter(|v| !v.is_empty());
        if let Some(raw) = value(&self.outcome) {
            mapped.outcome = Some(CallOutcome::parse(&normalise(raw)).unwrap_or_else(|_| {
                mapped
                    .rejected
                    .push((self.outcome.clone(), "not a known outcome"));
                CallOutcome::Unknown
            }));
        }
        if let Some(raw) = value(&self.sentiment) {
            mapped.sentiment = Some(Sentiment::parse(&normalise(raw)).unwrap_or_else(|_| {
                mapped
                    .rejected
                    .push((self.sentiment.clone(), "not a known sentiment"));
                Sentiment::Unknown
            }));
        }
        mapped.next_action = value(&self.next_action).map(str::to_owned);
        if let Some(raw) = value(&self.next_action_date) {
            mapped.next_action_date = parse_date(raw);
            if mapped.next_action_date.is_none() {
                mapped
                    .rejected
                    .push((self.next_action_date.clone(), "not a date"));
            }
        }
        mapped.agent_notes = value(&self.agent_notes).map(str::to_owned);
        mapped
    }
}

/// `Not Interested` / `not_interested` -> `not-interested`.
fn normalise(raw: &str) -> String {
    raw.trim().to_lowercase().replace(['_', ' '], "-")
}

/// RFC 3339, or a plain `YYYY-MM-DD` date (midnight UTC).
fn parse_date(raw: &str) -> Option<Timestamp> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn data_collection_maps_onto_call_details_with_unknown_for_strays() {
        let mapped = AnalysisMapping::default().map(&results(&[
            ("call_outcome", "Not Interested"),
            ("call_sentiment", "ecstatic"),
            ("next_action", "send brochure"),
            ("next_action_date", "2025-03-27"),
            ("agent_notes", "  "),
        ]));
        assert_eq!(mapped.outcome, Some(CallOutcome::NotInterested));
        assert_eq!(mapped.sentiment, Some(Sentiment::Unknown));
        assert_eq!(mapped.next_action.as_deref(), Some("send brochure"));
        assert_eq!(
            mapped.next_action_date.map(|d| d.to_rfc3339()),
            Some("2025-03-27T00:00:00+00:00".into())
        );
        assert_eq!(mapped.agent_notes, None);
        assert_eq!(
            mapped.rejected,
            vec![("call_sentiment".to_owned(), "not a known sentiment")]
        );
    }

    #[test]
    fn a_custom_mapping_reads_other_ids() {
        let mapping = AnalysisMapping {
            outcome: "result".into(),
            ..AnalysisMapping::default()
        };
        let mapped = mapping.map(&results(&[
            ("result", "callback"),
            ("call_outcome", "interested"),
        ]));
        assert_eq!(mapped.outcome, Some(CallOutcome::Callback));
    }

    #[test]
    fn transcripts_render_as_speaker_lines() {
        let turns = [
            TranscriptTurn {
                speaker: Speaker::Agent,
                text: "Hello!".into(),
            },
            TranscriptTurn {
                speaker: Speaker::User,
                text: " ".into(),
            },
            TranscriptTurn {
                speaker: Speaker::User,
                text: "Hi.".into(),
            },
        ];
        assert_eq!(render_transcript(&turns), "Agent: Hello!\nUser: Hi.");
    }
}
