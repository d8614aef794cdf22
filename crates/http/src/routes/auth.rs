//! `/auth/*`: logins, token verification, refresh, logout, secret change.

use actix_web::{HttpRequest, HttpResponse, web};
use outcall_domain::services::{AuthError, Authenticated, UnauthorizedReason};

use crate::ApiState;
use crate::dto::auth::{
    AdminCredentials, AdminLoginRequest, AdminLoginResponse, ChangeSecretRequest,
    ClientCredentials, ClientLoginRequest, ClientLoginResponse, SecretChange, SuccessMessage,
    TokenResponse, VerifyRequest, VerifyResponse,
};
use crate::error::ApiError;
use crate::extract::{Body, ClientPrincipal};
use crate::rate_limit::{Account, LoginLimiter};

/// An admin token for a username and password.
#[utoipa::path(
    post,
    operation_id = "admin_login",
    path = "/auth/admin/login",
    tag = "auth",
    request_body = AdminLoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = AdminLoginResponse),
        (status = 401, description = "`Invalid credentials`.", body = super::openapi::ErrorResponse),
        (status = 429, description = "`Too many login attempts` (`retryAfter`, `Retry-After`).", body = super::openapi::ErrorResponse, headers(("Retry-After" = u64))),
    ),
)]
#[tracing::instrument(name = "admin_login", skip_all)]
pub async fn admin_login(
    state: web::Data<ApiState>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    body: Body<AdminLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    limiter.check_address(&req)?;
    let credentials = AdminCredentials::try_from(body.0)?;
    limiter.check_account(Account::Admin(&credentials.username))?;
    let issued = state
        .auth
        .admin_login(&credentials.username, &credentials.password)
        .await?;
    Ok(HttpResponse::Ok().json(AdminLoginResponse::new(&issued)))
}

/// A client token for a client id and secret.
#[utoipa::path(
    post,
    operation_id = "client_login",
    path = "/auth/login",
    tag = "auth",
    request_body = ClientLoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = ClientLoginResponse),
        (status = 401, description = "`Invalid credentials or inactive client`: unknown id, wrong secret or a client that is not `Active`, all alike.", body = super::openapi::ErrorResponse),
        (status = 429, description = "`Too many login attempts` (`retryAfter`, `Retry-After`).", body = super::openapi::ErrorResponse, headers(("Retry-After" = u64))),
    ),
)]
#[tracing::instrument(name = "client_login", skip_all)]
pub async fn client_login(
    state: web::Data<ApiState>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    body: Body<ClientLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    limiter.check_address(&req)?;
    let credentials = ClientCredentials::try_from(body.0)?;
    limiter.check_account(Account::Client(&credentials.client_id))?;
    let (issued, client) = state
        .auth
        .client_login(&credentials.client_id, &credentials.client_secret)
        .await
        .map_err(ApiError::from_client_login)?;
    Ok(HttpResponse::Ok().json(ClientLoginResponse::new(&issued, &client)))
}

/// Whether a token is a working client token. Answers 200 either way: `valid` says.
#[utoipa::path(
    post,
    operation_id = "verify_token",
    path = "/auth/verify",
    tag = "auth",
    request_body = VerifyRequest,
    responses((status = 200, description = "`valid`, and the token's client or why it does not work.", body = VerifyResponse)),
)]
#[tracing::instrument(name = "verify_token", skip_all)]
pub async fn verify(
    state: web::Data<ApiState>,
    body: Body<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.0.into_token()?;
    let reply = |answer: VerifyResponse<'_>| HttpResponse::Ok().json(answer);
    Ok(match state.auth.authenticate(&token).await {
        Ok(Authenticated::Client { client, claims }) => {
            reply(VerifyResponse::valid(&client, claims.expires_at))
        }
        Ok(Authenticated::Admin { .. }) => reply(VerifyResponse::invalid("Not a client token")),
        Err(AuthError::Unauthorized(reason)) => reply(VerifyResponse::invalid(reason.message())),
        Err(AuthError::InvalidCredentials) => reply(VerifyResponse::invalid(
            UnauthorizedReason::InvalidToken.message(),
        )),
        Err(AuthError::Unexpected(cause)) => return Err(ApiError::Internal(cause)),
    })
}

/// A fresh token for the presented client token.
#[utoipa::path(
    post,
    operation_id = "refresh_token",
    path = "/auth/refresh",
    tag = "auth",
    security(("clientToken" = [])),
    responses((status = 200, description = "A new token.", body = TokenResponse)),
)]
#[tracing::instrument(name = "refresh_token", skip_all, fields(client_id = %who.id()))]
pub async fn refresh(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let issued = state.auth.refresh(&who.client)?;
    Ok(HttpResponse::Ok().json(TokenResponse::new(&issued)))
}

/// Revokes the presented client token.
#[utoipa::path(
    post,
    operation_id = "logout",
    path = "/auth/logout",
    tag = "auth",
    security(("clientToken" = [])),
    responses((status = 200, description = "`Logged out successfully`.", body = SuccessMessage)),
)]
#[tracing::instrument(name = "logout", skip_all, fields(client_id = %who.id()))]
pub async fn logout(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout(who.id(), &who.claims).await?;
    Ok(HttpResponse::Ok().json(SuccessMessage::new("Logged out successfully")))
}

/// Changes the client's own secret; every token issued before stops working, and a new one
/// is returned.
#[utoipa::path(
    post,
    operation_id = "change_secret",
    path = "/auth/change-secret",
    tag = "auth",
    security(("clientToken" = [])),
    request_body = ChangeSecretRequest,
    responses(
        (status = 200, description = "`Client secret changed successfully`, with a new token.", body = TokenResponse),
        (status = 401, description = "`Invalid credentials` (wrong `currentSecret`), or `Unauthorized` (the token).", body = super::openapi::ErrorResponse),
        (status = 429, description = "`Too many login attempts` (`retryAfter`, `Retry-After`).", body = super::openapi::ErrorResponse, headers(("Retry-After" = u64))),
    ),
)]
#[tracing::instrument(name = "change_secret", skip_all, fields(client_id = %who.id()))]
pub async fn change_secret(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    body: Body<ChangeSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    limiter.check_address(&req)?;
    limiter.check_account(Account::Client(who.id().as_str()))?;
    let change = SecretChange::try_from(body.0)?;
    let issued = state
        .auth
        .change_secret(who.id(), &change.current, &change.new)
        .await?;
    Ok(HttpResponse::Ok()
        .json(TokenResponse::new(&issued).with_message("Client secret changed successfully")))
}
