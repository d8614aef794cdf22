//! Request spans: `tracing-actix-web`'s, except that provider webhooks show only their
//! `callId` query parameter. Twilio appends every callback parameter (`From`, `To`, `Called`,
//! `Caller`: full phone numbers) to the query of a `GET` webhook, and the default span
//! records the whole query as `http.target`. `request_id` is outcall's own [`RequestId`]
//! (the caller's `X-Request-Id` or a generated one), not `tracing-actix-web`'s.

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use outcall_domain::webhooks::paths;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;

use crate::observe::RequestId;

/// The query parameter a webhook span keeps.
const KEPT_PARAMETER: &str = "callId";

pub struct ApiRootSpan;

impl RootSpanBuilder for ApiRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let target = if is_provider_webhook(request.path()) {
            redacted_target(request.path(), request.query_string())
        } else {
            request
                .uri()
                .path_and_query()
                .map_or_else(String::new, |p| p.as_str().to_owned())
        };
        request_span(request, &target)
    }

    /// The default records the error's `Debug` as `exception.details`; an `anyhow` cause
    /// prints its backtrace there when `RUST_BACKTRACE` is set, one log record over many
    /// lines. Only the one-line `Display` is kept: 5xx causes are logged where they are
    /// mapped (`ApiError::error_response`).
    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error) = match outcome {
            Ok(response) => (
                response.status(),
                response.response().error().map(Error::as_response_error),
            ),
            Err(error) => {
                let error = error.as_response_error();
                (error.status_code(), Some(error))
            }
        };
        span.record("http.status_code", i64::from(status.as_u16()));
        span.record(
            "otel.status_code",
            if status.is_server_error() {
                "ERROR"
            } else {
                "OK"
            },
        );
        if let Some(error) = error {
            span.record("exception.message", one_line(&error.to_string()).as_str());
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_provider_webhook(path: &str) -> bool {
    [
        paths::TWILIO_TWIML,
        paths::TWILIO_STATUS,
        paths::MEDIA_STREAM,
        paths::ELEVENLABS_POST_CALL,
    ]
    .contains(&path)
}

/// The default span's fields (less user agent and HTTP version), with the given
/// `http.target` and outcall's request id.
fn request_span(request: &ServiceRequest, target: &str) -> Span {
    let method = request.method().as_str().to_owned();
    let route = request.match_pattern().unwrap_or_else(|| "default".into());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(ToString::to_string)
        .unwrap_or_default();
    let connection = request.connection_info().clone();
    tracing::info_span!(
        "HTTP request",
        http.method = %method,
        http.route = %route,
        http.scheme = %connection.scheme(),
        http.host = %connection.host(),
        http.client_ip = %connection.realip_remote_addr().unwrap_or(""),
        http.target = %target,
        http.status_code = Empty,
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        request_id = %request_id,
        exception.message = Empty,
    )
}

/// `path?callId=...`, with every other query parameter replaced by one `[redacted]`.
fn redacted_target(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut dropped = false;
    for pair in query.split('&') {
        if pair.split('=').next() == Some(KEPT_PARAMETER) {
            kept.push(pair);
        } else {
            dropped = true;
        }
    }
    if dropped {
        kept.push("[redacted]");
    }
    format!("{path}?{}", kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_targets_keep_only_the_call_id() {
        assert_eq!(
            redacted_target(
                "/twilio/twiml",
                "callId=call_1&From=%2B12125551234&To=%2B1415"
            ),
            "/twilio/twiml?callId=call_1&[redacted]"
        );
        assert_eq!(
            redacted_target("/twilio/status", "callId=call_1"),
            "/twilio/status?callId=call_1"
        );
        assert_eq!(redacted_target("/twilio/status", ""), "/twilio/status");
        assert_eq!(
            redacted_target("/twilio/status", "Caller=%2B12125551234"),
            "/twilio/status?[redacted]"
        );
        assert!(is_provider_webhook("/twilio/twiml"));
        assert!(!is_provider_webhook("/admin/clients"));
    }
}
