//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::{ApiState, Readiness};

/// The process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process and its store answer and it is not draining; 503 otherwise (the cause is
/// logged, not shown).
pub async fn readyz(
    state: web::Data<ApiState>,
    readiness: web::Data<Readiness>,
) -> Result<HttpResponse, ApiError> {
    if readiness.is_draining() {
        return Err(ApiError::Draining);
    }
    state
        .health
        .ping()
        .await
        .map_err(|err| ApiError::NotReady(err.into()))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
