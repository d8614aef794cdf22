//! The shared repository contract suite, run against PostgreSQL.

mod support;

async fn fresh_repos() -> outcall_repo_contract::Repos {
    outcall_repo_contract::Repos::from_store(support::fresh_store().await)
}

outcall_repo_contract::contract_tests!(fresh_repos());
