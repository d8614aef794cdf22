//! `AdminRepository`: the agency's operators.

use async_trait::async_trait;
use outcall_domain::ports::{AdminRepository, RepositoryError};
use outcall_domain::{AdminAccount, AdminUsername, SecretHash, Timestamp};

use crate::PgStore;
use crate::error::{classify, corrupt};
use crate::rows;

#[async_trait]
impl AdminRepository for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(username = %username))]
    async fn upsert(
        &self,
        username: &AdminUsername,
        password_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO admins (username, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (username) DO UPDATE \
             SET password_hash = EXCLUDED.password_hash, updated_at = EXCLUDED.updated_at",
        )
        .bind(username.as_str())
        .bind(password_hash.as_phc())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, format!("storing admin {username}")))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(username = %username))]
    async fn find(
        &self,
        username: &AdminUsername,
    ) -> Result<Option<AdminAccount>, RepositoryError> {
        let row = sqlx::query(
            "SELECT username, password_hash, created_at, updated_at FROM admins \
             WHERE username = $1",
        )
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading admin {username}")))?;
        let Some(row) = row else { return Ok(None) };
        let decode = || -> anyhow::Result<AdminAccount> {
            Ok(AdminAccount {
                username: rows::parsed(&row, "username", AdminUsername::parse)?,
                password_hash: SecretHash::from_phc(rows::get(&row, "password_hash")?),
                created_at: rows::get(&row, "created_at")?,
                updated_at: rows::get(&row, "updated_at")?,
            })
        };
        decode()
            .map(Some)
            .map_err(|e| corrupt(e, format!("decoding admin {username}")))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn count(&self) -> Result<u64, RepositoryError> {
        let row = sqlx::query("SELECT COUNT(*) AS admins FROM admins")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, "counting admins"))?;
        let decode =
            || -> anyhow::Result<u64> { Ok(u64::try_from(rows::get::<i64>(&row, "admins")?)?) };
        decode().map_err(|e| corrupt(e, "decoding the admin count"))
    }
}
