//! outcall's HTTP API (actix-web 4): the account, authentication, call-history and
//! call-placement endpoints of the API contract, with their exact paths, camelCase JSON
//! bodies, status codes and error bodies, the Twilio webhooks (TwiML, status callbacks) and
//! the ElevenLabs post-call webhook.
//!
//! # Mounting
//! The login rate limiter must be one per process, not one per worker, so it lives in
//! [`Api`], which is built once; [`serve`] clones it into every worker and adds the media
//! stream's WebSocket upgrade handler:
//!
//! ```ignore
//! let api = outcall_http::Api::new(state, settings);
//! outcall_http::serve(api, listener, ServerOptions { shutdown_timeout_secs: 30 })?.await
//! ```
//!
//! [`app`] builds a fresh [`Api`] for a single `App` (tests, or one worker).
//!
//! # Shape
//! - Handlers are thin: extractors (auth is an argument: [`AdminPrincipal`],
//!   [`ClientPrincipal`]), one `TryFrom` from a request DTO into a domain command, exactly
//!   one service call, one response DTO.
//! - `/admin/*`, `/secure/*` and `/auth/{refresh,logout,change-secret}` are also wrapped in
//!   an authentication gate, because actix polls a handler's extractors together: without
//!   it an unauthenticated request could get a 400/404 about its body or path (and have its
//!   body read) before authentication answers 401/403. The principal extractors reuse the
//!   gate's result.
//! - Request members are read as "any JSON value" and checked in the `TryFrom`, so a wrong
//!   type, `null` or an unknown member is a 400 naming its JSON path (`clientMeta.phone`).
//! - One [`ApiError`], one status table, one JSON error body, also for extractor and
//!   framework errors (bad JSON 400, content type 415, body size 413, unknown route 404,
//!   wrong method 405). 5xx causes are logged with `tracing::error!`, never shown.
//! - Twilio webhooks (`/twilio/twiml`, `/twilio/status`) carry no bearer token: the
//!   [`SignedWebhook`] extractor checks `X-Twilio-Signature` before anything else happens,
//!   and request spans show only their `callId` query parameter (a `GET` webhook carries
//!   phone numbers in its query).
//! - The Twilio media stream (`GET /twilio/media-stream`, a WebSocket) carries no bearer
//!   token: the upgrade's `X-Twilio-Signature` over the stream URL is checked before the
//!   upgrade (403 otherwise, and no agent conversation is opened), then the socket is handed
//!   to [`ApiState::bridge`] on the accepting worker. The upgrade is taken by [`serve`]'s
//!   upgrade handler, before routing: serve the API with [`serve`], not a plain actix-web
//!   `HttpServer`, or media streams are answered 501. Serving a call's TwiML prepares its agent
//!   connection so the agent is ready when the stream starts.
//! - The ElevenLabs post-call webhook carries no bearer token either: the
//!   [`VerifiedAgentWebhook`] extractor checks `ElevenLabs-Signature` before reading the body,
//!   then verifies the body as it streams in, buffering it up to
//!   [`HttpSettings::agent_webhook_limit_bytes`] except for audio events, which are verified
//!   and dropped. It always answers 200 once the event is verified and understood (also for
//!   unknown calls), because ElevenLabs disables webhooks that fail repeatedly.
//! - The crate sees only domain services and ports; it names no adapter.

mod dto;
mod envelope;
mod error;
mod extract;
mod media_socket;
mod observe;
mod rate_limit;
mod routes;
mod server;
mod telemetry;
mod time;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, web};
use outcall_domain::ports::{AgentWebhooks, Clock, HealthProbe};
use outcall_domain::services::{
    Authentication, CallHistory, CallPlacement, ClientAccounts, PostCallAnalysis,
};
use outcall_media_bridge::MediaBridge;
use tracing_actix_web::TracingLogger;

pub use error::{ApiError, Forbidden, Problem, ProviderFailure};
pub use extract::{
    AdminPrincipal, CallIdParam, ClientIdParam, ClientPrincipal, SignedWebhook,
    VerifiedAgentWebhook,
};
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use observe::{REQUEST_ID_HEADER, RequestId};
pub use server::{ServerOptions, serve};
pub use time::Millis;

/// Latency buckets of `http_request_duration_seconds` and every other histogram (seconds).
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of `bridge_relay_latency_seconds`: a relayed audio frame takes well under a
/// millisecond on a healthy replica, and 20 ms (one frame's worth of audio) is already late.
const RELAY_BUCKETS: [f64; 11] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25,
];

/// A Prometheus recorder builder with outcall's histogram buckets; the server installs it
/// once (`install_recorder`) and passes the handle in [`HttpSettings::metrics`].
pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let relay = Matcher::Full("bridge_relay_latency_seconds".to_owned());
    // Only an empty bucket list is refused, and neither list is empty.
    PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .and_then(|builder| builder.set_buckets_for_metric(relay, &RELAY_BUCKETS))
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

