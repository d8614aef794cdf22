use std::sync::Arc;

use chrono::Duration;

use crate::call::{Call, CallPatch, NewCall, StatusRegression};
use crate::ports::{
    CallRepository, CasOutcome, ClientRepository, Clock, IdGenerator, RepositoryError, UniqueField,
};
use crate::queries::{
    CallActivity, CallDashboard, CallListQuery, CallPage, CallStats, ClientCounts,
};
use crate::values::{CallId, ClientId};

/// Errors of the call-history use cases.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("client not found")]
    ClientNotFound,
    #[error("call not found")]
    CallNotFound,
    #[error(transparent)]
    StatusRegression(#[from] StatusRegression),
    #[error("a call with this {} already exists", .0.as_str())]
    Duplicate(UniqueField),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for CallError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::Duplicate(field) => Self::Duplicate(field),
            RepositoryError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

/// Counts for the admin dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    pub clients: ClientCounts,
    pub calls: CallDashboard,
}

/// Call history, statistics and the admin's overview.
#[derive(Clone)]
pub struct CallHistory {
    calls: Arc<dyn CallRepository>,
    clients: Arc<dyn ClientRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

/// How often a compare-and-set write is retried before giving up. Conflicts only happen when
/// several writers touch the same call at the same moment, so a handful of rounds suffices.
const MAX_CAS_ATTEMPTS: usize = 64;

/// How far back "recent" calls on the dashboard go.
pub const RECENT_WINDOW_DAYS: i64 = 7;

impl CallHistory {
    pub fn new(
        calls: Arc<dyn CallRepository>,
        clients: Arc<dyn ClientRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            calls,
            clients,
            clock,
            ids,
        }
    }

    async fn require_client(&self, client_id: &ClientId) -> Result<(), CallError> {
        match self.clients.find(client_id).await? {
            Some(_) => Ok(()),
            None => Err(CallError::ClientNotFound),
        }
    }

    /// A page of the client's calls.
    ///
    /// # Errors
    /// `ClientNotFound` for an unknown client.
    pub async fn list(
        &self,
        client_id: &ClientId,
        query: &CallListQuery,
    ) -> Result<CallPage, CallError> {
        self.require_client(client_id).await?;
        Ok(self.calls.list_for_client(client_id, query).await?)
    }

    /// One of the client's calls; another client's call is as missing as a nonexistent one.
    ///
    /// # Errors
    /// `CallNotFound` when the call does not exist or belongs to someone else;
    /// `ClientNotFound` when the client itself does not exist.
    pub async fn get(&self, client_id: &ClientId, call_id: &CallId) -> Result<Call, CallError> {
        match self.calls.find(client_id, call_id).await? {
            Some(call) => Ok(call),
            // Only a miss pays for telling "no such client" from "no such call".
            None => {
                self.require_client(client_id).await?;
                Err(CallError::CallNotFound)
            }
        }
    }

