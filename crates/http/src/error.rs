//! The one error type of the HTTP layer, its one status table and its one JSON body shape.
//!
//! Every failure a handler, an extractor or the framework produces ends up here, so that
//! every error response is JSON: `{"error": ..., ["message" | "details" | "requiredFields" |
//! "retryAfter" | "twilioCode" | "callId"], "statusCode": n}`. 5xx bodies never carry the
//! cause; it is logged instead.

use std::borrow::Cow;
use std::fmt;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use outcall_domain::ports::{TelephonyError, UniqueField, WebhookRejection};
use outcall_domain::services::{
    AccountError, AnalysisError, AuthError, CallError, PlacementError, UnauthorizedReason,
};
use outcall_domain::{CallId, StatusRegression};
use serde::Serialize;

/// Which request a validation failure belongs to; decides the `error` headline, which the
/// API contract fixes per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// `POST /admin/clients`.
    CreateClient,
    /// `PUT /admin/clients/{id}`, `PUT /secure/client`, `PUT .../calls/{callId}`.
    UpdateData,
    /// `POST /admin/clients/{id}/calls`.
    CallData,
    /// `POST /secure/make-call`, `POST /admin/clients/{id}/make-call`.
    CallRequest,
    /// A signed Twilio status callback whose `CallStatus` is not one of Twilio's.
    StatusCallback,
    /// Any other body (logins, verify, change-secret).
    Request,
}

impl Problem {
    pub fn headline(self) -> &'static str {
        match self {
            Self::CreateClient => "Failed to create client",
            Self::UpdateData => "Invalid update data",
            Self::CallData => "Invalid call data",
            Self::CallRequest => "Invalid call request",
            Self::StatusCallback => "Invalid status callback",
            Self::Request => "Invalid request",
        }
    }
}

/// Why an authenticated caller may not use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    AdminTokenRequired,
    ClientTokenRequired,
    /// The client exists but is Inactive or Suspended (placing calls).
    ClientNotActive,
}

