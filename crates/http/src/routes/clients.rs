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

/// Creates a client. The secret (given or generated) is shown in this response only.
#[utoipa::path(
    post,
    operation_id = "create_client",
    path = "/admin/clients",
    tag = "admin",
    security(("adminToken" = [])),
    request_body = CreateClientRequest,
    responses(
        (status = 201, description = "`Client created successfully`, with the secret.", body = CreatedClientResponse),
        (status = 400, description = "`Missing required fields` (`requiredFields`), `Failed to create client` (`details`), or `Invalid JSON`.", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Client already exists with this ID or email` (`details`: `clientId` or `clientMeta.email`).", body = super::openapi::ErrorResponse),
    ),
)]
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

/// Lists and searches clients, newest first.
#[utoipa::path(
    get,
    operation_id = "list_clients",
    path = "/admin/clients",
    tag = "admin",
    security(("adminToken" = [])),
    params(crate::dto::queries::ClientListParams),
    responses(
        (status = 200, description = "One page of clients and how many match in all.", body = ClientListResponse),
        (status = 400, description = "`Invalid query parameter`.", body = super::openapi::ErrorResponse),
    ),
)]
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

/// One client.
#[utoipa::path(
    get,
    operation_id = "get_client",
    path = "/admin/clients/{clientId}",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    responses(
        (status = 200, description = "The client (never its secret).", body = ClientView),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "get_client", skip_all, fields(client_id = %id.0))]
pub async fn get(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    let client = state.accounts.get(&id.0).await?;
    Ok(HttpResponse::Ok().json(ClientView::from(&client)))
}

/// A partial update: absent members stay, `null` clears an optional one.
#[utoipa::path(
    put,
    operation_id = "update_client",
    path = "/admin/clients/{clientId}",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    request_body = UpdateClientRequest,
    responses(
        (status = 200, description = "`Client updated successfully`.", body = UpdatedClientResponse),
        (status = 400, description = "`Invalid update data` (`details`), e.g. a `clientSecret` (use reset-secret) or an unknown member; or `Invalid JSON`.", body = super::openapi::ErrorResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
        (status = 409, description = "`Client already exists with this ID or email` (`details`: `clientMeta.email`).", body = super::openapi::ErrorResponse),
    ),
)]
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

/// Deletes a client and its calls; its tokens stop working.
#[utoipa::path(
    delete,
    operation_id = "delete_client",
    path = "/admin/clients/{clientId}",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    responses(
        (status = 200, description = "`Client deleted successfully`.", body = MessageResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "delete_client", skip_all, fields(client_id = %id.0))]
pub async fn delete(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    state.accounts.delete(&id.0).await?;
    Ok(HttpResponse::Ok().json(MessageResponse::new("Client deleted successfully")))
}

/// A new generated secret, shown once; every token issued before stops working.
#[utoipa::path(
    post,
    operation_id = "reset_client_secret",
    path = "/admin/clients/{clientId}/reset-secret",
    tag = "admin",
    security(("adminToken" = [])),
    params(("clientId" = String, Path, description = "The client's id.")),
    responses(
        (status = 200, description = "`Client secret reset successfully`, with the new secret.", body = ResetSecretResponse),
        (status = 404, description = "`Client not found`.", body = super::openapi::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "reset_client_secret", skip_all, fields(client_id = %id.0))]
pub async fn reset_secret(
    _admin: AdminPrincipal,
    state: web::Data<ApiState>,
    id: ClientIdParam,
) -> Result<HttpResponse, ApiError> {
    let secret = state.accounts.reset_secret(&id.0).await?;
    Ok(HttpResponse::Ok().json(ResetSecretResponse::new(&id.0, &secret)))
}

/// The client's own account.
#[utoipa::path(
    get,
    operation_id = "get_own_client",
    path = "/secure/client",
    tag = "client",
    security(("clientToken" = [])),
    responses((status = 200, description = "The client's own account (never its secret).", body = ClientView)),
)]
#[tracing::instrument(name = "get_own_client", skip_all, fields(client_id = %who.id()))]
pub async fn get_own(who: ClientPrincipal) -> Result<HttpResponse, ApiError> {
    // The account as authentication just read it; no second lookup is needed.
    Ok(HttpResponse::Ok().json(ClientView::from(&who.client)))
}

/// Updates the client's own profile: only `clientMeta` members other than `email`.
#[utoipa::path(
    put,
    operation_id = "update_own_client",
    path = "/secure/client",
    tag = "client",
    security(("clientToken" = [])),
    request_body = ProfileUpdateRequest,
    responses(
        (status = 200, description = "`Client updated successfully`.", body = UpdatedClientResponse),
        (status = 400, description = "`Invalid update data` (`details`: an invalid member, or `These fields cannot be updated: ...`), or `Invalid JSON`.", body = super::openapi::ErrorResponse),
    ),
)]
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
