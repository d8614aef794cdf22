//! `GET /metrics`: Prometheus text exposition of the process's recorder, with the media
//! bridge's counters and the database pool's usage read at scrape time.

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::ApiState;
use crate::error::ApiError;

/// Prometheus metrics; 404 when the server installed no recorder.
#[utoipa::path(
    get,
    operation_id = "metrics",
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 404, description = "`Not found`: no metrics recorder is installed.", body = super::openapi::ErrorResponse),
    ),
)]
pub async fn render(
    state: web::Data<ApiState>,
    handle: web::Data<Option<PrometheusHandle>>,
) -> Result<HttpResponse, ApiError> {
    let handle = handle.as_ref().as_ref().ok_or(ApiError::RouteNotFound)?;
    let bridge = state.bridge.stats().snapshot();
    // u64 → f64 loses nothing below 2^53 live calls.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("bridge_live_calls").set(bridge.live_sessions as f64);
    metrics::counter!("bridge_frames_relayed_total", "direction" => "to_agent")
        .absolute(bridge.frames_to_agent);
    metrics::counter!("bridge_frames_relayed_total", "direction" => "to_twilio")
        .absolute(bridge.frames_to_twilio);
    metrics::counter!("bridge_frames_dropped_total").absolute(bridge.frames_dropped);
    metrics::counter!("bridge_malformed_messages_total").absolute(bridge.malformed_messages);
    if let Some(pool) = state.health.pool_usage() {
        metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.idle);
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(pool.in_use);
        metrics::gauge!("db_pool_max_connections").set(pool.max);
    }
    handle.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render()))
}
