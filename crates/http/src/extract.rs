//! Extractors: who is calling (`AdminPrincipal`, `ClientPrincipal`, and for provider
//! webhooks [`SignedWebhook`] and [`VerifiedAgentWebhook`]), which client or call a path names
//! (`ClientIdParam`, `CallIdParam`), and JSON object bodies (`Body`).
//!
//! actix polls all of a handler's extractors together, so a body or path extractor could
//! answer (400, 404) before authentication finishes. Protected routes are therefore also
//! wrapped in a gate ([`admin_gate`], [`client_gate`]) that authenticates first, refuses with
//! 401/403 before the body is read, and leaves the result for the principal extractor, which
//! authenticates by itself only when no gate ran.

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use outcall_domain::ports::TokenClaims;
use outcall_domain::services::{Authenticated, UnauthorizedReason};
use outcall_domain::{AdminUsername, CallId, Client, ClientId};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiState;
use crate::envelope::{TypeSniffer, Verdict};
use crate::error::{ApiError, Forbidden, describe_json_error};

/// An admin holding a valid admin token.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub username: AdminUsername,
}

/// A client holding a valid client token, as the account is now (Active, same secret).
#[derive(Debug, Clone)]
pub struct ClientPrincipal {
    pub client: Client,
    pub claims: TokenClaims,
}

impl ClientPrincipal {
    pub fn id(&self) -> &ClientId {
        &self.client.id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Client,
}

/// What a gate found, for the extractor of the same request.
struct Verified(Authenticated);

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(UnauthorizedReason::MissingToken));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(UnauthorizedReason::InvalidToken))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(UnauthorizedReason::MissingToken))?;
    Ok(token.to_owned())
}

async fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let token = bearer_token(req)?;
    let state = req
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("ApiState is not registered")))?;
    Ok(state.auth.authenticate(&token).await?)
}

fn check_role(who: &Authenticated, role: Role) -> Result<(), ApiError> {
    match (who, role) {
        (Authenticated::Admin { .. }, Role::Admin)
        | (Authenticated::Client { .. }, Role::Client) => Ok(()),
        (Authenticated::Client { .. }, Role::Admin) => {
            Err(ApiError::Forbidden(Forbidden::AdminTokenRequired))
        }
        (Authenticated::Admin { .. }, Role::Client) => {
            Err(ApiError::Forbidden(Forbidden::ClientTokenRequired))
        }
    }
}

/// The gate's result if one ran, else a fresh authentication.
async fn principal(req: &HttpRequest, role: Role) -> Result<Authenticated, ApiError> {
    let verified = req.extensions_mut().remove::<Verified>();
    let who = match verified {
        Some(Verified(who)) => who,
        None => authenticate(req).await?,
    };
    check_role(&who, role)?;
    Ok(who)
}

async fn gate<B: MessageBody>(
    role: Role,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let checked = match authenticate(req.request()).await {
        Ok(who) => check_role(&who, role).map(|()| who),
        Err(err) => Err(err),
    };
    match checked {
        Ok(who) => {
            req.extensions_mut().insert(Verified(who));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(err) => Ok(req.error_response(err).map_into_right_body()),
    }
}

/// Middleware for routes only admins may use (`middleware::from_fn(admin_gate)`).
pub async fn admin_gate<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    gate(Role::Admin, req, next).await
}

/// Middleware for routes only clients may use.
pub async fn client_gate<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    gate(Role::Client, req, next).await
}

impl FromRequest for AdminPrincipal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match principal(&req, Role::Admin).await? {
                Authenticated::Admin { username, .. } => Ok(Self { username }),
                Authenticated::Client { .. } => {
                    Err(ApiError::Forbidden(Forbidden::AdminTokenRequired))
                }
            }
        })
    }
}

impl FromRequest for ClientPrincipal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match principal(&req, Role::Client).await? {
                Authenticated::Client { client, claims } => Ok(Self {
                    client: *client,
                    claims,
                }),
                Authenticated::Admin { .. } => {
                    Err(ApiError::Forbidden(Forbidden::ClientTokenRequired))
                }
            }
        })
    }
}

/// `{clientId}` of the path. An id that cannot exist is simply not found.
#[derive(Debug, Clone)]
pub struct ClientIdParam(pub ClientId);