use rate_limit::LoginLimiter;

/// The domain services the handlers call, the readiness probe, what the voice-agent
/// webhook needs to be verified (the provider's signature check and the clock it is checked
/// against), and the media bridge the Twilio media streams are handed to.
#[derive(Clone)]
pub struct ApiState {
    pub accounts: ClientAccounts,
    pub auth: Authentication,
    pub calls: CallHistory,
    pub placement: CallPlacement,
    pub analysis: PostCallAnalysis,
    pub agent_webhooks: Arc<dyn AgentWebhooks>,
    pub clock: Arc<dyn Clock>,
    pub health: Arc<dyn HealthProbe>,
    /// Bridges media streams to voice-agent conversations; shared by all workers (drain it
    /// on shutdown before the workers stop).
    pub bridge: MediaBridge,
}

/// Login attempts allowed per minute; the burst equals the per-minute quota. 0 switches a
/// limit off.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// Per client id (login and change-secret) or admin username.
    pub per_account_per_minute: u32,
    /// Per source address (IPv6: per /64).
    pub per_address_per_minute: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account_per_minute: 10,
            per_address_per_minute: 30,
        }
    }
}

/// Whether the process is draining (shutting down): shared by every worker and the signal
/// handler. While draining, `/readyz` answers 503 `{"status": "draining"}` and new calls are
/// refused with 503.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining; there is no way back.
    pub fn start_draining(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest JSON body on most routes (default 64 KiB).
    pub json_limit_bytes: usize,
    /// Largest JSON body when adding or updating a call, which may carry a transcript
    /// (default 1 MiB).
    pub call_json_limit_bytes: usize,
    /// Largest form body of a Twilio webhook (default 64 KiB).
    pub webhook_form_limit_bytes: usize,
    /// Largest ElevenLabs webhook body, which may carry a long transcript (default 5 MiB).
    /// `post_call_audio` events are exempt: they are verified as they stream in and never
    /// kept.
    pub agent_webhook_limit_bytes: usize,
    pub login_limits: LoginLimits,
    /// Key login limits by the last `X-Forwarded-For` entry instead of the peer address.
    /// Only for deployments behind a proxy that sets it (default false).
    pub trust_forwarded_for: bool,
    /// Set by the server when shutdown starts (a fresh, ready one by default).
    pub readiness: Readiness,
    /// The process's Prometheus recorder, rendered at `GET /metrics` (404 when `None`).
    pub metrics: Option<PrometheusHandle>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            json_limit_bytes: 64 * 1024,
            call_json_limit_bytes: 1024 * 1024,
            webhook_form_limit_bytes: 64 * 1024,
            agent_webhook_limit_bytes: 5 * 1024 * 1024,
            login_limits: LoginLimits::default(),
            trust_forwarded_for: false,
            readiness: Readiness::new(),
            metrics: None,
        }
    }
}

/// The API, built once per process: state, settings and the shared login rate limiter.
#[derive(Clone)]
pub struct Api {
    state: web::Data<ApiState>,
    settings: HttpSettings,
    limiter: web::Data<LoginLimiter>,
}

impl Api {
    pub fn new(state: ApiState, settings: HttpSettings) -> Self {
        let limiter = LoginLimiter::new(&settings.login_limits, settings.trust_forwarded_for);
        Self {
            state: web::Data::new(state),
            settings,
            limiter: web::Data::new(limiter),
        }
    }

    /// One `App` with every route, the extractor error handlers, JSON 404/405 and request
    /// spans. Call it from the `HttpServer::new` factory; all workers share the limiter.
    pub fn app(
        &self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody + use<>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<>,
    > {
        let json = |limit: usize| {
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(error::json_error_handler)
        };
        let call_json = json(self.settings.call_json_limit_bytes);
        App::new()
            .app_data(self.state.clone())
            .app_data(self.limiter.clone())
            .app_data(web::Data::new(self.settings.readiness.clone()))
            .app_data(web::Data::new(self.settings.metrics.clone()))
            .app_data(json(self.settings.json_limit_bytes))
            .app_data(extract::WebhookFormLimit(
                self.settings.webhook_form_limit_bytes,
            ))
            .app_data(extract::AgentWebhookLimit(
                self.settings.agent_webhook_limit_bytes,
            ))
            .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
            .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
            .configure(|cfg| routes::configure(cfg, call_json))
            .default_service(web::to(error::route_not_found))
            .wrap(ErrorHandlers::new().default_handler(error::json_fallback))
            .wrap(TracingLogger::<telemetry::ApiRootSpan>::new())
            .wrap(from_fn(observe::observe))
    }
}

/// An `App` with its own rate limiter. Fine for tests and a single worker; a multi-worker
/// server should build one [`Api`] and call [`Api::app`] per worker.
pub fn app(
    state: ApiState,
    settings: HttpSettings,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    Api::new(state, settings).app()
}
