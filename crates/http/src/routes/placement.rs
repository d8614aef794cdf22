//! Placing and ending calls: `make-call` and `hangup`, for a client itself and for an admin
//! acting for a client.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use outcall_domain::services::{CallRequest, PlacementError};

use crate::dto::auth::SuccessMessage;
use crate::dto::placement::{CallPlacedResponse, MakeCallRequest};
use crate::error::ApiError;
use crate::extract::{AdminPrincipal, Body, CallIdParam, ClientIdParam, ClientPrincipal};
use crate::{ApiState, Readiness};

/// Counts a placement in `calls_placed_total{result}`.
fn counted<T>(placed: Result<T, PlacementError>) -> Result<T, PlacementError> {
    let result = match &placed {
        Ok(_) => "placed",
        Err(PlacementError::ClientNotFound | PlacementError::CallNotFound) => "not_found",
        Err(PlacementError::ClientInactive) => "client_inactive",
        Err(PlacementError::CallAlreadyEnded) => "already_ended",
        Err(PlacementError::Telephony { .. }) => "telephony_error",
        Err(PlacementError::Unexpected(_)) => "error",
    };
    metrics::counter!("calls_placed_total", "result" => result).increment(1);
    placed
}

/// Refuses new calls with 503 and `Retry-After` once shutdown has started, before the
/// request body is read (wraps the make-call resources, inside the authentication gate).
pub async fn refuse_while_draining<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<Readiness>>()
        .is_some_and(|readiness| readiness.is_draining());
    if draining {
        return Ok(req
            .error_response(ApiError::ShuttingDown)
            .map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Places a call from the client's own Twilio number with the client's own agent.
#[utoipa::path(
    post,
    operation_id = "make_call",
    path = "/secure/make-call",
    tag = "calls",
    security(("clientToken" = [])),
    request_body = MakeCallRequest,
    responses(
        (status = 200, description = "`Call initiated successfully`.", body = CallPlacedResponse),
        (status = 400, description = "`Missing required fields` (`phone`), `Invalid call request` (`details`), `Invalid JSON`, or Twilio refused the destination (`twilioCode`, `callId`).", body = super::openapi::ErrorResponse),
        (status = 502, description = "The telephony provider refused or failed (`twilioCode`, `callId`, `details`).", body = super::openapi::ErrorResponse),
        (status = 503, description = "`Service is shutting down` (`Retry-After`), or the provider is rate limiting (`retryAfter`).", body = super::openapi::ErrorResponse, headers(("Retry-After" = u64))),
    ),
)]
#[tracing::instrument(name = "make_call", skip_all, fields(client_id = %who.id(), call_id = tracing::field::Empty))]
pub async fn make_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    body: Body<MakeCallRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = CallRequest::try_from(body.0)?;
    let placed = counted(state.placement.place(who.id(), request).await)?;
    tracing::Span::current().record("call_id", tracing::field::display(&placed.call_id));
    Ok(HttpResponse::Ok().json(CallPlacedResponse::new(&placed)))
}

/// Places a call for a client, from its Twilio number with its agent.
#[utoipa::path(
    post,
    operation_id = "make_call_for_client",
    path = "/admin/clients/{clientId}/make-call",
    tag = "calls",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    request_body = MakeCallRequest,
    responses(
        (status = 200, description = "`Call initiated successfully`.", body = CallPlacedResponse),
        (status = 400, description = "`Missing required fields` (`phone`), `Invalid call request` (`details`), `Invalid JSON`, or Twilio refused the destination (`twilioCode`, `callId`).", body = super::openapi::ErrorResponse),
        (status = 403, description = "`Forbidden`: not an admin token, or `Client is not active`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
        (status = 502, description = "The telephony provider refused or failed (`twilioCode`, `callId`, `details`).", body = super::openapi::ErrorResponse),
        (status = 503, description = "`Service is shutting down` (`Retry-After`), or the provider is rate limiting (`retryAfter`).", body = super::openapi::ErrorResponse, headers(("Retry-After" = u64))),
    ),
)]
#[tracing::instrument(name = "make_call_for_client", skip_all, fields(client_id = %id.0, call_id = tracing::field::Empty))]
pub async fn make_for_client(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    body: Body<MakeCallRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = CallRequest::try_from(body.0)?;
    let placed = counted(state.placement.place(&id.0, request).await)?;
    tracing::Span::current().record("call_id", tracing::field::display(&placed.call_id));
    Ok(HttpResponse::Ok().json(CallPlacedResponse::new(&placed)))
}

/// Ends one of the client's own live calls.
///
/// Another client's call is as missing as one that does not exist.
#[utoipa::path(
    post,
    operation_id = "hang_up",
    path = "/secure/calls/{callId}/hangup",
    tag = "calls",
    security(("clientToken" = [])),
    params(("callId" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "`Call ended`.", body = SuccessMessage),
        (status = 404, description = "`Call not found` (also for another client's call).", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Call already ended`.", body = super::openapi::ErrorResponse),
        (status = 502, description = "The telephony provider refused or failed (`twilioCode`, `callId`, `details`).", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "hang_up", skip_all, fields(client_id = %who.id(), call_id = %call.0))]
pub async fn hang_up_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    call: CallIdParam,
) -> Result<HttpResponse, ApiError> {
    state.placement.hang_up(who.id(), &call.0).await?;
    Ok(HttpResponse::Ok().json(SuccessMessage::new("Call ended")))
}

/// Ends a client's live call.
#[utoipa::path(
    post,
    operation_id = "hang_up_for_client",
    path = "/admin/clients/{clientId}/calls/{callId}/hangup",
    tag = "calls",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id."), ("callId" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "`Call ended`.", body = SuccessMessage),
        (status = 404, description = "`Client not found` or `Call not found`.", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Call already ended`.", body = super::openapi::ErrorResponse),
        (status = 502, description = "The telephony provider refused or failed (`twilioCode`, `callId`, `details`).", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "hang_up_for_client", skip_all, fields(client_id = %id.0, call_id = %call.0))]
pub async fn hang_up_for_client(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    call: CallIdParam,
) -> Result<HttpResponse, ApiError> {
    state.placement.hang_up(&id.0, &call.0).await?;
    Ok(HttpResponse::Ok().json(SuccessMessage::new("Call ended")))
}
