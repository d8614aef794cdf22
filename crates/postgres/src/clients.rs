//! `ClientRepository`: client accounts and revoked tokens.

use async_trait::async_trait;
use outcall_domain::ports::{ClientRepository, RepositoryError};
use outcall_domain::queries::{ClientCounts, ClientListQuery, ClientPage};
use outcall_domain::{Client, ClientId, ClientPatch, ClientStatus, SecretHash, Timestamp};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row as _};

use crate::PgStore;
use crate::error::{classify, corrupt};
use crate::rows::{self, client_columns, text_param};

/// Binds the writable columns of `client`, `$2` to `$13`, after `$1` (the id).
fn bind_writable<'q>(
    query: Query<'q, Postgres, PgArguments>,
    client: &Client,
) -> Query<'q, Postgres, PgArguments> {
    let meta = &client.meta;
    query
        .bind(client.status.as_str())
        .bind(client.agent_id.as_str())
        .bind(client.twilio_phone_number.as_str())
        .bind(meta.full_name.as_str())
        .bind(meta.email.as_str())
        .bind(meta.email.normalized())
        .bind(meta.phone.as_str())
        .bind(text_param(meta.business_name.as_ref()))
        .bind(text_param(meta.city.as_ref()))
        .bind(text_param(meta.job_title.as_ref()))
        .bind(text_param(meta.notes.as_ref()))
        .bind(meta.search_text())
}

fn clamp_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

