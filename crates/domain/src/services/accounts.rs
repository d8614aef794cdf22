use std::sync::Arc;

use crate::client::{Client, ClientPatch, NewClient, ProfilePatch};
use crate::ports::{
    ClientRepository, Clock, HashError, IdGenerator, RepositoryError, SecretHasher, UniqueField,
};
use crate::queries::{ClientCounts, ClientListQuery, ClientPage};
use crate::values::{ClientId, ClientSecret};

/// Errors of the client-account use cases.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("client not found")]
    NotFound,
    #[error("a client with this {} already exists", .0.as_str())]
    Duplicate(UniqueField),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for AccountError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::Duplicate(field) => Self::Duplicate(field),
            RepositoryError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(err: HashError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("hashing a client secret"))
    }
}

/// Creating, reading, changing and deleting client accounts.
#[derive(Clone)]
pub struct ClientAccounts {
    clients: Arc<dyn ClientRepository>,
    hasher: Arc<dyn SecretHasher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl ClientAccounts {
    pub fn new(
        clients: Arc<dyn ClientRepository>,
        hasher: Arc<dyn SecretHasher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            clients,
            hasher,
            clock,
            ids,
        }
    }

    /// Creates a client, generating its id and secret when not given. Returns the client and
    /// its plain secret, which is shown once and never stored.
    ///
    /// # Errors
    /// `Duplicate` on an existing id or email; `Unexpected` otherwise.
    pub async fn create(&self, new: NewClient) -> Result<(Client, ClientSecret), AccountError> {
        let now = self.clock.now();
        let id = new.id.unwrap_or_else(|| self.ids.client_id());
        let secret = new.secret.unwrap_or_else(|| self.ids.client_secret());
        let hash = self.hasher.hash(secret.expose()).await?;
        let client = Client {
            id,
            status: new.status,
            agent_id: new.agent_id,
            twilio_phone_number: new.twilio_phone_number,
            meta: new.meta,
            token_version: Client::initial_token_version(now),
            created_at: now,
            updated_at: now,
        };
        self.clients.insert(&client, &hash).await?;
        Ok((client, secret))
    }

    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &ClientId) -> Result<Client, AccountError> {
        self.clients.find(id).await?.ok_or(AccountError::NotFound)
    }

    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn list(&self, query: &ClientListQuery) -> Result<ClientPage, AccountError> {
        Ok(self.clients.list(query).await?)
    }

    /// An admin's partial update. An empty patch only confirms the client exists.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Duplicate(Email)` when the email is taken.
    pub async fn update(&self, id: &ClientId, patch: &ClientPatch) -> Result<Client, AccountError> {
        if patch.is_empty() {
            return self.get(id).await;
        }
        let now = self.clock.now();
        self.clients
            .update(id, patch, now)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// A client's change to its own profile (never email, status, agent or number).
    ///
    /// # Errors
    /// As for [`ClientAccounts::update`].
    pub async fn update_profile(
        &self,
        id: &ClientId,
        patch: ProfilePatch,
    ) -> Result<Client, AccountError> {
        self.update(id, &ClientPatch::from(patch)).await
    }

    /// Deletes the client and its calls.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &ClientId) -> Result<(), AccountError> {
        if self.clients.delete(id).await? {
            Ok(())
        } else {
            Err(AccountError::NotFound)
        }
    }

    /// Generates a new secret, stores its hash and invalidates every earlier token.
    /// Returns the new plain secret, to be shown once.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn reset_secret(&self, id: &ClientId) -> Result<ClientSecret, AccountError> {
        let secret = self.ids.client_secret();
        let hash = self.hasher.hash(secret.expose()).await?;
        let now = self.clock.now();
        match self.clients.replace_secret(id, &hash, now).await? {
            Some(_) => Ok(secret),
            None => Err(AccountError::NotFound),
        }
    }

    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn counts(&self) -> Result<ClientCounts, AccountError> {
        Ok(self.clients.count_by_status().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockClientRepository, MockClock, MockIdGenerator, MockSecretHasher};
    use crate::test_support::{client_fixture, fixed_now};
    use crate::values::SecretHash;

    fn service(
        repo: MockClientRepository,
        hasher: MockSecretHasher,
        ids: MockIdGenerator,
    ) -> ClientAccounts {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        ClientAccounts::new(
            Arc::new(repo),
            Arc::new(hasher),
            Arc::new(clock),
            Arc::new(ids),
        )
    }

    fn new_client(id: Option<&str>, secret: Option<&str>) -> NewClient {
        let template = client_fixture("template");
        NewClient {
            id: id.map(|i| ClientId::parse(i).expect("valid")),
            secret: secret.map(|s| ClientSecret::parse(s).expect("valid")),
            status: template.status,
            agent_id: template.agent_id,
            twilio_phone_number: template.twilio_phone_number,
            meta: template.meta,
        }
    }

    #[tokio::test]
    async fn create_generates_missing_id_and_secret_and_stores_only_the_hash() {
        let mut ids = MockIdGenerator::new();
        ids.expect_client_id()
            .returning(|| ClientId::parse("client_generated").expect("valid"));
        ids.expect_client_secret()
            .returning(|| ClientSecret::parse("generated-secret-0123456789").expect("valid"));
        let mut hasher = MockSecretHasher::new();
        hasher
            .expect_hash()
            .withf(|plain| plain == "generated-secret-0123456789")
            .returning(|_| Ok(SecretHash::from_phc("$argon2id$fake".into())));
        let mut repo = MockClientRepository::new();
        repo.expect_insert()
            .withf(|client, hash| {
                client.id.as_str() == "client_generated" && hash.as_phc() == "$argon2id$fake"
            })
            .times(1)
            .returning(|_, _| Ok(()));

        let (client, secret) = service(repo, hasher, ids)
            .create(new_client(None, None))
            .await
            .expect("created");
        assert_eq!(client.id.as_str(), "client_generated");
        assert_eq!(secret.expose(), "generated-secret-0123456789");
        assert_eq!(client.created_at, fixed_now());
        assert_eq!(client.token_version, fixed_now().timestamp_millis());
    }

    #[tokio::test]
    async fn create_keeps_given_id_and_secret_and_reports_duplicates() {
        let mut hasher = MockSecretHasher::new();
        hasher
            .expect_hash()
            .withf(|plain| plain == "given-secret-0123456789")
            .returning(|_| Ok(SecretHash::from_phc("h".into())));
        let mut repo = MockClientRepository::new();
        repo.expect_insert()
            .withf(|client, _| client.id.as_str() == "given")
            .returning(|_, _| Err(RepositoryError::Duplicate(UniqueField::Email)));
        let result = service(repo, hasher, MockIdGenerator::new())
            .create(new_client(Some("given"), Some("given-secret-0123456789")))
            .await;
        assert!(matches!(
            result,
            Err(AccountError::Duplicate(UniqueField::Email))
        ));
    }

    #[tokio::test]
    async fn reset_secret_of_an_unknown_client_is_not_found() {
        let mut ids = MockIdGenerator::new();
        ids.expect_client_secret()
            .returning(|| ClientSecret::parse("generated-secret-0123456789").expect("valid"));
        let mut hasher = MockSecretHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(SecretHash::from_phc("h".into())));
        let mut repo = MockClientRepository::new();
        repo.expect_replace_secret().returning(|_, _, _| Ok(None));
        let result = service(repo, hasher, ids)
            .reset_secret(&ClientId::parse("ghost").expect("valid"))
            .await;
        assert!(matches!(result, Err(AccountError::NotFound)));
    }

    #[tokio::test]
    async fn an_empty_update_does_not_write() {
        let mut repo = MockClientRepository::new();
        repo.expect_update().never();
        repo.expect_find()
            .returning(|id| Ok(Some(client_fixture(id.as_str()))));
        let client = service(repo, MockSecretHasher::new(), MockIdGenerator::new())
            .update(
                &ClientId::parse("c1").expect("valid"),
                &ClientPatch::default(),
            )
            .await
            .expect("found");
        assert_eq!(client.id.as_str(), "c1");
    }

    #[tokio::test]
    async fn deleting_an_unknown_client_is_not_found() {
        let mut repo = MockClientRepository::new();
        repo.expect_delete().returning(|_| Ok(false));
        let result = service(repo, MockSecretHasher::new(), MockIdGenerator::new())
            .delete(&ClientId::parse("ghost").expect("valid"))
            .await;
        assert!(matches!(result, Err(AccountError::NotFound)));
    }
}
