//! The answer to a voice-agent webhook: `{"status": "applied" | "duplicate" | "unknown-call" |
//! "other-conversation" | "ignored"}`, always with 200 once the event was verified and
//! understood.

use outcall_domain::services::ReportOutcome;
use serde::Serialize;

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct WebhookAck {
    #[schema(value_type = String, examples("applied", "duplicate", "unknown-call", "other-conversation", "ignored"))]
    status: &'static str,
}

impl WebhookAck {
    /// An event outcall does not use (audio, unknown types).
    pub fn ignored() -> Self {
        Self { status: "ignored" }
    }
}

impl From<&ReportOutcome> for WebhookAck {
    fn from(outcome: &ReportOutcome) -> Self {
        let status = match outcome {
            ReportOutcome::Applied { .. } => "applied",
            ReportOutcome::AlreadyApplied { .. } => "duplicate",
            ReportOutcome::UnknownCall => "unknown-call",
            ReportOutcome::OtherConversation { .. } => "other-conversation",
        };
        Self { status }
    }
}
