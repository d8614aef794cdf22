//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::{ApiState, Readiness};

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = super::openapi::ProbeStatus, example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process and its store answer and it is not draining; 503 otherwise (the cause is
/// logged, not shown).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = super::openapi::ProbeStatus, example = json!({"status": "ready"})),
        (status = 503, description = "`Service unavailable` with `status: unavailable` (the store does not answer), or `Service is shutting down` with `status: draining`.", body = super::openapi::ErrorResponse),
    ),
)]
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
