//! `AdminRepository` over SQLite.

use anyhow::Context;
use async_trait::async_trait;
use outcall_domain::Timestamp;
use outcall_domain::admin::{AdminAccount, AdminUsername};
use outcall_domain::ports::{AdminRepository, RepositoryError};
use outcall_domain::values::SecretHash;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::rows::{corrupt, count, db_error, get, millis, parse, timestamp};

fn admin_from_row(row: &SqliteRow) -> anyhow::Result<AdminAccount> {
    Ok(AdminAccount {
        username: parse(row, "username", AdminUsername::parse)?,
        password_hash: SecretHash::from_phc(get(row, "password_hash")?),
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

#[async_trait]
impl AdminRepository for SqliteStore {
    async fn upsert(
        &self,
        username: &AdminUsername,
        password_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO admins (username, password_hash, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (username) DO UPDATE SET \
             password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        )
        .bind(username.as_str())
        .bind(password_hash.as_phc())
        .bind(millis(at))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error(e, "storing an admin"))?;
        Ok(())
    }

    async fn find(
        &self,
        username: &AdminUsername,
    ) -> Result<Option<AdminAccount>, RepositoryError> {
        let row = sqlx::query(
            "SELECT username, password_hash, created_at, updated_at \
             FROM admins WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(e, "finding an admin"))?;
        row.as_ref()
            .map(|row| {
                admin_from_row(row).with_context(|| format!("stored admin {username} is corrupt"))
            })
            .transpose()
            .map_err(corrupt)
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM admins")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error(e, "counting admins"))?;
        count(&row, "n").map_err(corrupt)
    }
}
