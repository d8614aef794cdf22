//! `ClientRepository` over SQLite.

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use outcall_domain::Timestamp;
use outcall_domain::client::{Client, ClientMeta, ClientPatch};
use outcall_domain::ports::{ClientRepository, RepositoryError};
use outcall_domain::queries::{ClientCounts, ClientListQuery, ClientPage};
use outcall_domain::values::{AgentId, ClientId, ClientStatus, Email, PhoneNumber, SecretHash};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite};

use crate::SqliteStore;
use crate::rows::{
    corrupt, count, db_error, get, millis, opt_millis, parse, sql_offset, text, text_opt, timestamp,
};

/// The columns `client_from_row` reads, in one place for every SELECT and RETURNING.
macro_rules! client_columns {
    () => {
        "client_id, status, agent_id, twilio_phone_number, full_name, email, phone, \
         business_name, city, job_title, notes, token_version, created_at, updated_at"
    };
}

/// The page query and its count query for one filter: a page of clients, newest first,
/// ties by id descending (the `clients_created_idx` order).
macro_rules! client_list {
    ($filter:literal) => {
        (
            concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients ",
                $filter,
                " ORDER BY created_at DESC, client_id DESC LIMIT ? OFFSET ?"
            ),
            concat!("SELECT COUNT(*) AS n FROM clients ", $filter),
        )
    };
}

/// The SQL for each combination of filters; SQL stays `'static` (no string building).
/// Search is `instr` on the lower-cased search text: every character of the (already
/// lower-cased) term is literal, unlike LIKE, so `%`, `_` and `\` need no escaping.
fn list_sql(status: bool, search: bool) -> (&'static str, &'static str) {
    match (status, search) {
        (false, false) => client_list!(""),
        (true, false) => client_list!("WHERE status = ?"),
        (false, true) => client_list!("WHERE instr(search_text, ?) > 0"),
        (true, true) => client_list!("WHERE status = ? AND instr(search_text, ?) > 0"),
    }
}

type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Binds, in order: status, agent_id, twilio_phone_number, full_name, email,
/// email_normalized, phone, business_name, city, job_title, notes, search_text, updated_at.
fn bind_mutable(query: Query, client: &Client) -> Query {
    let meta = &client.meta;
    query
        .bind(client.status.as_str())
        .bind(client.agent_id.as_str())
        .bind(client.twilio_phone_number.as_str())
        .bind(meta.full_name.as_str())
        .bind(meta.email.as_str())
        .bind(meta.email.normalized())
        .bind(meta.phone.as_str())
        .bind(meta.business_name.as_ref().map(|t| t.as_str()))
        .bind(meta.city.as_ref().map(|t| t.as_str()))
        .bind(meta.job_title.as_ref().map(|t| t.as_str()))
        .bind(meta.notes.as_ref().map(|t| t.as_str()))
        .bind(meta.search_text())
        .bind(millis(client.updated_at))
}

pub(crate) fn client_from_row(row: &SqliteRow) -> anyhow::Result<Client> {
    let id: String = get(row, "client_id")?;
    read_client(row).with_context(|| format!("stored client {id:?} is corrupt"))
}