#[async_trait]
impl ClientRepository for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %client.id))]
    async fn insert(
        &self,
        client: &Client,
        secret_hash: &SecretHash,
    ) -> Result<(), RepositoryError> {
        let query = sqlx::query(
            "INSERT INTO clients (client_id, status, agent_id, twilio_phone_number, full_name, \
             email, email_normalized, phone, business_name, city, job_title, notes, search_text, \
             secret_hash, token_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(client.id.as_str());
        bind_writable(query, client)
            .bind(secret_hash.as_phc())
            .bind(client.token_version)
            .bind(client.created_at)
            .bind(client.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, format!("inserting client {}", client.id)))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %id))]
    async fn find(&self, id: &ClientId) -> Result<Option<Client>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading client {id}")))?;
        row.map(|row| rows::client(&row))
            .transpose()
            .map_err(|e| corrupt(e, format!("decoding client {id}")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %id))]
    async fn find_with_secret(
        &self,
        id: &ClientId,
    ) -> Result<Option<(Client, SecretHash)>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            ", secret_hash FROM clients WHERE client_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("reading client {id} with its secret")))?;
        let Some(row) = row else { return Ok(None) };
        let decoded = rows::client(&row).and_then(|client| {
            let hash: String = rows::get(&row, "secret_hash")?;
            Ok((client, SecretHash::from_phc(hash)))
        });
        decoded
            .map(Some)
            .map_err(|e| corrupt(e, format!("decoding client {id}")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %id))]
    async fn update(
        &self,
        id: &ClientId,
        patch: &ClientPatch,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError> {
        let context = || format!("updating client {id}");
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| classify(e, context()))?;
        // The row lock makes read-apply-write atomic against concurrent patches.
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1 FOR UPDATE"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| classify(e, context()))?;
        // Dropping `tx` without commit rolls back and releases the lock.
        let Some(row) = row else { return Ok(None) };
        let mut client = rows::client(&row).map_err(|e| corrupt(e, context()))?;
        client.apply(patch, at);
        let query = sqlx::query(
            "UPDATE clients SET status = $2, agent_id = $3, twilio_phone_number = $4, \
             full_name = $5, email = $6, email_normalized = $7, phone = $8, business_name = $9, \
             city = $10, job_title = $11, notes = $12, search_text = $13, updated_at = $14, \
             token_version = $15 \
             WHERE client_id = $1",
        )
        .bind(id.as_str());
        // `apply` may bump the token version (e.g. leaving Active revokes tokens): write it too.
        bind_writable(query, &client)
            .bind(client.updated_at)
            .bind(client.token_version)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, context()))?;
        tx.commit().await.map_err(|e| classify(e, context()))?;
        Ok(Some(client))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %id))]
    async fn replace_secret(
        &self,
        id: &ClientId,
        secret_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError> {
        let row = sqlx::query(concat!(
            "UPDATE clients SET secret_hash = $2, token_version = token_version + 1, \
             updated_at = $3 WHERE client_id = $1 RETURNING ",
            client_columns!()
        ))
        .bind(id.as_str())
        .bind(secret_hash.as_phc())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, format!("replacing the secret of client {id}")))?;
        row.map(|row| rows::client(&row))
            .transpose()
            .map_err(|e| corrupt(e, format!("decoding client {id}")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %id))]
    async fn delete(&self, id: &ClientId) -> Result<bool, RepositoryError> {
        // Calls and revoked tokens go with it (ON DELETE CASCADE); the tally triggers drop
        // the client's counts.
        let result = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, format!("deleting client {id}")))?;
        Ok(result.rows_affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, query: &ClientListQuery) -> Result<ClientPage, RepositoryError> {
        // One statement, so the total and the page come from the same snapshot; the LEFT
        // JOIN keeps the total when the offset is past the last match. `strpos` matches the
        // already lower-cased term literally (no LIKE wildcards, no regex).
        let rows = sqlx::query(concat!(
            "SELECT t.total, p.* FROM ( \
                 SELECT COUNT(*) AS total FROM clients \
                 WHERE ($1::TEXT IS NULL OR status = $1) \
                   AND ($2::TEXT IS NULL OR strpos(search_text, $2) > 0) \
             ) t LEFT JOIN LATERAL ( \
                 SELECT ",
            client_columns!(),
            " FROM clients \
                 WHERE ($1::TEXT IS NULL OR status = $1) \
                   AND ($2::TEXT IS NULL OR strpos(search_text, $2) > 0) \
                 ORDER BY created_at DESC, client_id DESC \
                 LIMIT $3 OFFSET $4 \
             ) p ON TRUE \
             ORDER BY p.created_at DESC, p.client_id DESC"
        ))
        .bind(query.status.map(ClientStatus::as_str))
        .bind(query.search.as_ref().map(|term| term.as_str()))
        .bind(i64::from(query.limit))
        .bind(clamp_offset(query.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(e, "listing clients"))?;
        let decode = || -> anyhow::Result<ClientPage> {
            let mut page = ClientPage {
                total: 0,
                clients: Vec::with_capacity(rows.len()),
            };
            for row in &rows {
                page.total = u64::try_from(rows::get::<i64>(row, "total")?)?;
                if rows::get::<Option<String>>(row, "client_id")?.is_some() {
                    page.clients.push(rows::client(row)?);
                }
            }
            Ok(page)
        };
        decode().map_err(|e| corrupt(e, "decoding a page of clients"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn count_by_status(&self) -> Result<ClientCounts, RepositoryError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS clients FROM clients GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(e, "counting clients by status"))?;
        let decode = || -> anyhow::Result<ClientCounts> {
            let mut counts = ClientCounts::default();
            for row in &rows {
                let count = u64::try_from(row.try_get::<i64, _>("clients")?)?;
                match rows::parsed(row, "status", ClientStatus::parse)? {
                    ClientStatus::Active => counts.active = count,
                    ClientStatus::Inactive => counts.inactive = count,
                    ClientStatus::Suspended => counts.suspended = count,
                }
            }
            Ok(counts)
        };
        decode().map_err(|e| corrupt(e, "decoding client counts"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %client_id))]
    async fn revoke_token(
        &self,
        client_id: &ClientId,
        token_id: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(), RepositoryError> {
        // Entries whose token has expired anyway are forgotten on the way (index range); this
        // token's own entry is left to the conflict clause.
        sqlx::query(
            "WITH purged AS (DELETE FROM revoked_tokens \
                 WHERE expires_at < now() AND token_id <> $1) \
             INSERT INTO revoked_tokens (token_id, client_id, expires_at, revoked_at) \
             VALUES ($1, $2, $3, now()) ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(token_id)
        .bind(client_id.as_str())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, format!("revoking a token of client {client_id}")))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, RepositoryError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = $1) AS revoked",
        )
        .bind(token_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "checking whether a token is revoked"))?;
        rows::get(&row, "revoked").map_err(|e| corrupt(e, "decoding token revocation"))
    }
}