impl FromRequest for ClientIdParam {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.match_info()
                .get("clientId")
                .and_then(|raw| ClientId::parse(raw).ok())
                .map(Self)
                .ok_or(ApiError::ClientNotFound),
        )
    }
}

/// `{callId}` of the path.
#[derive(Debug, Clone)]
pub struct CallIdParam(pub CallId);

impl FromRequest for CallIdParam {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.match_info()
                .get("callId")
                .and_then(|raw| CallId::parse(raw).ok())
                .map(Self)
                .ok_or(ApiError::CallNotFound),
        )
    }
}

/// The largest form body a provider webhook may carry, registered by `Api::app`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WebhookFormLimit(pub usize);

/// Used when no [`WebhookFormLimit`] is registered.
const DEFAULT_WEBHOOK_FORM_LIMIT: usize = 64 * 1024;

/// The header Twilio signs its webhooks with (protocols 3.1).
pub(crate) const TWILIO_SIGNATURE: &str = "x-twilio-signature";

/// A Twilio webhook whose `X-Twilio-Signature` is valid, with its form parameters.
///
/// The signature is checked before anything else is done with the request: without the header
/// the body is not even read. The signed URL is the public base URL followed by the path and
/// query exactly as received; the signed parameters are the form body's (`POST`), decoded, in
/// the order received and with repeated names kept, or none (`GET`, whose parameters are in
/// the query). A `POST` body is read as a form whatever its declared type; anything else fails
/// the signature.
#[derive(Debug)]
pub struct SignedWebhook {
    params: Vec<(String, String)>,
    call_id: Option<String>,
}

impl SignedWebhook {
    /// The form parameters, as received.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// `callId` of the query string; a missing or impossible id is simply not found.
    pub fn call_id(&self) -> Result<CallId, ApiError> {
        self.call_id
            .as_deref()
            .and_then(|raw| CallId::parse(raw).ok())
            .ok_or(ApiError::CallNotFound)
    }
}

impl FromRequest for SignedWebhook {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let signature = req
                .headers()
                .get(TWILIO_SIGNATURE)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .ok_or(ApiError::InvalidSignature)?
                .to_owned();
            let params = if req.method() == Method::GET {
                Vec::new()
            } else {
                let limit = req
                    .app_data::<WebhookFormLimit>()
                    .map_or(DEFAULT_WEBHOOK_FORM_LIMIT, |limit| limit.0);
                let body = read_body(&req, payload, limit).await?;
                form_urlencoded::parse(&body).into_owned().collect()
            };
            let state = req
                .app_data::<web::Data<ApiState>>()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("ApiState is not registered")))?;
            let path_and_query = req
                .uri()
                .path_and_query()
                .map_or_else(|| req.path(), |pq| pq.as_str());
            if !state
                .placement
                .verify_webhook(path_and_query, &params, &signature)
            {
                return Err(ApiError::InvalidSignature);
            }
            let call_id = form_urlencoded::parse(req.query_string().as_bytes())
                .find(|(name, _)| name == "callId")
                .map(|(_, value)| value.into_owned());
            Ok(Self { params, call_id })
        })
    }
}

/// The largest voice-agent webhook body that is buffered to be parsed, registered by
/// `Api::app`. Audio events are never buffered and have no such limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AgentWebhookLimit(pub usize);

/// Used when no [`AgentWebhookLimit`] is registered.
const DEFAULT_AGENT_WEBHOOK_LIMIT: usize = 5 * 1024 * 1024;

/// The header ElevenLabs signs its webhooks with (protocols 7.4); header names are
/// case-insensitive.
const AGENT_SIGNATURE: &str = "elevenlabs-signature";

/// A voice-agent (ElevenLabs) webhook whose `ElevenLabs-Signature` matches its body.
///
/// The signature header is checked (format, timestamp against the clock) before the body is
/// touched: a refusal is a 401 and not one body byte is read. Then every chunk goes to the
/// signature check as it arrives; chunks are also kept, up to the agent webhook limit, unless
/// the envelope turns out to be a `post_call_audio` event: those (the whole call as base64
/// MP3) are verified and dropped, never held in memory. Any other body over the limit is a
/// 413. A body that does not match the signature is a 401.
pub enum VerifiedAgentWebhook {
    /// The verified body of any event but audio, to be parsed.
    Event(Vec<u8>),
    /// A verified audio event; its body was not kept.
    Audio,
}

