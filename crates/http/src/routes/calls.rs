//! Call history, statistics and the admin overview.

use actix_web::{HttpResponse, web};
use outcall_domain::queries::CallListQuery;
use outcall_domain::{CallPatch, NewCall};

use crate::ApiState;
use crate::dto::MessageResponse;
use crate::dto::calls::{
    ActivityResponse, AddCallRequest, CallAddedResponse, CallListResponse, CallStatsResponse,
    CallView, DashboardResponse, UpdateCallRequest,
};
use crate::dto::queries::{ActivityParams, ActivityWindow, CallListParams};
use crate::error::ApiError;
use crate::extract::{AdminPrincipal, Body, CallIdParam, ClientIdParam, ClientPrincipal};

/// A client's call history, newest first.
#[utoipa::path(
    get,
    operation_id = "list_client_calls",
    path = "/admin/clients/{clientId}/calls",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id."), crate::dto::queries::CallListParams),
    responses(
        (status = 200, description = "One page of calls, with the total and the filtered count.", body = CallListResponse),
        (status = 400, description = "`Invalid query parameter`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "list_client_calls", skip_all, fields(client_id = %id.0))]
pub async fn list_for_admin(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    params: web::Query<CallListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = CallListQuery::try_from(params.into_inner())?;
    let page = state.calls.list(&id.0, &query).await?;
    Ok(HttpResponse::Ok().json(CallListResponse::new(&id.0, &query, &page)))
}

/// One call of a client.
#[utoipa::path(
    get,
    operation_id = "get_client_call",
    path = "/admin/clients/{clientId}/calls/{callId}",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id."), ("callId" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 404, description = "`Client not found` or `Call not found`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "get_client_call", skip_all, fields(client_id = %id.0, call_id = %call.0))]
pub async fn get_for_admin(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    call: CallIdParam,
) -> Result<HttpResponse, ApiError> {
    let call = state.calls.get(&id.0, &call.0).await?;
    Ok(HttpResponse::Ok().json(CallView::from(&call)))
}

/// Adds a call record to a client's history (no call is placed).
#[utoipa::path(
    post,
    operation_id = "add_call",
    path = "/admin/clients/{clientId}/calls",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    request_body = AddCallRequest,
    responses(
        (status = 200, description = "`Call added to history successfully`, with the new call's id.", body = CallAddedResponse),
        (status = 400, description = "`Missing required fields` (`callData.phone`), `Invalid call data` (`details`), or `Invalid JSON`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Call already exists with this callSid`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "add_call", skip_all, fields(client_id = %id.0, call_id = tracing::field::Empty))]
pub async fn add(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    body: Body<AddCallRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewCall::try_from(body.0)?;
    let call_id = state.calls.add(&id.0, new).await?;
    tracing::Span::current().record("call_id", call_id.as_str());
    Ok(HttpResponse::Ok().json(CallAddedResponse::new(&call_id)))
}

/// Updates a call record; its status moves only forward (see docs/api.md §3).
#[utoipa::path(
    put,
    operation_id = "update_call",
    path = "/admin/clients/{clientId}/calls/{callId}",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id."), ("callId" = String, Path, description = "The call's id.")),
    request_body = UpdateCallRequest,
    responses(
        (status = 200, description = "`Call details updated successfully`.", body = MessageResponse),
        (status = 400, description = "`Invalid update data` (`details`), or `Invalid JSON`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Client not found` or `Call not found`.", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Invalid status transition`, or `Call already exists with this callSid`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "update_call", skip_all, fields(client_id = %id.0, call_id = %call.0))]
pub async fn update(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    call: CallIdParam,
    body: Body<UpdateCallRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = CallPatch::try_from(body.0)?;
    state.calls.update(&id.0, &call.0, &patch).await?;
    Ok(HttpResponse::Ok().json(MessageResponse::new("Call details updated successfully")))
}

/// Client and call counts.
#[utoipa::path(
    get,
    operation_id = "dashboard",
    path = "/admin/dashboard",
    tag = "admin",
    security(("adminToken" = [])),
    responses((status = 200, description = "Counts of clients by status and of calls by outcome and status.", body = DashboardResponse)),
)]
#[tracing::instrument(name = "dashboard", skip_all)]
pub async fn dashboard(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let dashboard = state.calls.dashboard().await?;
    Ok(HttpResponse::Ok().json(DashboardResponse::new(&dashboard)))
}

/// Recent calls across all clients, newest first.
#[utoipa::path(
    get,
    operation_id = "recent_activity",
    path = "/admin/activity",
    tag = "admin",
    security(("adminToken" = [])),
    params(crate::dto::queries::ActivityParams),
    responses(
        (status = 200, description = "The recent calls.", body = ActivityResponse),
        (status = 400, description = "`Invalid query parameter`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "recent_activity", skip_all)]
pub async fn activity(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    params: web::Query<ActivityParams>,
) -> Result<HttpResponse, ApiError> {
    let window = ActivityWindow::try_from(params.into_inner())?;
    let activities = state
        .calls
        .recent_activity(window.days, window.limit)
        .await?;
    Ok(HttpResponse::Ok().json(ActivityResponse::new(window.days, &activities)))
}

/// The client's own call history, newest first.
#[utoipa::path(
    get,
    operation_id = "list_own_calls",
    path = "/secure/calls",
    tag = "client",
    security(("clientToken" = [])),
    params(crate::dto::queries::CallListParams),
    responses(
        (status = 200, description = "One page of calls, with the total and the filtered count.", body = CallListResponse),
        (status = 400, description = "`Invalid query parameter`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "list_own_calls", skip_all, fields(client_id = %who.id()))]
pub async fn list_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    params: web::Query<CallListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = CallListQuery::try_from(params.into_inner())?;
    let page = state.calls.list(who.id(), &query).await?;
    Ok(HttpResponse::Ok().json(CallListResponse::new(who.id(), &query, &page)))
}

/// One of the client's own calls.
///
/// Another client's call is as missing as one that does not exist.
#[utoipa::path(
    get,
    operation_id = "get_own_call",
    path = "/secure/calls/{callId}",
    tag = "client",
    security(("clientToken" = [])),
    params(("callId" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 404, description = "`Call not found` (also for another client's call).", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "get_own_call", skip_all, fields(client_id = %who.id(), call_id = %call.0))]
pub async fn get_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    call: CallIdParam,
) -> Result<HttpResponse, ApiError> {
    let call = state.calls.get(who.id(), &call.0).await?;
    Ok(HttpResponse::Ok().json(CallView::from(&call)))
}

/// The client's own call statistics.
#[utoipa::path(
    get,
    operation_id = "own_call_stats",
    path = "/secure/call-stats",
    tag = "client",
    security(("clientToken" = [])),
    responses((status = 200, description = "Counts by status, outcome and sentiment, and durations in seconds.", body = CallStatsResponse)),
)]
#[tracing::instrument(name = "own_call_stats", skip_all, fields(client_id = %who.id()))]
pub async fn stats(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let stats = state.calls.stats(who.id()).await?;
    Ok(HttpResponse::Ok().json(CallStatsResponse::new(who.id(), &stats)))
}
