//! Twilio's bidirectional media stream: the WebSocket the call's audio flows through, bridged
//! to the call's voice agent. No bearer token: the upgrade must carry a valid
//! `X-Twilio-Signature` over the stream URL, checked before anything else happens, so nobody
//! but Twilio can open an agent conversation.

use actix_web::{HttpRequest, HttpResponse, web};

use outcall_domain::webhooks::paths;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::TWILIO_SIGNATURE;
use crate::media::twilio_socket;

/// `GET /twilio/media-stream` (WebSocket upgrade): refuses an unsigned or wrongly signed
/// upgrade with 403 and no upgrade, answers a signed request that is no WebSocket handshake
/// with its 4xx, and otherwise upgrades and bridges the socket on this worker until the call
/// ends.
#[utoipa::path(
    get,
    operation_id = "twilio_media_stream",
    path = paths::MEDIA_STREAM,
    tag = "webhooks",
    params(
        ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the stream URL (`wss://<public host>/twilio/media-stream`)."),
        ("Upgrade" = String, Header, description = "`websocket`"),
        ("Connection" = String, Header, description = "`Upgrade`"),
        ("Sec-WebSocket-Key" = String, Header),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the socket carries Twilio Media Streams JSON text frames (`connected`, `start`, `media`, `stop`), bridged to the call's agent until the call ends."),
        (status = 400, description = "Signed, but not a valid WebSocket handshake (the handshake's 4xx).", body = super::openapi::ErrorResponse),
        (status = 403, description = "`Invalid Twilio signature`: no upgrade.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "twilio_media_stream", skip_all)]
pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let signed = req
        .headers()
        .get(TWILIO_SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .is_some_and(|signature| state.placement.verify_stream(signature));
    if !signed {
        return Err(ApiError::InvalidSignature);
    }
    let (response, session, messages) = actix_ws::handle(&req, body)
        // A failed handshake's status is in its response only (`status_code` says 500).
        .map_err(|error| ApiError::Http(error.error_response().status()))?;
    let bridge = state.bridge.clone();
    // The socket's halves are tied to this worker (not `Send`): a local task.
    actix_web::rt::spawn(async move {
        bridge.run(twilio_socket(session, messages)).await;
    });
    Ok(response)
}
