//! The REST client: placing and ending calls, and the [`Telephony`] port on top of it.

use std::time::Instant;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use outcall_domain::ports::{
    OutboundCall, PlacedCall, StreamInstructions, Telephony, TelephonyError,
};
use outcall_domain::values::CallSid;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use crate::config::TwilioConfig;
use crate::signature::verify_signature;
use crate::twiml::stream_twiml;

/// Twilio's error bodies are a few hundred bytes; reading stops here so that a misbehaving
/// endpoint cannot make us buffer without bound.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Twilio's error code for bad credentials or a suspended account.
const CODE_AUTHENTICATE: u32 = 20003;
/// Twilio's error code for too many concurrent REST requests.
const CODE_TOO_MANY_REQUESTS: u32 = 20429;

/// The status-callback events every call subscribes to, in the order they are sent.
const STATUS_CALLBACK_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// Twilio adapter: places and ends calls over the REST API, writes the stream TwiML and
/// checks webhook signatures. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    config: TwilioConfig,
    /// `{api_base}/2010-04-01/Accounts/{AccountSid}`.
    account_url: String,
}

impl TwilioClient {
    /// Checks the settings and builds the HTTP client.
    ///
    /// # Errors
    /// When the account SID is not `AC` + 32 hex digits, the token is empty, the API base is
    /// not an absolute http(s) URL, a call option is out of range, or the HTTP client cannot
    /// be built (no TLS backend).
    pub fn new(config: TwilioConfig) -> anyhow::Result<Self> {
        let api_base = config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            // Creating a call is not idempotent: a retried POST could dial the callee twice.
            .retry(reqwest::retry::never())
            // Twilio does not redirect API calls; following one would re-send the request.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("outcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the Twilio HTTP client")?;
        let account_url = format!("{api_base}/2010-04-01/Accounts/{}", config.account_sid);
        Ok(Self {
            http,
            config,
            account_url,
        })
    }