impl Forbidden {
    pub fn message(self) -> &'static str {
        match self {
            Self::AdminTokenRequired => "This endpoint requires an admin token",
            Self::ClientTokenRequired => "This endpoint requires a client token",
            Self::ClientNotActive => "Client is not active",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("invalid query parameter: {0}")]
    InvalidQuery(String),
    /// JSON paths of the required fields (for logins: all of them, for creates: the missing).
    #[error("missing required fields: {}", .0.join(", "))]
    MissingFields(Vec<String>),
    #[error("{}: {details}", .problem.headline())]
    Invalid { problem: Problem, details: String },
    /// Admin login and change-secret.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Client login: one answer for unknown id, wrong secret and inactive client.
    #[error("invalid credentials or inactive client")]
    InvalidClientCredentials,
    #[error("unauthorized: {}", .0.message())]
    Unauthorized(UnauthorizedReason),
    #[error("forbidden: {}", .0.message())]
    Forbidden(Forbidden),
    #[error("too many login attempts, retry after {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("client not found")]
    ClientNotFound,
    #[error("call not found")]
    CallNotFound,
    /// The unique field that collided (`clientId` or `clientMeta.email`).
    #[error("client already exists ({})", .0.as_str())]
    ClientExists(UniqueField),
    #[error("call already exists (callSid)")]
    CallSidExists,
    /// Hanging up a call that already ended (or was never handed to the provider).
    #[error("call already ended")]
    CallAlreadyEnded,
    /// A provider webhook without a valid `X-Twilio-Signature`.
    #[error("invalid Twilio signature")]
    InvalidSignature,
    /// A voice-agent webhook without a valid `ElevenLabs-Signature`. The rejection names
    /// only what was wrong with the signature, never the header or the body.
    #[error("invalid webhook signature: {0}")]
    InvalidWebhookSignature(WebhookRejection),
    /// A verified voice-agent webhook whose body is not an event. Carries no details: the
    /// parser's message may quote the body, and errors are logged.
    #[error("invalid webhook payload")]
    InvalidWebhookPayload,
    /// The telephony provider refused or failed; `call_id` names the call it concerned.
    #[error("telephony provider: {failure}")]
    Telephony {
        call_id: Option<CallId>,
        failure: ProviderFailure,
    },
    #[error(transparent)]
    StatusTransition(StatusRegression),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A framework response that came without a JSON body, given one.
    #[error("HTTP {0}")]
    Http(StatusCode),
    /// `/readyz` once shutdown has started.
    #[error("draining")]
    Draining,
    /// A new call while shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// `/readyz` when the store does not answer.
    #[error("not ready")]
    NotReady(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(problem: Problem, details: impl Into<String>) -> Self {
        Self::Invalid {
            problem,
            details: details.into(),
        }
    }

    /// Client login answers every credential failure with the same body.
    pub fn from_client_login(err: AuthError) -> Self {
        match Self::from(err) {
            Self::InvalidCredentials => Self::InvalidClientCredentials,
            other => other,
        }
    }

    fn body(&self) -> ErrorBody<'_> {
        let status = self.status_code();
        let mut body = ErrorBody::new(status);
        match self {
            Self::InvalidJson(details) => body.error("Invalid JSON").details(details),
            Self::UnsupportedMediaType => body
                .error("Unsupported media type")
                .details("Content-Type must be application/json"),
            Self::PayloadTooLarge { limit } => body
                .error("Payload too large")
                .details(format!("request body must be at most {limit} bytes")),
            Self::InvalidQuery(details) => body.error("Invalid query parameter").details(details),
            Self::MissingFields(fields) => {
                body.required_fields = Some(fields);
                body.error("Missing required fields")
            }
            Self::Invalid { problem, details } => body.error(problem.headline()).details(details),
            Self::InvalidCredentials => body.error("Invalid credentials"),
            Self::InvalidClientCredentials => body.error("Invalid credentials or inactive client"),
            Self::Unauthorized(reason) => body.error("Unauthorized").message(reason.message()),
            Self::Forbidden(reason) => body.error("Forbidden").message(reason.message()),
            Self::TooManyAttempts { retry_after_secs } => {
                body.retry_after = Some(*retry_after_secs);
                body.error("Too many login attempts")
            }
            Self::ClientNotFound => body.error("Client not found"),
            Self::CallNotFound => body.error("Call not found"),
            Self::ClientExists(field) => body
                .error("Client already exists with this ID or email")
                .details(field.as_str()),
            Self::CallSidExists => body
                .error("Call already exists with this callSid")
                .details("callSid"),
            Self::CallAlreadyEnded => body.error("Call already ended"),
            Self::InvalidSignature => body.error("Invalid Twilio signature"),
            Self::InvalidWebhookSignature(rejection) => body
                .error("Invalid webhook signature")
                .details(rejection.to_string()),
            Self::InvalidWebhookPayload => body.error("Invalid webhook payload"),
            Self::Telephony { call_id, failure } => {
                body.call_id = call_id.as_ref().map(CallId::as_str);
                failure.describe(body)
            }
            Self::StatusTransition(regression) => body
                .error("Invalid status transition")
                .details(regression.to_string()),
            Self::RouteNotFound => body.error("Not found"),
            Self::MethodNotAllowed => body.error("Method not allowed"),
            Self::Http(status) => body.error(status.canonical_reason().unwrap_or("Error")),
            Self::Draining => {
                body.status = Some("draining");
                body.error("Service is shutting down")
            }
            Self::ShuttingDown => {
                body.retry_after = Some(SHUTDOWN_RETRY_AFTER_SECS);
                body.error("Service is shutting down")
            }
            Self::NotReady(_) => {
                body.status = Some("unavailable");
                body.error("Service unavailable")
            }
            Self::Internal(_) => body.error("Internal server error"),
        }
    }
}

