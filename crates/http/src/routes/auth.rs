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

/// Answers 200 either way: `valid` says whether the token is a working client token.
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

#[tracing::instrument(name = "refresh_token", skip_all, fields(client_id = %who.id()))]
pub async fn refresh(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let issued = state.auth.refresh(&who.client)?;
    Ok(HttpResponse::Ok().json(TokenResponse::new(&issued)))
}

#[tracing::instrument(name = "logout", skip_all, fields(client_id = %who.id()))]
pub async fn logout(
    who: ClientPrincipal,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout(who.id(), &who.claims).await?;
    Ok(HttpResponse::Ok().json(SuccessMessage::new("Logged out successfully")))
}

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