    /// The form Twilio's create-call endpoint receives for `call`, in sending order.
    fn create_form(&self, call: &OutboundCall) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", call.to.as_str().to_owned()),
            ("From", call.from.as_str().to_owned()),
            ("Url", call.twiml_url.clone()),
            ("Method", "POST".to_owned()),
            ("StatusCallback", call.status_callback_url.clone()),
            ("StatusCallbackMethod", "POST".to_owned()),
        ];
        // Twilio wants the field repeated once per event, not a comma-separated list.
        form.extend(
            STATUS_CALLBACK_EVENTS
                .iter()
                .map(|event| ("StatusCallbackEvent", (*event).to_owned())),
        );
        if let Some(secs) = self.config.ring_timeout_secs {
            form.push(("Timeout", secs.to_string()));
        }
        if let Some(secs) = self.config.time_limit_secs {
            form.push(("TimeLimit", secs.to_string()));
        }
        if let Some(detection) = self.config.machine_detection {
            form.push(("MachineDetection", detection.as_str().to_owned()));
        }
        if self.config.record {
            form.push(("Record", "true".to_owned()));
        }
        form
    }

    #[tracing::instrument(name = "twilio.create_call", skip_all, fields(call_id = %call.call_id))]
    async fn create_call(&self, call: &OutboundCall) -> Result<PlacedCall, TelephonyError> {
        tracing::info!(
            to = %call.to.redacted(),
            from = %call.from.redacted(),
            "asking Twilio to place the call"
        );
        let url = format!("{}/Calls.json", self.account_url);
        let response = self.post_form(&url, &self.create_form(call)).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_bounded(response, "reading Twilio's answer to create-call").await?;
        if !status.is_success() {
            return Err(log_failure(classify_failure(status, &headers, &body)));
        }
        let created: CallResource = serde_json::from_slice(&body).map_err(|error| {
            // The call was probably placed; only its SID is unknown. A late status callback
            // still carries it.
            TelephonyError::Unavailable(anyhow::Error::new(error).context(format!(
                "Twilio answered HTTP {status} to create-call with an unreadable body"
            )))
        })?;
        let sid = CallSid::parse(&created.sid).map_err(|error| {
            TelephonyError::Unavailable(
                anyhow!(error).context("Twilio answered create-call with an invalid call SID"),
            )
        })?;
        tracing::info!(call_sid = %sid, "Twilio accepted the call");
        Ok(PlacedCall { sid })
    }

    #[tracing::instrument(name = "twilio.end_call", skip_all, fields(call_sid = %sid))]
    async fn complete_call(&self, sid: &CallSid) -> Result<(), TelephonyError> {
        let url = format!("{}/Calls/{}.json", self.account_url, sid.as_str());
        let response = self
            .post_form(&url, &[("Status", "completed".to_owned())])
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            tracing::info!("Twilio ended the call");
            return Ok(());
        }
        let body = read_bounded(response, "reading Twilio's answer to end-call").await?;
        Err(log_failure(classify_failure(status, &headers, &body)))
    }

    /// One authenticated form POST; transport failures (including the timeout) become
    /// `Unavailable`. Sent exactly once.
    async fn post_form(
        &self,
        url: &str,
        form: &[(&'static str, String)],
    ) -> Result<Response, TelephonyError> {
        self.http
            .post(url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .header(ACCEPT, "application/json")
            // Sets `Content-Type: application/x-www-form-urlencoded`; a slice of pairs keeps
            // repeated names repeated.
            .form(form)
            .send()
            .await
            .map_err(|error| {
                let what = if error.is_timeout() {
                    format!(
                        "Twilio did not answer within {:?}",
                        self.config.request_timeout
                    )
                } else if error.is_connect() {
                    "could not connect to Twilio".to_owned()
                } else {
                    "sending the request to Twilio failed".to_owned()
                };
                tracing::warn!(error = %error, "{what}");
                TelephonyError::Unavailable(anyhow::Error::new(error).context(what))
            })
    }
}

#[async_trait]
impl Telephony for TwilioClient {
    async fn place_call(&self, call: &OutboundCall) -> Result<PlacedCall, TelephonyError> {
        measured("create_call", self.create_call(call)).await
    }

    async fn end_call(&self, sid: &CallSid) -> Result<(), TelephonyError> {
        measured("end_call", self.complete_call(sid)).await
    }

    fn stream_twiml(&self, stream: &StreamInstructions) -> String {
        stream_twiml(stream)
    }

    fn verify_webhook(&self, url: &str, params: &[(String, String)], signature: &str) -> bool {
        verify_signature(
            self.config.auth_token.expose_secret(),
            url,
            params,
            signature,
        )
    }
}

/// Times one REST operation (request and answer) in
/// `provider_request_duration_seconds{provider="twilio",operation}` and counts its failure in
/// `provider_request_errors_total{provider="twilio",operation,kind}`.
async fn measured<T>(
    operation: &'static str,
    request: impl Future<Output = Result<T, TelephonyError>>,
) -> Result<T, TelephonyError> {
    let started = Instant::now();
    let result = request.await;
    metrics::histogram!(
        "provider_request_duration_seconds",
        "provider" => "twilio",
        "operation" => operation,
    )
    .record(started.elapsed());
    if let Err(error) = &result {
        metrics::counter!(
            "provider_request_errors_total",
            "provider" => "twilio",
            "operation" => operation,
            "kind" => error_kind(error),
        )
        .increment(1);
    }
    result
}

/// The `kind` label of a failed request: the port error's variant.
fn error_kind(error: &TelephonyError) -> &'static str {
    match error {
        TelephonyError::Rejected { .. } => "rejected",
        TelephonyError::RateLimited { .. } => "rate_limited",
        TelephonyError::Unauthorized => "unauthorized",
        TelephonyError::Unavailable(_) => "unavailable",
    }
}

/// The part of Twilio's Call resource we need.
#[derive(Deserialize)]
struct CallResource {
    sid: String,
}

/// Twilio's error body: `{code, message, more_info, status}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Maps a non-2xx answer to the port's error. Pure, so that the table is easy to test.
///
/// | answer                                  | error          |
/// | --------------------------------------- | -------------- |
/// | HTTP 401, or code 20003                 | `Unauthorized` |
/// | HTTP 429, or code 20429                 | `RateLimited` (`Retry-After` seconds) |
/// | HTTP 5xx, 1xx, 3xx                      | `Unavailable`  |
/// | any other 4xx                           | `Rejected` with Twilio's code and message |
fn classify_failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> TelephonyError {
    // An unreadable error body still has a meaningful HTTP status.
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED || error.code == Some(CODE_AUTHENTICATE) {
        return TelephonyError::Unauthorized;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || error.code == Some(CODE_TOO_MANY_REQUESTS) {
        return TelephonyError::RateLimited {
            retry_after_secs: retry_after_secs(headers),
        };
    }
    if status.is_client_error() {
        let message = error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "Twilio refused the request ({})",
                    status.canonical_reason().unwrap_or("client error")
                )
            });
        return TelephonyError::Rejected {
            code: error.code,
            message,
            http_status: status.as_u16(),
        };
    }
    // Twilio's message is left out on purpose: it can quote the dialled number.
    TelephonyError::Unavailable(anyhow!(
        "Twilio answered HTTP {status} (code {})",
        error
            .code
            .map_or_else(|| "none".to_owned(), |c| c.to_string())
    ))
}

