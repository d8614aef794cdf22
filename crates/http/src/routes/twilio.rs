//! Twilio's webhooks: the TwiML fetched when the callee answers, and call-progress events.
//! (The media stream WebSocket is `media.rs`.)
//! No bearer token: [`SignedWebhook`] refuses (403) anything Twilio did not sign before the
//! handler runs.

use actix_web::{HttpResponse, web};
use outcall_domain::StatusEvent;
use outcall_domain::services::PlacementError;

use crate::ApiState;
use crate::dto::placement::StatusCallbackForm;
use crate::error::ApiError;
use crate::extract::SignedWebhook;

/// `POST|GET /twilio/twiml?callId=`: connects the answered call to the media stream, and
/// starts connecting the call's agent so it is ready when the stream starts.
#[tracing::instrument(name = "twilio_twiml", skip_all, fields(call_id = tracing::field::Empty))]
pub async fn twiml(
    hook: SignedWebhook,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let call_id = hook.call_id()?;
    tracing::Span::current().record("call_id", tracing::field::display(&call_id));
    let twiml = state.placement.stream_twiml(&call_id).await?;
    state.bridge.prepare(&call_id);
    Ok(HttpResponse::Ok().content_type("text/xml").body(twiml))
}

/// `POST /twilio/status?callId=`: one call-progress event, applied through the status rules.
#[tracing::instrument(name = "twilio_status", skip_all, fields(call_id = tracing::field::Empty))]
pub async fn status(
    hook: SignedWebhook,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let call_id = hook.call_id()?;
    tracing::Span::current().record("call_id", tracing::field::display(&call_id));
    let event = StatusEvent::try_from(StatusCallbackForm(hook.params()))?;
    match state.placement.record_status(&call_id, &event).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(PlacementError::CallNotFound) => {
            tracing::warn!("status callback for an unknown call");
            Err(ApiError::CallNotFound)
        }
        Err(other) => Err(other.into()),
    }
}
