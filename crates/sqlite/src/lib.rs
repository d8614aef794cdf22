//! outcall's persistence ports over SQLite (sqlx), the zero-setup embedded default.
//!
//! One [`SqliteStore`] implements `ClientRepository`, `CallRepository`, `AdminRepository` and
//! `HealthProbe`. The database runs in WAL mode (readers never block the writer) with foreign
//! keys on and a busy timeout, so concurrent writers wait for each other instead of failing.
//! Queries are plain runtime `sqlx::query` calls with static SQL: no compile-time database.
//! Timestamps are stored as INTEGER milliseconds since the Unix epoch.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use outcall_domain::ports::{HealthProbe, PoolUsage, RepositoryError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod admins;
mod calls;
mod clients;
mod rows;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Writers wait this long for the write lock before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time anyway; a few connections let reads run beside it.
const MAX_CONNECTIONS: u32 = 8;

/// The SQLite-backed store. Cloning shares the connection pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Keeps the directory of a [`SqliteStore::temporary`] store alive as long as the store.
    _temp_dir: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g. `sqlite://data/outcall.db`
    /// or `sqlite:///var/lib/outcall/outcall.db`; the file's directory is created too.
    /// `sqlite::memory:` gives a private in-memory database (one connection, for tests).
    /// Does not migrate: call [`SqliteStore::migrate`].
    ///
    /// # Errors
    /// When the URL is invalid, the directory cannot be created or the database not opened.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options =
            SqliteConnectOptions::from_str(url).context("the SQLite database URL is invalid")?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::open(options, in_memory).await
    }

    async fn open(options: SqliteConnectOptions, in_memory: bool) -> anyhow::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode and avoids an fsync
            // per commit; only an OS crash or power loss can drop the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = if in_memory {
            // An in-memory database lives only as long as its one connection.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .context("opening the in-memory SQLite database")?
        } else {
            let file = options.get_filename().to_owned();
            create_parent_dir(&file)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options)
                .await
                .with_context(|| format!("opening the SQLite database {}", file.display()))?;
            tracing::info!(path = %file.display(), "opened SQLite database");
            pool
        };
        Ok(Self {
            pool,
            _temp_dir: None,
        })
    }

    /// A fresh, migrated database in a new temporary directory that is deleted when the last
    /// clone of the store is dropped. For tests and throw-away runs.
    ///
    /// # Errors
    /// When the directory or database cannot be created or migrated.
    pub async fn temporary() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("outcall-sqlite-")
            .tempdir()
            .context("creating a temporary directory for SQLite")?;
        let options = SqliteConnectOptions::new().filename(dir.path().join("outcall.db"));
        let mut store = Self::open(options, false).await?;
        store.migrate().await?;
        store._temp_dir = Some(Arc::new(dir));
        Ok(store)
    }

    /// Applies the embedded migrations that have not run yet.
    ///
    /// # Errors
    /// When a migration fails or the recorded migrations differ from the embedded ones.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying the SQLite migrations")?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_parent_dir(file: &Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database directory {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), "created the database directory");
            Ok(())
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl HealthProbe for SqliteStore {
    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| rows::db_error(e, "pinging SQLite"))?;
        Ok(())
    }

    fn pool_usage(&self) -> Option<PoolUsage> {
        Some(PoolUsage::from_counts(
            self.pool.size(),
            self.pool.num_idle(),
            self.pool.options().get_max_connections(),
        ))
    }
}