/// Logs the refusal without Twilio's message, which can quote the dialled number.
fn log_failure(error: TelephonyError) -> TelephonyError {
    match &error {
        TelephonyError::Rejected {
            code, http_status, ..
        } => tracing::warn!(?code, http_status, "Twilio rejected the request"),
        TelephonyError::RateLimited { retry_after_secs } => {
            tracing::warn!(?retry_after_secs, "Twilio is rate limiting");
        }
        TelephonyError::Unauthorized => {
            tracing::error!("Twilio refused our credentials (check account SID and auth token)");
        }
        TelephonyError::Unavailable(cause) => tracing::warn!(error = %cause, "Twilio failed"),
    }
    error
}

/// `Retry-After` in seconds (Twilio sends delta-seconds; an HTTP date is ignored).
fn retry_after_secs(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// The body, or at most its first [`MAX_BODY_BYTES`].
async fn read_bounded(
    mut response: Response,
    what: &'static str,
) -> Result<Vec<u8>, TelephonyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| TelephonyError::Unavailable(anyhow::Error::new(error).context(what)))?
    {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn each_port_error_has_its_own_metric_kind() {
        let kinds = [
            TelephonyError::Rejected {
                code: Some(21211),
                message: "Invalid 'To' Phone Number".to_owned(),
                http_status: 400,
            },
            TelephonyError::RateLimited {
                retry_after_secs: None,
            },
            TelephonyError::Unauthorized,
            TelephonyError::Unavailable(anyhow!("timed out")),
        ]
        .iter()
        .map(error_kind)
        .collect::<Vec<_>>();
        assert_eq!(
            kinds,
            ["rejected", "rate_limited", "unauthorized", "unavailable"]
        );
    }

    fn classify(status: u16, body: &str) -> TelephonyError {
        classify_failure(
            StatusCode::from_u16(status).expect("status"),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn an_authentication_code_is_unauthorized_whatever_the_http_status() {
        assert!(matches!(
            classify(
                403,
                r#"{"code":20003,"message":"Authenticate","status":403}"#
            ),
            TelephonyError::Unauthorized
        ));
        assert!(matches!(
            classify(401, "not json"),
            TelephonyError::Unauthorized
        ));
    }

    #[test]
    fn the_rate_limit_code_is_rate_limited_whatever_the_http_status() {
        assert!(matches!(
            classify(503, r#"{"code":20429,"message":"Too Many Requests"}"#),
            TelephonyError::RateLimited {
                retry_after_secs: None
            }
        ));
    }

    #[test]
    fn retry_after_is_read_as_seconds_and_dates_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after_secs(&headers), Some(7));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_secs(&headers), None);
        assert_eq!(retry_after_secs(&HeaderMap::new()), None);
    }

    #[test]
    fn a_4xx_without_a_readable_body_is_rejected_with_the_http_reason() {
        match classify(404, "<html>nope</html>") {
            TelephonyError::Rejected {
                code,
                message,
                http_status,
            } => {
                assert_eq!(code, None);
                assert_eq!(http_status, 404);
                assert_eq!(message, "Twilio refused the request (Not Found)");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_5xx_or_a_redirect_is_unavailable_without_twilios_message() {
        for status in [500, 503, 302] {
            match classify(
                status,
                r#"{"code":20500,"message":"call to +15551234567 failed"}"#,
            ) {
                TelephonyError::Unavailable(cause) => {
                    let text = format!("{cause:#}");
                    assert!(!text.contains("+15551234567"), "{text}");
                    assert!(text.contains(&status.to_string()), "{text}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
