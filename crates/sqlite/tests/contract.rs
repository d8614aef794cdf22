//! The repository contract suite on fresh temporary SQLite databases.

use outcall_repo_contract::Repos;
use outcall_sqlite::SqliteStore;

async fn fresh_repos() -> Repos {
    match SqliteStore::temporary().await {
        Ok(store) => Repos::from_store(store),
        Err(e) => panic!("cannot create a temporary SQLite store: {e:#}"),
    }
}

outcall_repo_contract::contract_tests!(fresh_repos());