/// Shows the body's length only: it may hold a transcript.
impl std::fmt::Debug for VerifiedAgentWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(body) => write!(f, "Event({} bytes)", body.len()),
            Self::Audio => f.write_str("Audio"),
        }
    }
}

impl FromRequest for VerifiedAgentWebhook {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<ApiState>>() else {
            return Box::pin(ready(Err(ApiError::Internal(anyhow::anyhow!(
                "ApiState is not registered"
            )))));
        };
        // A header that is not visible ASCII is passed on as it is, for the check to refuse.
        let header = req
            .headers()
            .get(AGENT_SIGNATURE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let verifier = match state
            .agent_webhooks
            .verifier(header.as_deref(), state.clock.now())
        {
            Ok(verifier) => verifier,
            Err(rejection) => {
                return Box::pin(ready(Err(ApiError::InvalidWebhookSignature(rejection))));
            }
        };
        let limit = req
            .app_data::<AgentWebhookLimit>()
            .map_or(DEFAULT_AGENT_WEBHOOK_LIMIT, |limit| limit.0);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let payload = payload.take();
        Box::pin(async move {
            let mut verifier = verifier;
            let mut payload = payload;
            let mut sniffer = TypeSniffer::new();
            let mut body = Vec::with_capacity(declared.filter(|len| *len <= limit).unwrap_or(0));
            // The body outgrew the limit before its type was known: kept reading (and
            // verifying) in case it is audio, but no longer kept.
            let mut overflowed = false;
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::Http(StatusCode::BAD_REQUEST))?;
                verifier.update(&chunk);
                match sniffer.feed(&chunk) {
                    Verdict::Audio => body = Vec::new(),
                    verdict => {
                        if !overflowed && body.len() + chunk.len() <= limit {
                            body.extend_from_slice(&chunk);
                        } else if verdict == Verdict::NotAudio {
                            return Err(ApiError::PayloadTooLarge { limit });
                        } else {
                            overflowed = true;
                            body = Vec::new();
                        }
                    }
                }
            }
            let audio = sniffer.verdict() == Verdict::Audio;
            if overflowed && !audio {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            verifier
                .finish()
                .map_err(ApiError::InvalidWebhookSignature)?;
            Ok(if audio {
                Self::Audio
            } else {
                Self::Event(body)
            })
        })
    }
}

/// The whole body, refused with 413 as soon as it is known to exceed `limit`.
async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::Http(StatusCode::BAD_REQUEST))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON request body that must be an object, deserialised into a request struct.
///
/// Read through `web::Json<Value>`, so content type, size limit and syntax errors go through
/// the app's `JsonConfig` error handler. The object check matters: serde would otherwise
/// accept an array as a struct, member by position.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            if !value.is_object() {
                return Err(
                    ApiError::InvalidJson("request body must be a JSON object".into()).into(),
                );
            }
            serde_json::from_value(value)
                .map(Body)
                .map_err(|err| ApiError::InvalidJson(describe_json_error(&err)).into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token_of(header: Option<&str>) -> Result<String, UnauthorizedReason> {
        let mut req = TestRequest::default();
        if let Some(value) = header {
            req = req.insert_header((header::AUTHORIZATION, value));
        }
        bearer_token(&req.to_http_request()).map_err(|err| match err {
            ApiError::Unauthorized(reason) => reason,
            other => panic!("unexpected {other:?}"),
        })
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(token_of(Some("Bearer abc.def")), Ok("abc.def".to_owned()));
        assert_eq!(token_of(Some("bearer   abc")), Ok("abc".to_owned()));
        assert_eq!(token_of(None), Err(UnauthorizedReason::MissingToken));
        assert_eq!(
            token_of(Some("Basic dXNlcjpwdw==")),
            Err(UnauthorizedReason::MissingToken)
        );
        assert_eq!(
            token_of(Some("Bearer ")),
            Err(UnauthorizedReason::MissingToken)
        );
        assert_eq!(
            token_of(Some("Bearer")),
            Err(UnauthorizedReason::MissingToken)
        );
    }
}
