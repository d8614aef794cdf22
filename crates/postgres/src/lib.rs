//! The repository ports over PostgreSQL (sqlx 0.9, runtime-checked queries).
//!
//! Every list, count and statistic is computed in SQL. Per-client call counts come from the
//! `call_tallies` table, which triggers on `calls` keep exact (see
//! `migrations/0002_call_tallies.sql`), so statistics and the dashboard never aggregate the
//! whole call history. `sqlx::Error` never leaves this crate: unique violations become
//! [`RepositoryError::Duplicate`] by constraint name, everything else
//! [`RepositoryError::Unexpected`] with context.

mod admins;
#[cfg(feature = "bench")]
pub mod bench;
mod calls;
mod clients;
mod error;
mod rows;

use anyhow::Context as _;
use async_trait::async_trait;
use outcall_domain::ports::{HealthProbe, PoolUsage, RepositoryError};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// PostgreSQL-backed implementation of `ClientRepository`, `CallRepository`,
/// `AdminRepository` and `HealthProbe`. Cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// The schema migrations (`migrations/` at the workspace root), embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

impl PgStore {
    /// Opens a pool of at most `max_connections` connections to `url`
    /// (`postgres://user:password@host:port/database`).
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool (for tools such as the benchmark's bulk seeding, and for closing).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies every pending migration. Safe to run at each start-up and from several
    /// processes at once (sqlx takes an advisory lock).
    ///
    /// # Errors
    /// When a migration fails or an applied migration was changed since.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying PostgreSQL migrations")
    }
}

#[async_trait]
impl HealthProbe for PgStore {
    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| error::classify(e, "pinging PostgreSQL"))?;
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
