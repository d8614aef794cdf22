//! One repository contract suite, written once and run against every persistence adapter.
//!
//! Each `pub async fn` here is one contract test: it receives a fresh, empty, migrated
//! [`Repos`] and panics when the adapter breaks the contract the ports document. An adapter
//! runs the whole suite with one line in its `tests/contract.rs`:
//!
//! ```ignore
//! outcall_repo_contract::contract_tests!(fresh_repos());
//! ```
//!
//! where `fresh_repos()` is an `async fn() -> Repos` (the crate must have `tokio` as a
//! dev-dependency, because the macro expands to `#[tokio::test]` functions).

// This crate is test code: a broken expectation must fail the test loudly, with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use outcall_domain::ports::{AdminRepository, CallRepository, ClientRepository, HealthProbe};

mod aggregates;
mod awaiting_report;
mod calls;
mod clients;
mod concurrency;
mod fixtures;

pub use aggregates::*;
pub use awaiting_report::*;
pub use calls::*;
pub use clients::*;
pub use concurrency::*;

/// The ports under test, all backed by one fresh store.
#[derive(Clone)]
pub struct Repos {
    pub clients: Arc<dyn ClientRepository>,
    pub calls: Arc<dyn CallRepository>,
    pub admins: Arc<dyn AdminRepository>,
    pub health: Arc<dyn HealthProbe>,
}

impl Repos {
    /// The four ports of a store that implements them all.
    pub fn from_store<S>(store: S) -> Self
    where
        S: ClientRepository + CallRepository + AdminRepository + HealthProbe + 'static,
    {
        let store = Arc::new(store);
        Self {
            clients: store.clone(),
            calls: store.clone(),
            admins: store.clone(),
            health: store,
        }
    }
}

/// Expands to one `#[tokio::test]` per contract function, each awaiting `$factory` for a
/// fresh, empty, migrated [`Repos`].
#[macro_export]
macro_rules! contract_tests {
    ($factory:expr) => {
        $crate::contract_tests!(@each $factory;
            a_client_reads_back_exactly_as_inserted,
            inserting_a_client_with_a_taken_id_is_a_duplicate_client_id,
            inserting_a_client_whose_email_differs_only_by_case_is_a_duplicate_email,
            updating_a_client_to_another_clients_email_is_a_duplicate_email,
            a_partial_client_update_changes_only_the_given_fields,
            concurrent_partial_updates_of_one_client_lose_nothing,
            replacing_a_secret_bumps_the_token_version_and_returns_the_updated_client,
            suspending_a_client_stores_its_bumped_token_version,
            deleting_a_client_removes_it_with_its_calls_and_revoked_tokens,
            listing_clients_pages_newest_first_ties_by_id_descending_with_the_total_of_all_matches,
            listing_clients_filters_by_status_and_counts_only_the_matches,
            searching_clients_is_a_case_insensitive_literal_substring_match,
            clients_are_counted_by_status,
            revoking_a_token_is_idempotent_and_affects_only_that_token,
            admins_are_created_replaced_found_and_counted,
            a_call_reads_back_exactly_with_every_optional_field_set_or_unset,
            a_call_is_invisible_to_another_client,
            inserting_a_call_with_a_taken_id_or_sid_is_a_duplicate,
            updating_a_call_is_a_compare_and_set_on_its_version,
            updating_a_call_under_another_clients_id_is_missing_and_writes_nothing,
            dynamic_variables_keep_exact_numbers_and_their_kind,
            a_sip_response_code_outside_100_to_699_is_refused_and_nothing_is_stored,
            listing_a_clients_calls_pages_newest_first_ties_by_id_descending_with_totals,
            listing_a_clients_calls_filters_by_status_counting_total_and_filtered,
            call_statistics_of_a_client_match_values_computed_from_its_calls,
            the_dashboard_matches_values_computed_from_all_calls,
            recent_activity_matches_values_computed_from_all_calls,
            calls_awaiting_a_report_are_the_ended_unanalysed_bridged_ones_oldest_first,
            a_recorded_report_fetch_schedules_the_next_try_or_gives_the_call_up,
            racing_records_of_one_report_fetch_count_it_once,
            racing_shuffled_status_callbacks_end_in_the_right_terminal_state,
            the_health_probe_answers,
        );
    };
    (@each $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::$name($factory.await).await;
            }
        )+
    };
}

/// The store answers its health probe.
pub async fn the_health_probe_answers(repos: Repos) {
    repos
        .health
        .ping()
        .await
        .expect("a fresh store answers ping");
}