    /// Adds a call record to the client's history and returns its new id.
    ///
    /// # Errors
    /// `ClientNotFound`; `Duplicate(CallSid)` when the SID is already recorded.
    pub async fn add(&self, client_id: &ClientId, new: NewCall) -> Result<CallId, CallError> {
        self.require_client(client_id).await?;
        let now = self.clock.now();
        let call = Call {
            id: self.ids.call_id(),
            client_id: client_id.clone(),
            data: new.data,
            details: new.details,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.calls.insert(&call).await?;
        Ok(call.id)
    }

    /// Applies an admin's partial change; a status change follows the same rules as provider
    /// callbacks, and one that would move the call backwards is refused.
    ///
    /// # Errors
    /// `ClientNotFound`, `CallNotFound`, `StatusRegression`, `Duplicate(CallSid)`.
    pub async fn update(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
        patch: &CallPatch,
    ) -> Result<Call, CallError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut call = self.get(client_id, call_id).await?;
            call.apply_patch(patch, self.clock.now())?;
            match self.calls.update(&call).await? {
                CasOutcome::Updated => {
                    call.version += 1;
                    return Ok(call);
                }
                CasOutcome::Conflict => continue,
                CasOutcome::Missing => return Err(CallError::CallNotFound),
            }
        }
        Err(CallError::Unexpected(anyhow::anyhow!(
            "call {call_id} kept changing under {MAX_CAS_ATTEMPTS} update attempts"
        )))
    }

    /// # Errors
    /// `ClientNotFound` for an unknown client.
    pub async fn stats(&self, client_id: &ClientId) -> Result<CallStats, CallError> {
        self.require_client(client_id).await?;
        Ok(self.calls.stats_for_client(client_id).await?)
    }

    /// Client counts and call counts; `recent` covers the last seven days.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn dashboard(&self) -> Result<Dashboard, CallError> {
        let since = self.clock.now() - Duration::days(RECENT_WINDOW_DAYS);
        let clients = self.clients.count_by_status().await?;
        let calls = self.calls.dashboard(since).await?;
        Ok(Dashboard { clients, calls })
    }

    /// Calls started in the last `days` days, newest first, at most `limit`.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    pub async fn recent_activity(
        &self,
        days: u32,
        limit: u32,
    ) -> Result<Vec<CallActivity>, CallError> {
        let since = self.clock.now() - Duration::days(i64::from(days));
        Ok(self.calls.recent_activity(since, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallOutcome;
    use crate::call_status::CallStatus;
    use crate::ports::{MockCallRepository, MockClientRepository, MockClock, MockIdGenerator};
    use crate::test_support::{call_fixture, client_fixture, fixed_now};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn service(calls: MockCallRepository, clients_exist: bool) -> CallHistory {
        let mut clients = MockClientRepository::new();
        clients
            .expect_find()
            .returning(move |id| Ok(clients_exist.then(|| client_fixture(id.as_str()))));
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        let mut ids = MockIdGenerator::new();
        ids.expect_call_id()
            .returning(|| CallId::parse("call-new").expect("valid"));
        CallHistory::new(
            Arc::new(calls),
            Arc::new(clients),
            Arc::new(clock),
            Arc::new(ids),
        )
    }

    fn ids() -> (ClientId, CallId) {
        (
            ClientId::parse("c1").expect("valid"),
            CallId::parse("k1").expect("valid"),
        )
    }

    #[tokio::test]
    async fn listing_calls_of_an_unknown_client_is_client_not_found() {
        let mut calls = MockCallRepository::new();
        calls.expect_list_for_client().never();
        let query = CallListQuery {
            status: None,
            limit: 20,
            offset: 0,
        };
        let result = service(calls, false).list(&ids().0, &query).await;
        assert!(matches!(result, Err(CallError::ClientNotFound)));
    }

    #[tokio::test]
    async fn update_retries_on_a_version_conflict_and_reapplies_to_the_fresh_record() {
        let reads = Arc::new(AtomicUsize::new(0));
        let mut calls = MockCallRepository::new();
        let counter = reads.clone();
        calls.expect_find().returning(move |client, id| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut call = call_fixture(client.as_str(), id.as_str(), CallStatus::Ringing);
            call.version = n as i64;
            Ok(Some(call))
        });
        let writes = Arc::new(AtomicUsize::new(0));
        let w = writes.clone();
        calls.expect_update().returning(move |call| {
            let n = w.fetch_add(1, Ordering::SeqCst);
            assert_eq!(call.version, n as i64, "writes the version it read");
            Ok(if n == 0 {
                CasOutcome::Conflict
            } else {
                CasOutcome::Updated
            })
        });
        let patch = CallPatch {
            status: Some(CallStatus::Completed),
            outcome: Some(CallOutcome::Interested),
            ..CallPatch::default()
        };
        let (client, call) = ids();
        let updated = service(calls, true)
            .update(&client, &call, &patch)
            .await
            .expect("updated");
        assert_eq!(updated.data.status(), CallStatus::Completed);
        assert_eq!(updated.version, 2);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_missing_call_of_an_unknown_client_is_client_not_found() {
        let (client, call) = ids();
        for (client_exists, expect_client_missing) in [(false, true), (true, false)] {
            let mut calls = MockCallRepository::new();
            calls.expect_find().returning(|_, _| Ok(None));
            let result = service(calls, client_exists).get(&client, &call).await;
            if expect_client_missing {
                assert!(matches!(result, Err(CallError::ClientNotFound)));
            } else {
                assert!(matches!(result, Err(CallError::CallNotFound)));
            }
        }
    }

    #[tokio::test]
    async fn an_admin_cannot_move_a_call_backwards() {
        let mut calls = MockCallRepository::new();
        calls.expect_find().returning(|c, k| {
            Ok(Some(call_fixture(
                c.as_str(),
                k.as_str(),
                CallStatus::Completed,
            )))
        });
        calls.expect_update().never();
        let patch = CallPatch {
            status: Some(CallStatus::Ringing),
            ..CallPatch::default()
        };
        let (client, call) = ids();
        let result = service(calls, true).update(&client, &call, &patch).await;
        assert!(matches!(result, Err(CallError::StatusRegression(_))));
    }

    #[tokio::test]
    async fn dashboard_counts_recent_calls_from_seven_days_ago() {
        let mut calls = MockCallRepository::new();
        calls
            .expect_dashboard()
            .withf(|since| *since == fixed_now() - Duration::days(7))
            .returning(|_| {
                Ok(CallDashboard {
                    total: 0,
                    recent: 0,
                    by_status: crate::queries::Tally::statuses(),
                    by_outcome: crate::queries::Tally::outcomes(),
                })
            });
        let mut clients = MockClientRepository::new();
        clients
            .expect_count_by_status()
            .returning(|| Ok(ClientCounts::default()));
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        let service = CallHistory::new(
            Arc::new(calls),
            Arc::new(clients),
            Arc::new(clock),
            Arc::new(MockIdGenerator::new()),
        );
        assert_eq!(service.dashboard().await.expect("ok").calls.total, 0);
    }
}
