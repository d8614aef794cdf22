use std::sync::Arc;

use crate::admin::{AdminPassword, AdminUsername};
use crate::client::Client;
use crate::ports::{
    AdminRepository, ClientRepository, Clock, HashError, IssuedToken, Principal, RepositoryError,
    SecretHasher, TokenClaims, TokenError, TokenService,
};
use crate::values::{ClientId, ClientSecret};

/// Why a bearer token was refused. The text is safe to show to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnauthorizedReason {
    MissingToken,
    InvalidToken,
    ExpiredToken,
    RevokedToken,
    InactiveClient,
    UnknownPrincipal,
}

impl UnauthorizedReason {
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "Missing bearer token",
            Self::InvalidToken => "Invalid token",
            Self::ExpiredToken => "Token expired",
            Self::RevokedToken => "Token revoked",
            Self::InactiveClient => "Client is not active",
            Self::UnknownPrincipal => "Token subject no longer exists",
        }
    }
}

/// Errors of the authentication use cases.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong id, wrong secret, or a client that may not log in: deliberately one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("unauthorized: {}", .0.message())]
    Unauthorized(UnauthorizedReason),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for AuthError {
    fn from(err: RepositoryError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("reading accounts for authentication"))
    }
}

impl From<HashError> for AuthError {
    fn from(err: HashError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("checking a secret"))
    }
}

impl From<TokenError> for AuthError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => Self::Unauthorized(UnauthorizedReason::ExpiredToken),
            TokenError::Invalid(_) => Self::Unauthorized(UnauthorizedReason::InvalidToken),
            TokenError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

/// Who presented a valid token, checked against current account state.
#[derive(Debug, Clone)]
pub enum Authenticated {
    Admin {
        username: AdminUsername,
        claims: TokenClaims,
    },
    Client {
        client: Box<Client>,
        claims: TokenClaims,
    },
}

/// Logins, token checks, refresh, logout and secret changes.
#[derive(Clone)]
pub struct Authentication {
    clients: Arc<dyn ClientRepository>,
    admins: Arc<dyn AdminRepository>,
    hasher: Arc<dyn SecretHasher>,
    tokens: Arc<dyn TokenService>,
    clock: Arc<dyn Clock>,
}