fn read_client(row: &SqliteRow) -> anyhow::Result<Client> {
    Ok(Client {
        id: parse(row, "client_id", ClientId::parse)?,
        status: parse(row, "status", ClientStatus::parse)?,
        agent_id: parse(row, "agent_id", AgentId::parse)?,
        twilio_phone_number: parse(row, "twilio_phone_number", PhoneNumber::parse)?,
        meta: ClientMeta {
            full_name: text(row, "full_name", ClientMeta::FULL_NAME_MAX)?,
            email: parse(row, "email", Email::parse)?,
            phone: parse(row, "phone", PhoneNumber::parse)?,
            business_name: text_opt(row, "business_name", ClientMeta::BUSINESS_NAME_MAX)?,
            city: text_opt(row, "city", ClientMeta::CITY_MAX)?,
            job_title: text_opt(row, "job_title", ClientMeta::JOB_TITLE_MAX)?,
            notes: text_opt(row, "notes", ClientMeta::NOTES_MAX)?,
        },
        token_version: get(row, "token_version")?,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

fn one_client(row: Option<SqliteRow>) -> Result<Option<Client>, RepositoryError> {
    row.as_ref()
        .map(client_from_row)
        .transpose()
        .map_err(corrupt)
}

#[async_trait]
impl ClientRepository for SqliteStore {
    async fn insert(
        &self,
        client: &Client,
        secret_hash: &SecretHash,
    ) -> Result<(), RepositoryError> {
        let insert = sqlx::query(
            "INSERT INTO clients (status, agent_id, twilio_phone_number, full_name, email, \
             email_normalized, phone, business_name, city, job_title, notes, search_text, \
             updated_at, client_id, token_version, created_at, secret_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        bind_mutable(insert, client)
            .bind(client.id.as_str())
            .bind(client.token_version)
            .bind(millis(client.created_at))
            .bind(secret_hash.as_phc())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "inserting a client"))?;
        Ok(())
    }

    async fn find(&self, id: &ClientId) -> Result<Option<Client>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(e, "finding a client"))?;
        one_client(row)
    }

    async fn find_with_secret(
        &self,
        id: &ClientId,
    ) -> Result<Option<(Client, SecretHash)>, RepositoryError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            ", secret_hash FROM clients WHERE client_id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(e, "finding a client with its secret"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let client = client_from_row(&row).map_err(corrupt)?;
        let hash: String = get(&row, "secret_hash").map_err(corrupt)?;
        Ok(Some((client, SecretHash::from_phc(hash))))
    }

    async fn update(
        &self,
        id: &ClientId,
        patch: &ClientPatch,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError> {
        // IMMEDIATE takes the write lock before the read, so no other writer can slip in
        // between reading the row and writing the patched version back.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error(e, "starting a client update"))?;
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db_error(e, "reading a client to update"))?;
        let Some(mut client) = one_client(row)? else {
            return Ok(None);
        };
        client.apply(patch, at);
        let update = sqlx::query(concat!(
            "UPDATE clients SET status = ?, agent_id = ?, twilio_phone_number = ?, \
             full_name = ?, email = ?, email_normalized = ?, phone = ?, business_name = ?, \
             city = ?, job_title = ?, notes = ?, search_text = ?, updated_at = ?, \
             token_version = ? WHERE client_id = ? RETURNING ",
            client_columns!()
        ));
        // token_version too: leaving Active revokes tokens (see `Client::apply`).
        let row = bind_mutable(update, &client)
            .bind(client.token_version)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error(e, "writing an updated client"))?;
        tx.commit()
            .await
            .map_err(|e| db_error(e, "committing a client update"))?;
        // The row as stored (timestamps at millisecond precision).
        client_from_row(&row).map(Some).map_err(corrupt)
    }

    async fn replace_secret(
        &self,
        id: &ClientId,
        secret_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError> {
        let row = sqlx::query(concat!(
            "UPDATE clients SET secret_hash = ?, token_version = token_version + 1, \
             updated_at = ? WHERE client_id = ? RETURNING ",
            client_columns!()
        ))
        .bind(secret_hash.as_phc())
        .bind(millis(at))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error(e, "replacing a client secret"))?;
        one_client(row)
    }

    async fn delete(&self, id: &ClientId) -> Result<bool, RepositoryError> {
        // Calls and revoked tokens go with the client: ON DELETE CASCADE (foreign keys are on).
        let done = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "deleting a client"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, query: &ClientListQuery) -> Result<ClientPage, RepositoryError> {
        let (page_sql, count_sql) = list_sql(query.status.is_some(), query.search.is_some());
        let mut page = sqlx::query(page_sql);
        let mut total = sqlx::query(count_sql);
        if let Some(status) = query.status {
            page = page.bind(status.as_str());
            total = total.bind(status.as_str());
        }
        if let Some(term) = &query.search {
            page = page.bind(term.as_str());
            total = total.bind(term.as_str());
        }
        page = page
            .bind(i64::from(query.limit))
            .bind(sql_offset(query.offset));

        // One read transaction: the page and its total come from the same snapshot.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error(e, "starting a client listing"))?;
        let rows = page
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(e, "listing clients"))?;
        let total = total
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error(e, "counting listed clients"))?;
        tx.commit()
            .await
            .map_err(|e| db_error(e, "finishing a client listing"))?;

        let clients = rows
            .iter()
            .map(client_from_row)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(corrupt)?;
        let total = count(&total, "n").map_err(corrupt)?;
        Ok(ClientPage { total, clients })
    }

    async fn count_by_status(&self) -> Result<ClientCounts, RepositoryError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM clients GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(e, "counting clients by status"))?;
        let mut counts = ClientCounts::default();
        for row in &rows {
            let status = parse(row, "status", ClientStatus::parse).map_err(corrupt)?;
            let n = count(row, "n").map_err(corrupt)?;
            match status {
                ClientStatus::Active => counts.active = n,
                ClientStatus::Inactive => counts.inactive = n,
                ClientStatus::Suspended => counts.suspended = n,
            }
        }
        Ok(counts)
    }

    /// Revoking a token of a client that no longer exists does nothing: such a token is
    /// refused anyway, and its row would be removed with the client.
    async fn revoke_token(
        &self,
        client_id: &ClientId,
        token_id: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(), RepositoryError> {
        let now = Utc::now();
        // Entries for tokens that expired are useless: forget them while we are writing.
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "forgetting expired revoked tokens"))?;
        sqlx::query(
            "INSERT INTO revoked_tokens (token_id, client_id, expires_at, revoked_at) \
             SELECT ?, client_id, ?, ? FROM clients WHERE client_id = ? \
             ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(token_id)
        .bind(opt_millis(expires_at))
        .bind(millis(now))
        .bind(client_id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| db_error(e, "revoking a token"))?;
        Ok(())
    }

    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, RepositoryError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = ?) AS revoked",
        )
        .bind(token_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(e, "checking a revoked token"))?;
        row.try_get::<bool, _>("revoked")
            .context("reading whether a token is revoked")
            .map_err(corrupt)
    }
}
