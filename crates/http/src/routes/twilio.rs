//! Twilio's webhooks: the TwiML fetched when the callee answers, and call-progress events.
//! (The media stream WebSocket is `media.rs`.)
//! No bearer token: [`SignedWebhook`] refuses (403) anything Twilio did not sign before the
//! handler runs.

use actix_web::{HttpResponse, web};
use outcall_domain::StatusEvent;
use outcall_domain::services::PlacementError;

use outcall_domain::webhooks::paths;

use crate::ApiState;
use crate::dto::placement::StatusCallbackForm;
use crate::error::ApiError;
use crate::extract::SignedWebhook;

/// `POST|GET /twilio/twiml?callId=`: connects the answered call to the media stream, and
/// starts connecting the call's agent so it is ready when the stream starts.
#[utoipa::path(
    method(post, get),
    operation_id = "twilio_twiml",
    path = paths::TWILIO_TWIML,
    tag = "webhooks",
    params(("callId" = String, Query, description = "The call, as outcall put it into the callback URL."), ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request (HMAC-SHA1 keyed by the auth token over the URL and the sorted form parameters).")),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "Twilio's call parameters (`CallSid`, `From`, `To`, ...) on a `POST`; only the signature over them is checked."),
    responses(
        (status = 200, description = "TwiML connecting the call to `wss://<public host>/twilio/media-stream`.", content_type = "text/xml", body = String),
        (status = 403, description = "`Invalid Twilio signature`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Call not found`: `callId` missing, impossible or unknown.", body = super::openapi::ErrorResponse),
        (status = 413, description = "`Payload too large`: the form is over the limit.", body = super::openapi::ErrorResponse),
    ),
)]
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
#[utoipa::path(
    post,
    operation_id = "twilio_status",
    path = paths::TWILIO_STATUS,
    tag = "webhooks",
    params(("callId" = String, Query, description = "The call, as outcall put it into the callback URL."), ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request (HMAC-SHA1 keyed by the auth token over the URL and the sorted form parameters).")),
    request_body(content = super::openapi::TwilioStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Applied, or nothing to change (a stale or repeated status)."),
        (status = 400, description = "`Invalid status callback`: an unknown `CallStatus`.", body = super::openapi::ErrorResponse),
        (status = 403, description = "`Invalid Twilio signature`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Call not found`: `callId` missing, impossible or unknown.", body = super::openapi::ErrorResponse),
        (status = 413, description = "`Payload too large`: the form is over the limit.", body = super::openapi::ErrorResponse),
    ),
)]
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