impl Authentication {
    pub fn new(
        clients: Arc<dyn ClientRepository>,
        admins: Arc<dyn AdminRepository>,
        hasher: Arc<dyn SecretHasher>,
        tokens: Arc<dyn TokenService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            clients,
            admins,
            hasher,
            tokens,
            clock,
        }
    }

    /// Creates the admin or replaces its password (start-up and `outcall admin create`).
    ///
    /// # Errors
    /// `Unexpected` on hashing or storage failure.
    pub async fn ensure_admin(
        &self,
        username: &AdminUsername,
        password: &AdminPassword,
    ) -> Result<(), AuthError> {
        let hash = self.hasher.hash(password.expose()).await?;
        self.admins
            .upsert(username, &hash, self.clock.now())
            .await?;
        Ok(())
    }

    /// Whether any admin exists (first-run set-up).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn has_admin(&self) -> Result<bool, AuthError> {
        Ok(self.admins.count().await? > 0)
    }

    /// # Errors
    /// `InvalidCredentials` for an unknown name or a wrong password, with similar timing.
    pub async fn admin_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<IssuedToken, AuthError> {
        let account = match AdminUsername::parse(username) {
            Ok(name) => self.admins.find(&name).await?,
            Err(_) => None,
        };
        let Some(account) = account else {
            self.hasher.verify_against_decoy(password).await;
            return Err(AuthError::InvalidCredentials);
        };
        if !self.hasher.verify(password, &account.password_hash).await? {
            return Err(AuthError::InvalidCredentials);
        }
        let principal = Principal::Admin {
            username: account.username,
        };
        Ok(self.tokens.issue(&principal, self.clock.now())?)
    }

    /// Logs a client in. An unknown id, a wrong secret and a client that is not Active all
    /// fail the same way and take about as long.
    ///
    /// # Errors
    /// `InvalidCredentials` as described.
    pub async fn client_login(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(IssuedToken, Client), AuthError> {
        let found = match ClientId::parse(client_id) {
            Ok(id) => self.clients.find_with_secret(&id).await?,
            Err(_) => None,
        };
        let Some((client, hash)) = found else {
            self.hasher.verify_against_decoy(secret).await;
            return Err(AuthError::InvalidCredentials);
        };
        // Verify even for inactive clients, so that status cannot be probed by timing.
        let matches = self.hasher.verify(secret, &hash).await?;
        if !matches || !client.status.can_authenticate() {
            return Err(AuthError::InvalidCredentials);
        }
        let token = self.issue_client_token(&client)?;
        Ok((token, client))
    }

    /// Verifies a bearer token and checks it against the account as it is now: the admin
    /// still exists; the client still exists, is Active, has not had its secret replaced,
    /// and this token was not logged out.
    ///
    /// # Errors
    /// `Unauthorized` naming the reason.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, AuthError> {
        let claims = self.tokens.verify(token)?;
        match &claims.principal {
            Principal::Admin { username } => {
                if self.admins.find(username).await?.is_none() {
                    return Err(AuthError::Unauthorized(
                        UnauthorizedReason::UnknownPrincipal,
                    ));
                }
                Ok(Authenticated::Admin {
                    username: username.clone(),
                    claims,
                })
            }
            Principal::Client {
                client_id,
                token_version,
            } => {
                let client = self
                    .clients
                    .find(client_id)
                    .await?
                    .ok_or(AuthError::Unauthorized(
                        UnauthorizedReason::UnknownPrincipal,
                    ))?;
                if client.token_version != *token_version {
                    return Err(AuthError::Unauthorized(UnauthorizedReason::RevokedToken));
                }
                if !client.status.can_authenticate() {
                    return Err(AuthError::Unauthorized(UnauthorizedReason::InactiveClient));
                }
                if self.clients.is_token_revoked(&claims.token_id).await? {
                    return Err(AuthError::Unauthorized(UnauthorizedReason::RevokedToken));
                }
                Ok(Authenticated::Client {
                    client: Box::new(client),
                    claims,
                })
            }
        }
    }

    /// A new token for an authenticated client (the old one keeps working until it expires
    /// or is logged out).
    ///
    /// # Errors
    /// `Unexpected` when signing fails.
    pub fn refresh(&self, client: &Client) -> Result<IssuedToken, AuthError> {
        self.issue_client_token(client)
    }

    /// Revokes exactly the presented token.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn logout(
        &self,
        client_id: &ClientId,
        claims: &TokenClaims,
    ) -> Result<(), AuthError> {
        self.clients
            .revoke_token(client_id, &claims.token_id, claims.expires_at)
            .await?;
        Ok(())
    }

    /// Replaces a client's secret after checking the current one; every earlier token stops
    /// working and a fresh token is returned.
    ///
    /// # Errors
    /// `InvalidCredentials` when `current` is wrong; `Unauthorized` if the client vanished.
    pub async fn change_secret(
        &self,
        client_id: &ClientId,
        current: &str,
        new_secret: &ClientSecret,
    ) -> Result<IssuedToken, AuthError> {
        let (_, hash) =
            self.clients
                .find_with_secret(client_id)
                .await?
                .ok_or(AuthError::Unauthorized(
                    UnauthorizedReason::UnknownPrincipal,
                ))?;
        if !self.hasher.verify(current, &hash).await? {
            return Err(AuthError::InvalidCredentials);
        }
        let new_hash = self.hasher.hash(new_secret.expose()).await?;
        let client = self
            .clients
            .replace_secret(client_id, &new_hash, self.clock.now())
            .await?
            .ok_or(AuthError::Unauthorized(
                UnauthorizedReason::UnknownPrincipal,
            ))?;
        self.issue_client_token(&client)
    }

    fn issue_client_token(&self, client: &Client) -> Result<IssuedToken, AuthError> {
        let principal = Principal::Client {
            client_id: client.id.clone(),
            token_version: client.token_version,
        };
        Ok(self.tokens.issue(&principal, self.clock.now())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{
        MockAdminRepository, MockClientRepository, MockClock, MockSecretHasher, MockTokenService,
    };
    use crate::test_support::{client_fixture, fixed_now};
    use crate::values::{ClientStatus, SecretHash};

    struct Mocks {
        clients: MockClientRepository,
        admins: MockAdminRepository,
        hasher: MockSecretHasher,
        tokens: MockTokenService,
    }

    impl Mocks {
        fn new() -> Self {
            Self {
                clients: MockClientRepository::new(),
                admins: MockAdminRepository::new(),
                hasher: MockSecretHasher::new(),
                tokens: MockTokenService::new(),
            }
        }

        fn build(self) -> Authentication {
            let mut clock = MockClock::new();
            clock.expect_now().return_const(fixed_now());
            Authentication::new(
                Arc::new(self.clients),
                Arc::new(self.admins),
                Arc::new(self.hasher),
                Arc::new(self.tokens),
                Arc::new(clock),
            )
        }
    }

    fn issued(principal: &Principal) -> IssuedToken {
        IssuedToken {
            token: "signed".into(),
            claims: claims(principal.clone()),
        }
    }

    fn claims(principal: Principal) -> TokenClaims {
        TokenClaims {
            principal,
            token_id: "jti-1".into(),
            issued_at: fixed_now(),
            expires_at: None,
        }
    }

    fn with_status(status: ClientStatus) -> Client {
        let mut client = client_fixture("c1");
        client.status = status;
        client
    }

    #[tokio::test]
    async fn login_of_an_unknown_client_spends_a_decoy_verification() {
        let mut m = Mocks::new();
        m.clients.expect_find_with_secret().returning(|_| Ok(None));
        m.hasher
            .expect_verify_against_decoy()
            .times(1)
            .return_const(());
        let result = m
            .build()
            .client_login("nobody", "whatever-secret-123")
            .await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn login_with_a_malformed_client_id_is_invalid_credentials_without_lookup() {
        let mut m = Mocks::new();
        m.clients.expect_find_with_secret().never();
        m.hasher
            .expect_verify_against_decoy()
            .times(1)
            .return_const(());
        let result = m
            .build()
            .client_login("'; drop table clients; --", "x")
            .await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn login_fails_for_a_suspended_client_even_with_the_right_secret() {
        for status in [ClientStatus::Suspended, ClientStatus::Inactive] {
            let mut m = Mocks::new();
            m.clients.expect_find_with_secret().returning(move |_| {
                Ok(Some((
                    with_status(status),
                    SecretHash::from_phc("h".into()),
                )))
            });
            m.hasher.expect_verify().times(1).returning(|_, _| Ok(true));
            m.tokens.expect_issue().never();
            let result = m.build().client_login("c1", "right-secret-0123456").await;
            assert!(
                matches!(result, Err(AuthError::InvalidCredentials)),
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn login_of_an_active_client_issues_a_token_with_its_version() {
        let mut m = Mocks::new();
        m.clients.expect_find_with_secret().returning(|_| {
            let mut client = with_status(ClientStatus::Active);
            client.token_version = 7;
            Ok(Some((client, SecretHash::from_phc("h".into()))))
        });
        m.hasher.expect_verify().returning(|_, _| Ok(true));
        m.tokens
            .expect_issue()
            .withf(|p, _| {
                matches!(
                    p,
                    Principal::Client {
                        token_version: 7,
                        ..
                    }
                )
            })
            .returning(|p, _| Ok(issued(p)));
        let (token, client) = m
            .build()
            .client_login("c1", "right-secret-0123456")
            .await
            .expect("ok");
        assert_eq!(token.token, "signed");
        assert_eq!(client.id.as_str(), "c1");
    }

    #[tokio::test]
    async fn a_token_from_before_a_secret_reset_is_revoked() {
        let mut m = Mocks::new();
        m.tokens.expect_verify().returning(|_| {
            Ok(claims(Principal::Client {
                client_id: ClientId::parse("c1").expect("valid"),
                token_version: 0,
            }))
        });
        m.clients.expect_find().returning(|_| {
            let mut client = with_status(ClientStatus::Active);
            client.token_version = 1;
            Ok(Some(client))
        });
        let result = m.build().authenticate("t").await;
        assert!(matches!(
            result,
            Err(AuthError::Unauthorized(UnauthorizedReason::RevokedToken))
        ));
    }

    #[tokio::test]
    async fn a_suspended_clients_token_stops_working() {
        let mut m = Mocks::new();
        m.tokens.expect_verify().returning(|_| {
            Ok(claims(Principal::Client {
                client_id: ClientId::parse("c1").expect("valid"),
                token_version: 0,
            }))
        });
        m.clients
            .expect_find()
            .returning(|_| Ok(Some(with_status(ClientStatus::Suspended))));
        let result = m.build().authenticate("t").await;
        assert!(matches!(
            result,
            Err(AuthError::Unauthorized(UnauthorizedReason::InactiveClient))
        ));
    }

    #[tokio::test]
    async fn a_logged_out_token_is_refused() {
        let mut m = Mocks::new();
        m.tokens.expect_verify().returning(|_| {
            Ok(claims(Principal::Client {
                client_id: ClientId::parse("c1").expect("valid"),
                token_version: 0,
            }))
        });
        m.clients
            .expect_find()
            .returning(|_| Ok(Some(with_status(ClientStatus::Active))));
        m.clients
            .expect_is_token_revoked()
            .withf(|jti| jti == "jti-1")
            .returning(|_| Ok(true));
        let result = m.build().authenticate("t").await;
        assert!(matches!(
            result,
            Err(AuthError::Unauthorized(UnauthorizedReason::RevokedToken))
        ));
    }

    #[tokio::test]
    async fn an_expired_token_says_so() {
        let mut m = Mocks::new();
        m.tokens
            .expect_verify()
            .returning(|_| Err(TokenError::Expired));
        let result = m.build().authenticate("t").await;
        assert!(matches!(
            result,
            Err(AuthError::Unauthorized(UnauthorizedReason::ExpiredToken))
        ));
    }

    #[tokio::test]
    async fn change_secret_requires_the_current_secret() {
        let mut m = Mocks::new();
        m.clients.expect_find_with_secret().returning(|_| {
            Ok(Some((
                with_status(ClientStatus::Active),
                SecretHash::from_phc("h".into()),
            )))
        });
        m.hasher.expect_verify().returning(|_, _| Ok(false));
        m.clients.expect_replace_secret().never();
        let result = m
            .build()
            .change_secret(
                &ClientId::parse("c1").expect("valid"),
                "wrong",
                &ClientSecret::parse("a-brand-new-secret-123").expect("valid"),
            )
            .await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
}
