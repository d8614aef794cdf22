//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the DTOs' schemas, served at `GET /openapi.json`, and Swagger UI at `GET /docs/`, its
//! assets bundled into the binary at build time (nothing is fetched, then or at run time).
//!
//! What every operation shares is added here once instead of on each handler: the JSON
//! error body (with `requestId`), 500 on every operation, 401/403 on every operation that
//! takes a bearer token, and the body errors (400, 413, 415) on every JSON body.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{auth, calls, clients, elevenlabs, health, media, metrics, placement, twilio};
use crate::error::ApiError;

/// The security scheme of admin tokens (`POST /auth/admin/login`).
pub const ADMIN_TOKEN: &str = "adminToken";
/// The security scheme of client tokens (`POST /auth/login`).
pub const CLIENT_TOKEN: &str = "clientToken";

/// Where the document is served; Swagger UI loads it from here.
pub const DOCUMENT_PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "outcall",
        description = "Multi-tenant AI outbound calling: client accounts, call placement and \
            history, and the Twilio and ElevenLabs webhooks. Every 4xx and 5xx answer has the \
            `ErrorResponse` body. The full reference, with the order of checks and the value \
            rules, is docs/api.md.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::render,
        document,
        docs_redirect,
        docs_file,
        auth::admin_login,
        auth::client_login,
        auth::verify,
        auth::refresh,
        auth::logout,
        auth::change_secret,
        clients::list,
        clients::create,
        clients::get,
        clients::update,
        clients::delete,
        clients::reset_secret,
        calls::list_for_admin,
        calls::add,
        calls::get_for_admin,
        calls::update,
        placement::make_for_client,
        placement::hang_up_for_client,
        calls::dashboard,
        calls::activity,
        clients::get_own,
        clients::update_own,
        calls::list_own,
        calls::get_own,
        placement::make_own,
        placement::hang_up_own,
        calls::stats,
        twilio::twiml,
        twilio::status,
        media::stream,
        elevenlabs::post_call,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&Shared),
    tags(
        (name = "operations", description = "Probes, metrics and this document"),
        (name = "auth", description = "Tokens: logins, verification, refresh, logout, secret change"),
        (name = "admin", description = "Client accounts, their calls and the overview (admin token)"),
        (name = "client", description = "The client's own account and calls (client token)"),
        (name = "calls", description = "Placing and ending calls"),
        (name = "webhooks", description = "Signed provider callbacks: Twilio and ElevenLabs"),
    )
)]
pub struct ApiDoc;

/// The one JSON error body. Every 4xx and 5xx answer carries `error`, `statusCode` and
/// `requestId`; the other members appear only where they apply (see docs/api.md §1.4).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[expect(
    dead_code,
    reason = "only its schema is used; the body is built in `error.rs`"
)]
pub struct ErrorResponse {
    /// The headline, e.g. `Missing required fields`.
    #[schema(example = "Client not found")]
    error: String,
    /// The HTTP status again.
    #[schema(example = 404)]
    status_code: u16,
    /// The request's id: the `X-Request-Id` it came with, or one generated for it (also in
    /// the `X-Request-Id` response header and on every log line of the request).
    #[schema(example = "5f0c6b1e2a7d4c3f9e8b7a6d5c4b3a21")]
    request_id: String,
    /// Why a token was refused (401), or why a call cannot be placed (403).
    message: Option<String>,
    /// Which member or value is wrong and why; never the cause of a 5xx.
    details: Option<String>,
    /// The JSON paths of missing required members (400 `Missing required fields`).
    required_fields: Option<Vec<String>>,
    /// Seconds until the next attempt is allowed (429, and 503 while shutting down or when
    /// the telephony provider rate-limits); also in the `Retry-After` header.
    retry_after: Option<u64>,
    /// Twilio's error code, when Twilio refused a make-call or hangup.
    twilio_code: Option<u32>,
    /// The call a telephony error concerns.
    call_id: Option<String>,
    /// `/readyz` only: `unavailable` or `draining`.
    status: Option<String>,
}

/// `{"status": "..."}` of the health probes.
#[derive(ToSchema)]
#[expect(dead_code, reason = "only its schema is used")]
pub struct ProbeStatus {
    #[schema(example = "ok")]
    status: String,
}

