//! The outermost middleware: request ids and HTTP metrics.
//!
//! - Every request gets an id: the caller's `X-Request-Id` when it is 1 to 128 visible ASCII
//!   characters, otherwise a fresh UUID v4 (simple form). It is stored in the request
//!   extensions as [`RequestId`] before the request span is built (so every log line of the
//!   request carries `request_id`), echoed in the `X-Request-Id` response header, and added as
//!   `requestId` to every JSON error body.
//! - Every response counts in `http_requests_total{method,route,status}` and
//!   `http_request_duration_seconds{method,route}`, where `route` is the matched route pattern
//!   (`/admin/clients/{clientId}`), never the raw path; unmatched paths count as `unmatched`.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse};

/// `X-Request-Id`.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied request id kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of the request being served (in the request extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when acceptable, a fresh one otherwise.
    pub(crate) fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .map(HeaderValue::as_bytes)
            .filter(|bytes| is_acceptable(bytes))
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .map_or_else(Self::generate, |id| Self(id.to_owned()))
    }

    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 1 to 128 visible ASCII characters (no spaces, no control characters).
fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// Assigns the request id, times and counts the request, and labels the response.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = RequestId::from_header(req.headers().get(&REQUEST_ID_HEADER));
    req.extensions_mut().insert(id.clone());
    let method = req.method().as_str().to_owned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());

    // Handlers' and gates' errors arrive as responses; an `Err` here is the framework's.
    let response = next.call(req).await?.map_into_boxed_body();

    let status = response.status();
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());

    let mut response = if status.is_client_error() || status.is_server_error() {
        with_request_id_in_body(response, &id).await
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    Ok(response)
}

/// A JSON object error body with `requestId` added; any other body unchanged.
async fn with_request_id_in_body(
    response: ServiceResponse<BoxBody>,
    id: &RequestId,
) -> ServiceResponse<BoxBody> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(error = %error, "reading an error body failed");
            let failed = HttpResponse::InternalServerError().finish();
            return ServiceResponse::new(request, failed);
        }
    };
    let body =
        error_body_with_request_id(&bytes, id).map_or_else(|| BoxBody::new(bytes), BoxBody::new);
    let mut head = head.set_body(body);
    // The length changed; actix computes it from the new body.
    head.headers_mut().remove(header::CONTENT_LENGTH);
    ServiceResponse::new(request, head)
}

/// A JSON object body with `requestId` added; `None` when the body is no JSON object.
pub(crate) fn error_body_with_request_id(body: &[u8], id: &RequestId) -> Option<Bytes> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut members)) => {
            members.insert(
                "requestId".to_owned(),
                serde_json::Value::String(id.as_str().to_owned()),
            );
            serde_json::to_vec(&members).ok().map(Bytes::from)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_ascii_ids_of_1_to_128_characters_are_acceptable() {
        assert!(is_acceptable(b"abc-123_XYZ.~"));
        assert!(is_acceptable(&[b'a'; 128]));
        assert!(!is_acceptable(&[b'a'; 129]));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable(b"tab\there"));
        assert!(!is_acceptable("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn relay_latency_has_sub_millisecond_buckets_and_other_histograms_the_http_ones() {
        let recorder = crate::prometheus_builder().build_recorder();
        let text = metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("bridge_relay_latency_seconds", "direction" => "caller_to_agent")
                .record(0.0003);
            metrics::histogram!("provider_request_duration_seconds").record(0.2);
            recorder.handle().render()
        });
        for line in [
            r#"bridge_relay_latency_seconds_bucket{direction="caller_to_agent",le="0.00025"} 0"#,
            r#"bridge_relay_latency_seconds_bucket{direction="caller_to_agent",le="0.0005"} 1"#,
            r#"provider_request_duration_seconds_bucket{le="0.1"} 0"#,
            r#"provider_request_duration_seconds_bucket{le="0.25"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn a_generated_id_is_a_simple_uuid() {
        let id = RequestId::from_header(None);
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, RequestId::from_header(None));
    }
}
