//! ElevenLabs' post-call webhook: the conversation's analysis, or why it never started.
//! No bearer token: [`VerifiedAgentWebhook`] refuses (401) anything ElevenLabs did not sign
//! before the handler runs. Once verified and understood, every event is answered 200, also
//! when no call matches it: ElevenLabs disables webhooks that fail repeatedly.
//!
//! Logs name event types, conversation and call ids, never the signature, the body or the
//! transcript.

use actix_web::{HttpResponse, web};
use outcall_domain::ConversationId;
use outcall_domain::ports::AgentWebhookEvent;
use outcall_domain::services::ReportOutcome;
use tracing::field::{Empty, display};

use outcall_domain::webhooks::paths;

use crate::ApiState;
use crate::dto::webhooks::WebhookAck;
use crate::envelope::AUDIO_EVENT;
use crate::error::ApiError;
use crate::extract::VerifiedAgentWebhook;

/// The longest event type name put into a log line.
const MAX_LOGGED_TYPE: usize = 64;

/// `POST /webhooks/elevenlabs/post-call`: applies a post-call report or an initiation
/// failure to its call; audio and other event types are acknowledged and ignored.
#[utoipa::path(
    post,
    operation_id = "elevenlabs_post_call",
    path = paths::ELEVENLABS_POST_CALL,
    tag = "webhooks",
    params(("ElevenLabs-Signature" = String, Header, description = "`t=<unix seconds>,v0=<hex HMAC-SHA256 of \"<t>.<body>\">`, keyed by the webhook secret; at most 30 minutes old.")),
    request_body(content = Object, content_type = "application/json", description = "An ElevenLabs post-call event: `post_call_transcription`, `call_initiation_failure`, `post_call_audio` (verified as it streams in and dropped) or another type (ignored)."),
    responses(
        (status = 200, description = "Verified and understood: `applied`, `duplicate`, `unknown-call`, `other-conversation` or `ignored`.", body = WebhookAck),
        (status = 400, description = "`Invalid webhook payload`: verified, but not an event.", body = super::openapi::ErrorResponse),
        (status = 401, description = "`Invalid webhook signature` (`details`: missing, malformed, stale or wrong).", body = super::openapi::ErrorResponse),
        (status = 413, description = "`Payload too large`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(
    name = "elevenlabs_post_call",
    skip_all,
    fields(event = Empty, conversation_id = Empty, call_id = Empty)
)]
pub async fn post_call(
    hook: VerifiedAgentWebhook,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let span = tracing::Span::current();
    let body = match hook {
        VerifiedAgentWebhook::Audio => {
            span.record("event", AUDIO_EVENT);
            return Ok(HttpResponse::Ok().json(WebhookAck::ignored()));
        }
        VerifiedAgentWebhook::Event(body) => body,
    };
    // The parser's message may quote the body: neither logged nor shown.
    let event = state.agent_webhooks.parse(&body).map_err(|_| {
        tracing::warn!(
            body_bytes = body.len(),
            "signed webhook body is not a valid event"
        );
        ApiError::InvalidWebhookPayload
    })?;
    let (outcome, conversation) = match &event {
        AgentWebhookEvent::PostCall(report) => {
            span.record("event", "post_call_transcription");
            span.record("conversation_id", display(&report.conversation_id));
            let outcome = state.analysis.apply_report(report).await?;
            (outcome, Some(&report.conversation_id))
        }
        AgentWebhookEvent::InitiationFailure(failure) => {
            span.record("event", "call_initiation_failure");
            if let Some(conversation) = &failure.conversation_id {
                span.record("conversation_id", display(conversation));
            }
            let outcome = state.analysis.apply_initiation_failure(failure).await?;
            (outcome, failure.conversation_id.as_ref())
        }
        AgentWebhookEvent::Audio => {
            span.record("event", AUDIO_EVENT);
            return Ok(HttpResponse::Ok().json(WebhookAck::ignored()));
        }
        AgentWebhookEvent::Other(kind) => {
            let kind: String = kind.chars().take(MAX_LOGGED_TYPE).collect();
            span.record("event", kind.as_str());
            tracing::info!(event_type = %kind, "webhook event type not used; ignored");
            return Ok(HttpResponse::Ok().json(WebhookAck::ignored()));
        }
    };
    log_outcome(&outcome, conversation);
    Ok(HttpResponse::Ok().json(WebhookAck::from(&outcome)))
}

fn log_outcome(outcome: &ReportOutcome, conversation: Option<&ConversationId>) {
    match outcome {
        ReportOutcome::Applied { call_id, rejected } => {
            tracing::Span::current().record("call_id", display(call_id));
            // The value itself may be anything the agent heard: only its id and why.
            for (data_collection_id, reason) in rejected {
                tracing::warn!(
                    %call_id,
                    %data_collection_id,
                    reason,
                    "data-collection value rejected"
                );
            }
            tracing::info!(%call_id, "webhook event applied");
        }
        ReportOutcome::AlreadyApplied { call_id } => {
            tracing::Span::current().record("call_id", display(call_id));
            tracing::info!(%call_id, "webhook event already applied; nothing changed");
        }
        ReportOutcome::OtherConversation { call_id } => {
            tracing::Span::current().record("call_id", display(call_id));
            let conversation_id = conversation.map(display);
            tracing::warn!(
                %call_id,
                conversation_id,
                "webhook event for another conversation than the call's; nothing changed"
            );
        }
        ReportOutcome::UnknownCall => {
            let conversation_id = conversation.map(display);
            tracing::warn!(
                conversation_id,
                "webhook event for no known call; nothing changed"
            );
        }
    }
}
