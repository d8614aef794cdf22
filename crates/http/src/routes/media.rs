//! Twilio's bidirectional media stream: the WebSocket the call's audio flows through, bridged
//! to the call's voice agent. No bearer token: the upgrade must carry a valid
//! `X-Twilio-Signature` over the stream URL, checked before anything else happens, so nobody
//! but Twilio can open an agent conversation.

use actix_http::{Response, ws};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, web};

use outcall_domain::webhooks::paths;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::TWILIO_SIGNATURE;

/// `GET /twilio/media-stream` (WebSocket upgrade): refuses an unsigned or wrongly signed
/// upgrade with 403 and no upgrade, answers a signed request that is no WebSocket handshake
/// with its 4xx, and otherwise upgrades and bridges the socket until the call ends. The
/// upgrade itself is done by the server's upgrade handler (`crate::server`), which checks the
/// signature the same way; this route answers the requests that are no handshake.
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
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    if !is_signed(req.headers(), &state) {
        return Err(ApiError::InvalidSignature);
    }
    // The server's upgrade handler (`crate::server`) takes every WebSocket handshake before
    // routing, so a request that gets here is none: answer with the handshake's 4xx.
    match ws::handshake(req.head()) {
        Err(error) => Err(ApiError::Http(Response::from(error).status())),
        Ok(_) => {
            tracing::error!(
                "a media-stream upgrade reached the app: serve it with outcall_http::serve"
            );
            Err(ApiError::Http(StatusCode::NOT_IMPLEMENTED))
        }
    }
}

/// Whether the headers carry Twilio's valid signature of the stream URL.
pub(crate) fn is_signed(headers: &HeaderMap, state: &ApiState) -> bool {
    headers
        .get(TWILIO_SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .is_some_and(|signature| state.placement.verify_stream(signature))
}
