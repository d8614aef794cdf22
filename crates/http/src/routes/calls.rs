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

#[tracing::instrument(name = "dashboard", skip_all)]
pub async fn dashboard(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let dashboard = state.calls.dashboard().await?;
    Ok(HttpResponse::Ok().json(DashboardResponse::new(&dashboard)))
}

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

/// Another client's call is as missing as one that does not exist.
#[tracing::instrument(name = "get_own_call", skip_all, fields(client_id = %who.id(), call_id = %call.0))]
pub async fn get_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    call: CallIdParam,
) -> Result<HttpResponse, ApiError> {
    let call = state.calls.get(who.id(), &call.0).await?;
    Ok(HttpResponse::Ok().json(CallView::from(&call)))
}

#[tracing::instrument(name = "own_call_stats", skip_all, fields(client_id = %who.id()))]
pub async fn stats(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let stats = state.calls.stats(who.id()).await?;
    Ok(HttpResponse::Ok().json(CallStatsResponse::new(who.id(), &stats)))
}
