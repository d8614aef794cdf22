//! The HTTP API (protocols 6.1, 7.6): signed URL and conversation GET, with ElevenLabs-shaped
//! errors.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use serde_json::json;

use super::front::CONVERSATION_PATH;
use super::report;
use super::state::Shared;

pub(crate) fn server(
    shared: Arc<Shared>,
    listener: TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route(
                "/v1/convai/conversation/get-signed-url",
                web::get().to(signed_url),
            )
            // Deprecated spelling, still served by ElevenLabs (protocols 6.1).
            .route(
                "/v1/convai/conversation/get_signed_url",
                web::get().to(signed_url),
            )
            .route(
                "/v1/convai/conversations/{conversation_id}",
                web::get().to(get_conversation),
            )
            .route(CONVERSATION_PATH, web::to(upgrade_required))
            .default_service(web::to(not_found))
    })
    // One worker is plenty for an emulator and keeps threads few in test suites.
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("serving the ElevenLabs emulator")?
    .run();
    Ok(server)
}

fn detail(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({"detail": {"status": code, "message": message}}))
}

/// 401 unless `xi-api-key` is the configured key.
fn check_key(request: &HttpRequest, shared: &Shared) -> Option<HttpResponse> {
    let key = request
        .headers()
        .get("xi-api-key")
        .and_then(|v| v.to_str().ok());
    if key == Some(shared.config.api_key.as_str()) {
        return None;
    }
    Some(detail(
        401,
        "invalid_api_key",
        "Invalid API key: check the xi-api-key header.",
    ))
}

/// FastAPI's 422 for a missing query parameter.
fn missing_query(name: &str) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(json!({
        "detail": [{
            "type": "missing",
            "loc": ["query", name],
            "msg": "Field required",
            "input": null,
        }]
    }))
}

async fn signed_url(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(refusal) = check_key(&request, &shared) {
        return refusal;
    }
    let agent_id = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(name, _)| name == "agent_id")
        .map(|(_, value)| value.into_owned());
    let Some(agent_id) = agent_id.filter(|a| !a.is_empty()) else {
        return missing_query("agent_id");
    };
    let agents = &shared.config.agents;
    if !agents.is_empty() && !agents.contains(&agent_id) {
        return detail(
            404,
            "agent_not_found",
            &format!("Agent {agent_id} was not found."),
        );
    }
    let token = shared.grant(&agent_id);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("agent_id", &agent_id)
        .append_pair("conversation_signature", &token)
        .finish();
    HttpResponse::Ok().json(json!({
        "signed_url": format!("{}{CONVERSATION_PATH}?{query}", shared.ws_base),
    }))
}

async fn get_conversation(
    request: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refusal) = check_key(&request, &shared) {
        return refusal;
    }
    let analysis = &shared.config.script.analysis;
    match shared.read(&path, |record| report::conversation_data(record, analysis)) {
        Some(body) => HttpResponse::Ok().json(body),
        None => detail(
            404,
            "conversation_not_found",
            &format!("Conversation {} was not found.", path.as_str()),
        ),
    }
}

async fn upgrade_required() -> HttpResponse {
    detail(
        426,
        "upgrade_required",
        "The conversation endpoint speaks WebSocket only.",
    )
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"detail": "Not Found"}))
}
