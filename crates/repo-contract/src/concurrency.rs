//! Status compare-and-set under concurrency, driven through the domain's `CallHistory`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use outcall_domain::call::CallPatch;
use outcall_domain::services::{CallError, CallHistory};
use outcall_domain::{CallId, CallStatus};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use crate::Repos;
use crate::fixtures::{
    MillisClock, SequentialIds, at_ms, call, call_id, client, insert_call, insert_client,
};

/// Position in a call's life; all terminal statuses share the last stage.
fn stage(status: CallStatus) -> u8 {
    match status {
        CallStatus::Queued => 0,
        CallStatus::Initiated => 1,
        CallStatus::Ringing => 2,
        CallStatus::InProgress => 3,
        _ => 4,
    }
}

/// Many tasks apply shuffled, duplicated Twilio-like callback sequences to the same calls at
/// once. Every call ends in its sequence's terminal status with an end time; backwards moves
/// are refused (`StatusRegression`, ignored like a stale callback); every successful write is
/// exactly one version step, so the final version equals the number of successful updates and
/// no two writers ever succeeded from the same version; the statuses the writes produced,
/// in version order, never move backwards.
pub async fn racing_shuffled_status_callbacks_end_in_the_right_terminal_state(repos: Repos) {
    let owner = client("racer");
    insert_client(&repos, &owner).await;
    let history = CallHistory::new(
        repos.calls.clone(),
        repos.clients.clone(),
        Arc::new(MillisClock),
        Arc::new(SequentialIds::default()),
    );

    let mut rng = StdRng::seed_from_u64(0xCA11);
    let mut events: Vec<(CallId, CallStatus)> = Vec::new();
    let mut terminal = BTreeMap::new();
    for n in 0..12 {
        let id = call_id(&format!("race{n:02}"));
        insert_call(
            &repos,
            &call(&owner.id, id.as_str(), at_ms(n), CallStatus::Queued),
        )
        .await;
        let end = [
            CallStatus::Completed,
            CallStatus::Busy,
            CallStatus::NoAnswer,
        ][n as usize % 3];
        let sequence: &[CallStatus] = if end == CallStatus::Completed {
            &[
                CallStatus::Initiated,
                CallStatus::Ringing,
                CallStatus::InProgress,
                CallStatus::Completed,
            ]
        } else {
            &[CallStatus::Initiated, CallStatus::Ringing, end]
        };
        for status in sequence {
            for _ in 0..rng.random_range(1..=3) {
                events.push((id.clone(), *status));
            }
        }
        terminal.insert(id, end);
    }
    events.shuffle(&mut rng);

    // Every task waits at the barrier so that the updates really overlap.
    let barrier = Arc::new(Barrier::new(events.len()));
    let tasks = events.into_iter().map(|(id, status)| {
        let history = history.clone();
        let client_id = owner.id.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let patch = CallPatch {
                status: Some(status),
                ..CallPatch::default()
            };
            match history.update(&client_id, &id, &patch).await {
                Ok(written) => Some((id, written.version, written.data.status())),
                Err(CallError::StatusRegression(_)) => None,
                Err(other) => panic!("update of {id} to {status} failed: {other:?}"),
            }
        })
    });
    let mut writes: BTreeMap<CallId, Vec<(i64, CallStatus)>> = BTreeMap::new();
    for result in join_all(tasks).await {
        if let Some((id, version, status)) = result.expect("task finished") {
            writes.entry(id).or_default().push((version, status));
        }
    }

    for (id, end) in terminal {
        let mut written = writes.remove(&id).unwrap_or_default();
        written.sort();
        let versions: Vec<i64> = written.iter().map(|(v, _)| *v).collect();
        let expected_versions: Vec<i64> = (1..=written.len() as i64).collect();
        assert_eq!(
            versions, expected_versions,
            "{id}: one version step per write"
        );
        assert!(
            written.windows(2).all(|w| stage(w[0].1) <= stage(w[1].1)),
            "{id} moved backwards: {written:?}"
        );
        let stored = repos
            .calls
            .find(&owner.id, &id)
            .await
            .expect("find")
            .expect("exists");
        assert_eq!(stored.data.status(), end, "{id}");
        assert!(stored.data.end_time.is_some(), "{id} has an end time");
        assert_eq!(stored.version, written.len() as i64, "{id}");
    }
}