/// The form of a Twilio status callback: the parameters outcall reads (every other one is
/// ignored; empty values count as absent).
#[derive(ToSchema)]
#[expect(dead_code, reason = "only its schema is used")]
pub struct TwilioStatusForm {
    /// One of the call statuses; absent on answering-machine callbacks.
    #[schema(schema_with = crate::dto::schema::call_status)]
    #[schema(rename = "CallStatus")]
    call_status: Option<String>,
    #[schema(rename = "CallSid", example = "CA0123456789abcdef0123456789abcdef")]
    call_sid: Option<String>,
    /// Whole seconds, 0 to 604800.
    #[schema(rename = "CallDuration")]
    call_duration: Option<u32>,
    #[schema(rename = "AnsweredBy")]
    answered_by: Option<String>,
    #[schema(rename = "RecordingUrl")]
    recording_url: Option<String>,
    /// 100 to 699.
    #[schema(rename = "SipResponseCode")]
    sip_response_code: Option<u16>,
}

/// Adds the bearer security schemes and the responses every operation shares.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (ADMIN_TOKEN, "An admin token from `POST /auth/admin/login`."),
            (CLIENT_TOKEN, "A client token from `POST /auth/login`."),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(description))
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            let mut operations: Vec<(&str, &mut Operation)> = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ]
            .into_iter()
            .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
            .collect();
            // One handler for several methods (`/twilio/twiml`) gives them one id: the
            // method tells them apart.
            let shared_id = operations.len() > 1
                && operations
                    .windows(2)
                    .all(|pair| pair[0].1.operation_id == pair[1].1.operation_id);
            for (method, operation) in &mut operations {
                if shared_id && let Some(id) = &mut operation.operation_id {
                    id.push('_');
                    id.push_str(method);
                }
                add_shared_responses(operation);
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorResponse")))
                .build(),
        )
        .build()
        .into()
}

/// Operations whose JSON body is read whatever its `Content-Type`: the signed ElevenLabs
/// webhook is verified over its raw bytes and parsed after, so it never answers 415.
const BODY_TYPE_NOT_CHECKED: &[&str] = &["elevenlabs_post_call"];

fn add_shared_responses(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.contains_key("application/json"),
            RefOr::Ref(_) => false,
        });
    let mut shared: BTreeMap<&str, &str> = BTreeMap::new();
    if secured {
        shared.insert(
            "401",
            "`Unauthorized`: the bearer token is missing, invalid, expired, revoked, or its \
             client is no longer active (`message` says which).",
        );
        shared.insert(
            "403",
            "`Forbidden`: a token of the other kind (admin vs client).",
        );
    }
    if json_body {
        shared.insert(
            "400",
            "`Invalid JSON`, `Missing required fields` (`requiredFields`) or an invalid member \
             (`details` names it).",
        );
        shared.insert("413", "`Payload too large`: the body is over the limit.");
        if !BODY_TYPE_NOT_CHECKED.contains(&operation.operation_id.as_deref().unwrap_or("")) {
            shared.insert(
                "415",
                "`Unsupported media type`: the body is not `application/json`.",
            );
        }
    }
    shared.insert(
        "500",
        "`Internal server error`: the cause is logged, never shown.",
    );
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// The document, built once per process.
static DOCUMENT: LazyLock<Arc<Document>> = LazyLock::new(|| Arc::new(ApiDoc::openapi()));

/// The OpenAPI document of every route.
pub fn document_value() -> &'static Document {
    &DOCUMENT
}

/// Swagger UI's configuration: the document it shows, and the path it lives under.
static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::from(DOCUMENT_PATH)));

/// This document.
#[utoipa::path(
    get,
    operation_id = "openapi_document",
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route.", content_type = "application/json", body = Object)),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(document_value())
}

/// Interactive documentation: redirects to `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 308, description = "Redirect to `/docs/`, Swagger UI.", headers(("Location" = String)))),
)]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// Swagger UI (`/docs/` is its page) and its assets, bundled into the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "operations",
    params(("file" = String, Path, description = "An asset of Swagger UI; empty for its page (`/docs/`).")),
    responses(
        (status = 200, description = "The page or asset.", content(("text/html"), ("text/css"), ("application/javascript"), ("image/png"))),
        (status = 404, description = "No such asset.", body = ErrorResponse),
    ),
)]
pub async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = file.into_inner();
    match utoipa_swagger_ui::serve(&file, SWAGGER.clone()) {
        Ok(Some(asset)) => {
            let mut response = HttpResponse::Ok();
            if asset.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(response
                .content_type(asset.content_type)
                .body(asset.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::RouteNotFound),
        Err(cause) => Err(ApiError::Internal(anyhow::anyhow!(
            "serving a Swagger UI asset: {cause}"
        ))),
    }
}