impl ResponseError for ApiError {
    /// The one status table.
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_)
            | Self::InvalidQuery(_)
            | Self::MissingFields(_)
            | Self::Invalid { .. }
            | Self::InvalidWebhookPayload => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials
            | Self::InvalidClientCredentials
            | Self::Unauthorized(_)
            | Self::InvalidWebhookSignature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::InvalidSignature => StatusCode::FORBIDDEN,
            Self::ClientNotFound | Self::CallNotFound | Self::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ClientExists(_)
            | Self::CallSidExists
            | Self::StatusTransition(_)
            | Self::CallAlreadyEnded => StatusCode::CONFLICT,
            Self::Telephony { failure, .. } => failure.status_code(),
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Http(status) => *status,
            Self::NotReady(_) | Self::Draining | Self::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // The cause goes to the log, never to the caller.
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            Self::NotReady(cause) => {
                tracing::error!(error = format!("{cause:#}"), "readiness check failed");
            }
            Self::Telephony { call_id, failure } => failure.log(call_id.as_ref()),
            Self::InvalidSignature => {
                metrics::counter!("webhook_verifications_failed_total", "source" => "twilio")
                    .increment(1);
            }
            Self::InvalidWebhookSignature(_) => {
                metrics::counter!("webhook_verifications_failed_total", "source" => "elevenlabs")
                    .increment(1);
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::TooManyAttempts { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::ShuttingDown => {
                response
                    .insert_header((header::RETRY_AFTER, SHUTDOWN_RETRY_AFTER_SECS.to_string()));
            }
            Self::Telephony { failure, .. } => {
                if let Some(secs) = failure.retry_after_secs() {
                    response.insert_header((header::RETRY_AFTER, secs.to_string()));
                }
            }
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    /// Only `/readyz` answers with a `status` field, also when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_fields: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    twilio_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    status_code: u16,
}

impl<'a> ErrorBody<'a> {
    fn new(status: StatusCode) -> Self {
        Self {
            status: None,
            error: "",
            message: None,
            details: None,
            required_fields: None,
            retry_after: None,
            twilio_code: None,
            call_id: None,
            status_code: status.as_u16(),
        }
    }

    fn error(mut self, error: &'static str) -> Self {
        self.error = error;
        self
    }

    fn message(mut self, message: &'static str) -> Self {
        self.message = Some(message);
        self
    }

    fn details(mut self, details: impl Into<Cow<'a, str>>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::NotFound => Self::ClientNotFound,
            AccountError::Duplicate(field @ (UniqueField::ClientId | UniqueField::Email)) => {
                Self::ClientExists(field)
            }
            AccountError::Duplicate(field) => Self::Internal(anyhow::anyhow!(
                "unexpected duplicate {} while writing a client",
                field.as_str()
            )),
            AccountError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials => Self::InvalidCredentials,
            AuthError::Unauthorized(reason) => Self::Unauthorized(reason),
            AuthError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::ClientNotFound => Self::ClientNotFound,
            CallError::CallNotFound => Self::CallNotFound,
            CallError::StatusRegression(regression) => Self::StatusTransition(regression),
            CallError::Duplicate(UniqueField::CallSid) => Self::CallSidExists,
            CallError::Duplicate(field) => Self::Internal(anyhow::anyhow!(
                "unexpected duplicate {} while writing a call",
                field.as_str()
            )),
            CallError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

impl From<PlacementError> for ApiError {
    fn from(err: PlacementError) -> Self {
        match err {
            PlacementError::ClientNotFound => Self::ClientNotFound,
            PlacementError::ClientInactive => Self::Forbidden(Forbidden::ClientNotActive),
            PlacementError::CallNotFound => Self::CallNotFound,
            PlacementError::CallAlreadyEnded => Self::CallAlreadyEnded,
            PlacementError::Telephony { call_id, source } => Self::Telephony {
                call_id,
                failure: ProviderFailure(source),
            },
            PlacementError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

impl From<AnalysisError> for ApiError {
    fn from(err: AnalysisError) -> Self {
        match err {
            AnalysisError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

/// Twilio error codes that mean the destination cannot be called (protocols 1.4): the
/// caller's problem, so a 400 rather than a provider failure.
const DESTINATION_CODES: [u32; 6] = [21211, 21214, 21215, 21216, 21217, 21219];

/// The invalid-number code, which has its own headline.
const INVALID_TO_CODE: u32 = 21211;

/// `Retry-After` of a call refused while shutting down: another replica, or this one's
/// successor, will take it.
const SHUTDOWN_RETRY_AFTER_SECS: u64 = 5;

/// `Retry-After` when the provider rate limits without saying for how long.
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// A telephony provider's refusal or failure as the API reports it.
///
/// The request logger prints errors with `Debug` and `Display`, so neither shows the
/// provider's message (it may quote the dialled number); [`ProviderFailure::log`] logs it
/// with digit runs redacted.
pub struct ProviderFailure(pub TelephonyError);

impl ProviderFailure {
    /// The Twilio code of a rejection that concerns the destination.
    fn destination_code(&self) -> Option<u32> {
        match &self.0 {
            TelephonyError::Rejected {
                code: Some(code), ..
            } if DESTINATION_CODES.contains(code) => Some(*code),
            _ => None,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match &self.0 {
            TelephonyError::RateLimited { retry_after_secs } => {
                Some(retry_after_secs.unwrap_or(DEFAULT_RETRY_AFTER_SECS))
            }
            _ => None,
        }
    }

    fn status_code(&self) -> StatusCode {
        match &self.0 {
            _ if self.destination_code().is_some() => StatusCode::BAD_REQUEST,
            TelephonyError::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
            TelephonyError::Rejected { .. }
            | TelephonyError::Unauthorized
            | TelephonyError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The caller's view: only a destination problem echoes the provider's message (it is
    /// about the number the caller chose); 5xx name the kind of failure, never its cause.
    fn describe<'a>(&'a self, mut body: ErrorBody<'a>) -> ErrorBody<'a> {
        match &self.0 {
            TelephonyError::Rejected { code, message, .. } => {
                body.twilio_code = *code;
                match self.destination_code() {
                    Some(INVALID_TO_CODE) => body
                        .error("Invalid 'To' phone number")
                        .details(message.as_str()),
                    Some(_) => body
                        .error("Destination cannot be called")
                        .details(message.as_str()),
                    None => body.error("Telephony provider rejected the call"),
                }
            }
            TelephonyError::Unauthorized => body
                .error("Telephony provider credentials were refused")
                .details("check OUTCALL__TWILIO__ACCOUNT_SID and OUTCALL__TWILIO__AUTH_TOKEN"),
            TelephonyError::RateLimited { .. } => {
                body.retry_after = self.retry_after_secs();
                body.error("Telephony provider is rate limiting requests")
            }
            TelephonyError::Unavailable(_) => body
                .error("Telephony provider unavailable")
                .details("the provider could not be reached or did not answer in time"),
        }
    }

    /// Server-side record: codes and causes, with the provider's message redacted.
    fn log(&self, call_id: Option<&CallId>) {
        let call_id = call_id.map(tracing::field::display);
        match &self.0 {
            TelephonyError::Rejected {
                code,
                message,
                http_status,
            } => {
                let provider_message = redact_digits(message);
                if self.destination_code().is_some() {
                    tracing::info!(call_id, twilio_code = code, http_status, %provider_message, "telephony provider refused the destination");
                } else {
                    tracing::error!(call_id, twilio_code = code, http_status, %provider_message, "telephony provider rejected the request");
                }
            }
            TelephonyError::Unauthorized => tracing::error!(
                call_id,
                "telephony provider refused the credentials; check OUTCALL__TWILIO__ACCOUNT_SID and OUTCALL__TWILIO__AUTH_TOKEN"
            ),
            TelephonyError::RateLimited { retry_after_secs } => {
                tracing::warn!(
                    call_id,
                    retry_after_secs,
                    "telephony provider is rate limiting"
                );
            }
            TelephonyError::Unavailable(cause) => tracing::error!(
                call_id,
                error = redact_digits(&format!("{cause:#}")),
                "telephony provider unavailable"
            ),
        }
    }
}

impl fmt::Display for ProviderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TelephonyError::Rejected {
                code, http_status, ..
            } => match code {
                Some(code) => write!(f, "rejected (code {code}, HTTP {http_status})"),
                None => write!(f, "rejected (HTTP {http_status})"),
            },
            TelephonyError::RateLimited { .. } => f.write_str("rate limited"),
            TelephonyError::Unauthorized => f.write_str("credentials refused"),
            TelephonyError::Unavailable(_) => f.write_str("unavailable"),
        }
    }
}

impl fmt::Debug for ProviderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TelephonyError::Rejected {
                code, http_status, ..
            } => f
                .debug_struct("Rejected")
                .field("code", code)
                .field("http_status", http_status)
                .finish_non_exhaustive(),
            TelephonyError::RateLimited { retry_after_secs } => f
                .debug_struct("RateLimited")
                .field("retry_after_secs", retry_after_secs)
                .finish(),
            TelephonyError::Unauthorized => f.write_str("Unauthorized"),
            TelephonyError::Unavailable(cause) => f
                .debug_tuple("Unavailable")
                .field(&redact_digits(&format!("{cause:#}")))
                .finish(),
        }
    }
}

/// `text` with every run of seven or more digits (single spaces between them and a leading
/// `+` included) replaced by `[number]`, so that a provider message quoting a phone number can
/// be logged. Dates, codes and addresses (`2010-04-01`, `21211`, `10.0.0.5`) stay readable.
pub(crate) fn redact_digits(text: &str) -> String {
    const MIN_DIGITS: usize = 7;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit() || c == '+') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        // The first character is ASCII; the run goes on over digits and spaces and ends at
        // its last digit.
        let run_len = 1 + candidate[1..]
            .find(|c: char| !(c.is_ascii_digit() || c == ' '))
            .unwrap_or(candidate.len() - 1);
        let end = candidate[..run_len]
            .rfind(|c: char| c.is_ascii_digit())
            .map_or(1, |i| i + 1);
        let number = &candidate[..end];
        if number.chars().filter(char::is_ascii_digit).count() >= MIN_DIGITS {
            out.push_str("[number]");
        } else {
            out.push_str(number);
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::ContentType => Self::UnsupportedMediaType,
            JsonPayloadError::Overflow { limit }
            | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                Self::PayloadTooLarge { limit }
            }
            JsonPayloadError::Deserialize(err) => Self::InvalidJson(describe_json_error(&err)),
            JsonPayloadError::Payload(err) => Self::InvalidJson(format!("request body: {err}")),
            other => Self::InvalidJson(other.to_string()),
        }
    }
}

/// serde's syntax messages never quote the input; its data messages name Rust types, which
/// mean nothing to a caller. Request structs accept any member of any type (see
/// `dto::field`), so the only data error left is a body that is not an object.
pub(crate) fn describe_json_error(err: &serde_json::Error) -> String {
    if err.is_data() {
        "request body must be a JSON object".to_owned()
    } else {
        err.to_string()
    }
}

impl From<QueryPayloadError> for ApiError {
    fn from(err: QueryPayloadError) -> Self {
        match err {
            QueryPayloadError::Deserialize(err) => Self::InvalidQuery(err.to_string()),
            other => Self::InvalidQuery(other.to_string()),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(_: PathError) -> Self {
        Self::RouteNotFound
    }
}

pub(crate) fn json_error_handler(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

pub(crate) fn query_error_handler(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

pub(crate) fn path_error_handler(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

/// The app's default service: no route matches the path.
pub(crate) async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// Safety net for error responses the framework builds itself (a resource's 405, a panic's
/// 500, ...): any 4xx/5xx without a JSON body is replaced by the JSON body of the matching
/// [`ApiError`], so no caller ever sees an empty or HTML error.
pub(crate) fn json_fallback<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        status if status.is_server_error() => {
            let cause = res
                .response()
                .error()
                .map_or_else(|| status.to_string(), ToString::to_string);
            ApiError::Internal(anyhow::anyhow!("framework error response: {cause}"))
        }
        status => ApiError::Http(status),
    };
    let (req, _) = res.into_parts();
    let response = error.error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use outcall_domain::CallStatus;
    use serde_json::{Value, json};

    async fn render(err: ApiError) -> (StatusCode, Value, HttpResponse) {
        let response = err.error_response();
        let status = response.status();
        let mut head = HttpResponse::build(status);
        for (name, value) in response.headers() {
            head.append_header((name.clone(), value.clone()));
        }
        let bytes = to_bytes(response.into_body()).await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json body");
        (status, body, head.finish())
    }

    #[actix_web::test]
    async fn every_error_maps_to_its_status_and_json_body() {
        let regression = StatusRegression {
            from: CallStatus::Completed,
            to: CallStatus::Ringing,
        };
        let table: Vec<(ApiError, u16, Value)> = vec![
            (
                ApiError::InvalidJson("EOF while parsing".into()),
                400,
                json!({"error": "Invalid JSON", "details": "EOF while parsing", "statusCode": 400}),
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                json!({"error": "Unsupported media type", "details": "Content-Type must be application/json", "statusCode": 415}),
            ),
            (
                ApiError::PayloadTooLarge { limit: 65536 },
                413,
                json!({"error": "Payload too large", "details": "request body must be at most 65536 bytes", "statusCode": 413}),
            ),
            (
                ApiError::InvalidQuery("limit must be an integer from 1 to 200".into()),
                400,
                json!({"error": "Invalid query parameter", "details": "limit must be an integer from 1 to 200", "statusCode": 400}),
            ),
            (
                ApiError::MissingFields(vec!["clientId".into(), "clientSecret".into()]),
                400,
                json!({"error": "Missing required fields", "requiredFields": ["clientId", "clientSecret"], "statusCode": 400}),
            ),
            (
                ApiError::invalid(Problem::CreateClient, "agentId must not be empty"),
                400,
                json!({"error": "Failed to create client", "details": "agentId must not be empty", "statusCode": 400}),
            ),
            (
                ApiError::invalid(Problem::UpdateData, "x"),
                400,
                json!({"error": "Invalid update data", "details": "x", "statusCode": 400}),
            ),
            (
                ApiError::invalid(Problem::CallData, "x"),
                400,
                json!({"error": "Invalid call data", "details": "x", "statusCode": 400}),
            ),
            (
                ApiError::invalid(Problem::Request, "x"),
                400,
                json!({"error": "Invalid request", "details": "x", "statusCode": 400}),
            ),
            (
                ApiError::InvalidCredentials,
                401,
                json!({"error": "Invalid credentials", "statusCode": 401}),
            ),
            (
                ApiError::InvalidClientCredentials,
                401,
                json!({"error": "Invalid credentials or inactive client", "statusCode": 401}),
            ),
            (
                ApiError::Unauthorized(UnauthorizedReason::ExpiredToken),
                401,
                json!({"error": "Unauthorized", "message": "Token expired", "statusCode": 401}),
            ),
            (
                ApiError::Forbidden(Forbidden::AdminTokenRequired),
                403,
                json!({"error": "Forbidden", "message": "This endpoint requires an admin token", "statusCode": 403}),
            ),
            (
                ApiError::TooManyAttempts {
                    retry_after_secs: 12,
                },
                429,
                json!({"error": "Too many login attempts", "retryAfter": 12, "statusCode": 429}),
            ),
            (
                ApiError::ClientNotFound,
                404,
                json!({"error": "Client not found", "statusCode": 404}),
            ),
            (
                ApiError::CallNotFound,
                404,
                json!({"error": "Call not found", "statusCode": 404}),
            ),
            (
                ApiError::ClientExists(UniqueField::Email),
                409,
                json!({"error": "Client already exists with this ID or email", "details": "clientMeta.email", "statusCode": 409}),
            ),
            (
                ApiError::CallSidExists,
                409,
                json!({"error": "Call already exists with this callSid", "details": "callSid", "statusCode": 409}),
            ),
            (
                ApiError::StatusTransition(regression),
                409,
                json!({"error": "Invalid status transition", "details": "call status cannot change from completed to ringing", "statusCode": 409}),
            ),
            (
                ApiError::RouteNotFound,
                404,
                json!({"error": "Not found", "statusCode": 404}),
            ),
            (
                ApiError::MethodNotAllowed,
                405,
                json!({"error": "Method not allowed", "statusCode": 405}),
            ),
            (
                ApiError::Http(StatusCode::LENGTH_REQUIRED),
                411,
                json!({"error": "Length Required", "statusCode": 411}),
            ),
            (
                ApiError::NotReady(anyhow::anyhow!("connection refused on 10.0.0.5")),
                503,
                json!({"status": "unavailable", "error": "Service unavailable", "statusCode": 503}),
            ),
            (
                ApiError::Internal(anyhow::anyhow!("password authentication failed for db")),
                500,
                json!({"error": "Internal server error", "statusCode": 500}),
            ),
            (
                ApiError::invalid(Problem::CallRequest, "phone: x"),
                400,
                json!({"error": "Invalid call request", "details": "phone: x", "statusCode": 400}),
            ),
            (
                ApiError::invalid(Problem::StatusCallback, "CallStatus: x"),
                400,
                json!({"error": "Invalid status callback", "details": "CallStatus: x", "statusCode": 400}),
            ),
            (
                ApiError::Forbidden(Forbidden::ClientNotActive),
                403,
                json!({"error": "Forbidden", "message": "Client is not active", "statusCode": 403}),
            ),
            (
                ApiError::InvalidSignature,
                403,
                json!({"error": "Invalid Twilio signature", "statusCode": 403}),
            ),
            (
                ApiError::InvalidWebhookSignature(WebhookRejection::Stale),
                401,
                json!({"error": "Invalid webhook signature", "details": "signature timestamp is outside the tolerance", "statusCode": 401}),
            ),
            (
                ApiError::InvalidWebhookPayload,
                400,
                json!({"error": "Invalid webhook payload", "statusCode": 400}),
            ),
            (
                ApiError::CallAlreadyEnded,
                409,
                json!({"error": "Call already ended", "statusCode": 409}),
            ),
            (
                telephony(TelephonyError::Rejected {
                    code: Some(21211),
                    message: "The 'To' number 5551234567 is not a valid phone number.".into(),
                    http_status: 400,
                }),
                400,
                json!({"error": "Invalid 'To' phone number", "details": "The 'To' number 5551234567 is not a valid phone number.", "twilioCode": 21211, "callId": "call_1", "statusCode": 400}),
            ),
            (
                telephony(TelephonyError::Rejected {
                    code: Some(21215),
                    message: "Account not authorized to call +4930123456.".into(),
                    http_status: 400,
                }),
                400,
                json!({"error": "Destination cannot be called", "details": "Account not authorized to call +4930123456.", "twilioCode": 21215, "callId": "call_1", "statusCode": 400}),
            ),
            (
                telephony(TelephonyError::Rejected {
                    code: Some(21210),
                    message: "The source phone number provided is not yet verified.".into(),
                    http_status: 400,
                }),
                502,
                json!({"error": "Telephony provider rejected the call", "twilioCode": 21210, "callId": "call_1", "statusCode": 502}),
            ),
            (
                ApiError::Telephony {
                    call_id: None,
                    failure: ProviderFailure(TelephonyError::Rejected {
                        code: None,
                        message: "Service Unavailable".into(),
                        http_status: 503,
                    }),
                },
                502,
                json!({"error": "Telephony provider rejected the call", "statusCode": 502}),
            ),
            (
                telephony(TelephonyError::Unauthorized),
                502,
                json!({"error": "Telephony provider credentials were refused", "details": "check OUTCALL__TWILIO__ACCOUNT_SID and OUTCALL__TWILIO__AUTH_TOKEN", "callId": "call_1", "statusCode": 502}),
            ),
            (
                telephony(TelephonyError::RateLimited {
                    retry_after_secs: Some(30),
                }),
                503,
                json!({"error": "Telephony provider is rate limiting requests", "retryAfter": 30, "callId": "call_1", "statusCode": 503}),
            ),
            (
                telephony(TelephonyError::Unavailable(anyhow::anyhow!(
                    "connect timeout to api.twilio.com"
                ))),
                502,
                json!({"error": "Telephony provider unavailable", "details": "the provider could not be reached or did not answer in time", "callId": "call_1", "statusCode": 502}),
            ),
        ];
        for (error, status, expected) in table {
            let shown = format!("{error:?}");
            let (actual_status, body, _) = render(error).await;
            assert_eq!(actual_status.as_u16(), status, "{shown}");
            assert_eq!(body, expected, "{shown}");
        }
    }

    #[actix_web::test]
    async fn rate_limited_and_unauthorized_responses_carry_their_headers() {
        let (_, _, head) = render(ApiError::TooManyAttempts {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(
            head.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        let (_, _, head) = render(ApiError::Unauthorized(UnauthorizedReason::MissingToken)).await;
        assert_eq!(
            head.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }

    fn telephony(source: TelephonyError) -> ApiError {
        ApiError::Telephony {
            call_id: CallId::parse("call_1").ok(),
            failure: ProviderFailure(source),
        }
    }

    #[actix_web::test]
    async fn provider_rate_limits_answer_with_retry_after_defaulting_to_one_second() {
        for (given, expected) in [(Some(30), "30"), (None, "1")] {
            let (status, body, head) = render(telephony(TelephonyError::RateLimited {
                retry_after_secs: given,
            }))
            .await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                head.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some(expected)
            );
            assert_eq!(body["retryAfter"].to_string(), expected);
        }
    }

    #[test]
    fn provider_failures_never_show_the_providers_message_in_debug_or_display() {
        let err = telephony(TelephonyError::Rejected {
            code: Some(21211),
            message: "The 'To' number +12125550123 is not a valid phone number.".into(),
            http_status: 400,
        });
        for shown in [format!("{err:?}"), err.to_string()] {
            assert!(!shown.contains("2125550123"), "{shown}");
            assert!(shown.contains("21211"), "{shown}");
        }
        let err = telephony(TelephonyError::Unavailable(anyhow::anyhow!(
            "posting the call to +12125550123 timed out"
        )));
        let shown = format!("{err:?}");
        assert!(!shown.contains("2125550123"), "{shown}");
        assert!(shown.contains("timed out"), "{shown}");
    }

    #[test]
    fn digit_runs_that_may_be_phone_numbers_are_redacted() {
        let cases = [
            (
                "The 'To' number +12125550123 is not valid.",
                "The 'To' number [number] is not valid.",
            ),
            ("call 5551234567 now", "call [number] now"),
            ("dial +1 212 555 0123.", "dial [number]."),
            (
                "/2010-04-01/Accounts/x code 21211 at 10.0.0.5:5432",
                "/2010-04-01/Accounts/x code 21211 at 10.0.0.5:5432",
            ),
            ("a + b", "a + b"),
            ("trailing 1234567", "trailing [number]"),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_digits(text), expected, "{text}");
        }
    }

    #[test]
    fn placement_errors_map_to_the_contracts_answers() {
        assert!(matches!(
            ApiError::from(PlacementError::ClientInactive),
            ApiError::Forbidden(Forbidden::ClientNotActive)
        ));
        assert!(matches!(
            ApiError::from(PlacementError::ClientNotFound),
            ApiError::ClientNotFound
        ));
        assert!(matches!(
            ApiError::from(PlacementError::CallNotFound),
            ApiError::CallNotFound
        ));
        assert!(matches!(
            ApiError::from(PlacementError::CallAlreadyEnded),
            ApiError::CallAlreadyEnded
        ));
        assert!(matches!(
            ApiError::from(PlacementError::Telephony {
                call_id: None,
                source: TelephonyError::Unauthorized
            }),
            ApiError::Telephony {
                call_id: None,
                failure: ProviderFailure(TelephonyError::Unauthorized)
            }
        ));
        assert!(matches!(
            ApiError::from(PlacementError::Unexpected(anyhow::anyhow!("x"))),
            ApiError::Internal(_)
        ));
    }

    #[test]
    fn domain_errors_map_to_the_contracts_answers() {
        assert!(matches!(
            ApiError::from(AccountError::Duplicate(UniqueField::ClientId)),
            ApiError::ClientExists(UniqueField::ClientId)
        ));
        assert!(matches!(
            ApiError::from(AccountError::Duplicate(UniqueField::CallSid)),
            ApiError::Internal(_)
        ));
        assert!(matches!(
            ApiError::from(CallError::Duplicate(UniqueField::CallSid)),
            ApiError::CallSidExists
        ));
        assert!(matches!(
            ApiError::from(CallError::ClientNotFound),
            ApiError::ClientNotFound
        ));
        assert!(matches!(
            ApiError::from_client_login(AuthError::InvalidCredentials),
            ApiError::InvalidClientCredentials
        ));
        assert!(matches!(
            ApiError::from(AuthError::InvalidCredentials),
            ApiError::InvalidCredentials
        ));
    }

    #[test]
    fn json_data_errors_do_not_leak_rust_type_names() {
        let err = serde_json::from_str::<std::collections::BTreeMap<String, u8>>("[1]")
            .expect_err("not an object");
        assert_eq!(
            describe_json_error(&err),
            "request body must be a JSON object"
        );
        let err = serde_json::from_str::<Value>("{\"a\":").expect_err("eof");
        assert!(describe_json_error(&err).contains("EOF"));
    }
}
