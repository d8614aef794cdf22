//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::ApiState;
use crate::error::ApiError;

/// The process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process and its store answer; 503 otherwise (the cause is logged, not shown).
pub async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ping()
        .await
        .map_err(|err| ApiError::NotReady(err.into()))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
