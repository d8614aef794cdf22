//! Opens the database the settings choose and hands it out as domain ports.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use outcall_domain::ports::{AdminRepository, CallRepository, ClientRepository, HealthProbe};
use outcall_postgres::PgStore;
use outcall_sqlite::SqliteStore;

use crate::call_metrics::MeteredCalls;
use crate::settings::{DatabaseTarget, Settings};

/// The repositories of one database, as ports. `calls` counts call endings and outcomes
/// (see [`MeteredCalls`]).
#[derive(Clone)]
pub struct Repositories {
    pub clients: Arc<dyn ClientRepository>,
    pub calls: Arc<dyn CallRepository>,
    pub admins: Arc<dyn AdminRepository>,
    pub health: Arc<dyn HealthProbe>,
}

fn share<S>(store: S) -> Repositories
where
    S: ClientRepository + CallRepository + AdminRepository + HealthProbe + 'static,
{
    let store = Arc::new(store);
    Repositories {
        clients: store.clone(),
        calls: Arc::new(MeteredCalls::new(store.clone())),
        admins: store.clone(),
        health: store,
    }
}

/// Connects (creating the SQLite data directory when needed) and, when `migrate` is set,
/// applies pending migrations.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn open(settings: &Settings, migrate: bool) -> anyhow::Result<Repositories> {
    let target = settings.database();
    match &target {
        DatabaseTarget::Postgres { url } => {
            let store = PgStore::connect(url, settings.database.max_connections)
                .await
                .with_context(|| format!("connecting to {}", target.redacted()))?;
            if migrate {
                store.migrate().await.context("migrating PostgreSQL")?;
            }
            Ok(share(store))
        }
        DatabaseTarget::Sqlite { url, data_dir } => {
            ensure_dir(data_dir)?;
            let store = SqliteStore::connect(url)
                .await
                .with_context(|| format!("opening {}", target.redacted()))?;
            if migrate {
                store.migrate().await.context("migrating SQLite")?;
            }
            Ok(share(store))
        }
    }
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}
