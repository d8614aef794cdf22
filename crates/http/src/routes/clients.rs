//! Client accounts: `/admin/clients*` (admins) and `/secure/client` (the client itself).

use actix_web::{HttpResponse, web};
use outcall_domain::queries::ClientListQuery;
use outcall_domain::{ClientPatch, NewClient, ProfilePatch};

use crate::ApiState;
use crate::dto::MessageResponse;
use crate::dto::clients::{
    ClientListResponse, ClientView, CreateClientRequest, CreatedClientResponse,
    ProfileUpdateRequest, ResetSecretResponse, UpdateClientRequest, UpdatedClientResponse,
};
use crate::dto::queries::ClientListParams;
use crate::error::ApiError;
use crate::extract::{AdminPrincipal, Body, ClientIdParam, ClientPrincipal};

#[tracing::instrument(name = "create_client", skip_all, fields(client_id = tracing::field::Empty))]
pub async fn create(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    body: Body<CreateClientRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewClient::try_from(body.0)?;
    let (client, secret) = state.accounts.create(new).await?;
    tracing::Span::current().record("client_id", client.id.as_str());
    Ok(HttpResponse::Created().json(CreatedClientResponse::new(&client, &secret)))
}

#[tracing::instrument(name = "list_clients", skip_all)]
pub async fn list(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    params: web::Query<ClientListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = ClientListQuery::try_from(params.into_inner())?;
    let page = state.accounts.list(&query).await?;
    Ok(HttpResponse::Ok().json(ClientListResponse::new(page.total, &page.clients)))
}

#[tracing::instrument(name = "get_client", skip_all, fields(client_id = %id.0))]
pub async fn get(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    let client = state.accounts.get(&id.0).await?;
    Ok(HttpResponse::Ok().json(ClientView::from(&client)))
}

#[tracing::instrument(name = "update_client", skip_all, fields(client_id = %id.0))]
pub async fn update(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
    body: Body<UpdateClientRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = ClientPatch::try_from(body.0)?;
    let client = state.accounts.update(&id.0, &patch).await?;
    Ok(HttpResponse::Ok().json(UpdatedClientResponse::new(&client)))
}

#[tracing::instrument(name = "delete_client", skip_all, fields(client_id = %id.0))]
pub async fn delete(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    state.accounts.delete(&id.0).await?;
    Ok(HttpResponse::Ok().json(MessageResponse::new("Client deleted successfully")))
}

#[tracing::instrument(name = "reset_client_secret", skip_all, fields(client_id = %id.0))]
pub async fn reset_secret(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    let secret = state.accounts.reset_secret(&id.0).await?;
    Ok(HttpResponse::Ok().json(ResetSecretResponse::new(&id.0, &secret)))
}

/// The account as authentication just read it; no second lookup is needed.
#[tracing::instrument(name = "get_own_client", skip_all, fields(client_id = %who.id()))]
pub async fn get_own(who: ClientPrincipal) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ClientView::from(&who.client)))
}

#[tracing::instrument(name = "update_own_client", skip_all, fields(client_id = %who.id()))]
pub async fn update_own(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    body: Body<ProfileUpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = ProfilePatch::try_from(body.0)?;
    let client = state.accounts.update_profile(who.id(), patch).await?;
    Ok(HttpResponse::Ok().json(UpdatedClientResponse::new(&client)))
}
