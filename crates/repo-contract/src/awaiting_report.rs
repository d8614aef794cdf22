//! `CallRepository::calls_awaiting_report` and `record_report_fetch`: the backlog the
//! missed-report fallback works on, and its bookkeeping of fruitless tries.

use outcall_domain::call::Call;
use outcall_domain::ports::CasOutcome;
use outcall_domain::queries::{AwaitingReport, ReportBacklogQuery};
use outcall_domain::{CallStatus, ClientId, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Repos;
use crate::fixtures::{at_ms, call, client, conversation, insert_call, insert_client, text};

/// The `ended_before` bound of the test: calls must have ended strictly before it.
fn cutoff() -> Timestamp {
    at_ms(0)
}

/// The `ended_after` bound of the test (the window): calls never tried must have ended at or
/// after it.
fn window_start() -> Timestamp {
    at_ms(-1_000_000)
}

/// The backlog query of the test at `now`, ended before [`cutoff`], inside the window.
fn due_at(now: Timestamp, limit: u32) -> ReportBacklogQuery {
    ReportBacklogQuery {
        ended_before: cutoff(),
        ended_after: window_start(),
        now,
        limit,
    }
}

/// `calls` as backlog entries never tried.
fn untried(calls: &[Call]) -> Vec<AwaitingReport> {
    calls.iter().map(|c| tried(c, 0)).collect()
}

fn tried(call: &Call, fetch_attempts: u32) -> AwaitingReport {
    AwaitingReport {
        call: call.clone(),
        fetch_attempts,
    }
}

/// A call that qualifies: bridged to a conversation, in `status`, ended `ended_ms` from the
/// cutoff, without a report. Start times run against end times, so that an ordering by start
/// time, or by insertion, gives a different answer.
fn awaiting(owner: &ClientId, id: &str, status: CallStatus, ended_ms: i64) -> Call {
    let mut c = call(owner, id, at_ms(-10 * ended_ms - 600_000), status);
    c.data.end_time = Some(at_ms(ended_ms));
    c.data.conversation_id = Some(conversation(&format!("conv_{id}")));
    c.data.end_reason = Some(text("agent_hangup"));
    c
}

/// Of the calls never tried, exactly those with a conversation id, a terminal status, no
/// analysis and an end time in `[ended_after, ended_before)` are returned, whichever client
/// owns them, oldest end time first with ties by id, at most `limit` of them; each excluded
/// call differs from a qualifying one in one respect only (no conversation id, each
/// non-terminal status, already analysed, ended at or after the bound, ended before the
/// window, no end time), and a call leaves the backlog once its analysis is stored.
pub async fn calls_awaiting_a_report_are_the_ended_unanalysed_bridged_ones_oldest_first(
    repos: Repos,
) {
    let first = client("backlog1");
    let second = client("backlog2");
    insert_client(&repos, &first).await;
    insert_client(&repos, &second).await;
    let (a, b) = (&first.id, &second.id);

    // Every terminal status qualifies; two calls of different clients end at the same instant
    // (the id decides), one ends a millisecond before the bound.
    let mut expected = vec![
        awaiting(b, "due-busy", CallStatus::Busy, -50_000),
        awaiting(a, "due-completed", CallStatus::Completed, -40_000),
        awaiting(b, "due-failed", CallStatus::Failed, -30_000),
        awaiting(a, "due-no-answer", CallStatus::NoAnswer, -30_000),
        awaiting(b, "due-canceled", CallStatus::Canceled, -20_000),
        awaiting(a, "due-last", CallStatus::Completed, -1),
        // Ended exactly at the start of the window.
        awaiting(b, "due-window-start", CallStatus::Completed, -1_000_000),
    ];
    expected.sort_by(|x, y| {
        x.data
            .end_time
            .cmp(&y.data.end_time)
            .then_with(|| x.id.cmp(&y.id))
    });

    let mut excluded = Vec::new();
    let mut unbridged = awaiting(a, "no-conversation", CallStatus::Completed, -60_000);
    unbridged.data.conversation_id = None;
    excluded.push(unbridged);
    for (n, status) in CallStatus::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .enumerate()
    {
        // A live call with an end time (set by an admin's patch, say) is still not ended.
        excluded.push(awaiting(
            b,
            &format!("live-{status}"),
            status,
            -70_000 - i64::try_from(n).expect("small"),
        ));
    }
    let mut analysed = awaiting(a, "analysed", CallStatus::Completed, -80_000);
    analysed.details.analysis_at = Some(at_ms(-79_000));
    excluded.push(analysed);
    excluded.push(awaiting(b, "ended-at-bound", CallStatus::Completed, 0));
    excluded.push(awaiting(a, "ended-after", CallStatus::Busy, 1));
    let mut endless = awaiting(b, "no-end-time", CallStatus::Failed, -90_000);
    endless.data.end_time = None;
    excluded.push(endless);
    excluded.push(awaiting(
        a,
        "before-window",
        CallStatus::Completed,
        -1_000_001,
    ));
    assert_eq!(excluded.len(), 10);

    let mut all: Vec<&Call> = expected.iter().chain(&excluded).collect();
    all.shuffle(&mut StdRng::seed_from_u64(17));
    for c in all {
        insert_call(&repos, c).await;
    }

    let calls = &repos.calls;
    let backlog = |limit| async move {
        calls
            .calls_awaiting_report(&due_at(cutoff(), limit))
            .await
            .expect("backlog")
    };
    assert_eq!(backlog(100).await, untried(&expected));
    assert_eq!(backlog(7).await, untried(&expected));
    assert_eq!(backlog(3).await, untried(&expected[..3]));
    assert_eq!(backlog(1).await, untried(&expected[..1]));
    assert_eq!(backlog(0).await, Vec::new());
    // An earlier bound cuts the tail: only calls ended strictly before it.
    let earlier = ReportBacklogQuery {
        ended_before: at_ms(-40_000),
        ..due_at(cutoff(), 100)
    };
    assert_eq!(
        repos
            .calls
            .calls_awaiting_report(&earlier)
            .await
            .expect("backlog"),
        untried(&expected[..2])
    );
    // A later window start cuts the head.
    let narrower = ReportBacklogQuery {
        ended_after: at_ms(-50_000),
        ..due_at(cutoff(), 100)
    };
    assert_eq!(
        repos
            .calls
            .calls_awaiting_report(&narrower)
            .await
            .expect("backlog"),
        untried(&expected[1..])
    );

    // Storing the oldest call's analysis takes it out of the backlog.
    let mut done = expected[0].clone();
    done.details.analysis_at = Some(at_ms(5));
    done.details.call_successful = Some(text("success"));
    assert_eq!(
        repos.calls.update(&done).await.expect("update"),
        CasOutcome::Updated
    );
    assert_eq!(backlog(100).await, untried(&expected[1..]));
}

/// A recorded fruitless fetch counts the try and schedules the next: the call is due again
/// only from that instant on (inclusive), after every call never tried, earliest next try
/// first (ties by end time), whatever its end time and the window; a try recorded without a
/// next one gives the call up for good. Recording is a compare-and-set on the count, refused
/// for an analysed or unknown call, and leaves the call record (version, `updated_at`) alone,
/// so that a write of the call neither conflicts with it nor resets the count.
pub async fn a_recorded_report_fetch_schedules_the_next_try_or_gives_the_call_up(repos: Repos) {
    let owner = client("fetches");
    insert_client(&repos, &owner).await;
    let o = &owner.id;
    let a = awaiting(o, "fetch-a", CallStatus::Completed, -50_000);
    let b = awaiting(o, "fetch-b", CallStatus::Busy, -40_000);
    let c = awaiting(o, "fetch-c", CallStatus::Completed, -30_000);
    let fresh = awaiting(o, "fetch-fresh", CallStatus::Completed, -10_000);
    for call in [&a, &b, &c, &fresh] {
        insert_call(&repos, call).await;
    }
    let calls = &repos.calls;
    let backlog = |now: Timestamp, limit| async move {
        calls
            .calls_awaiting_report(&due_at(now, limit))
            .await
            .expect("backlog")
    };
    let record = |call: &Call, seen, attempts, next_at| {
        let id = call.id.clone();
        async move {
            calls
                .record_report_fetch(&id, seen, attempts, next_at)
                .await
                .expect("recording")
        }
    };

    // A is tried at 0 and due again at 10 s.
    assert!(record(&a, 0, 1, Some(at_ms(10_000))).await);
    // The same try recorded again (by another replica, say) finds the count moved on.
    assert!(!record(&a, 0, 1, Some(at_ms(20_000))).await);
    assert_eq!(
        backlog(at_ms(0), 100).await,
        untried(&[b.clone(), c.clone(), fresh.clone()])
    );
    assert_eq!(
        backlog(at_ms(9_999), 100).await,
        untried(&[b.clone(), c.clone(), fresh.clone()])
    );
    let mut all = untried(&[b.clone(), c.clone(), fresh.clone()]);
    all.push(tried(&a, 1));
    assert_eq!(backlog(at_ms(10_000), 100).await, all);
    assert_eq!(backlog(at_ms(10_000), 3).await, all[..3].to_vec());

    // Due calls come earliest next try first, ties by end time; whatever the window.
    assert!(record(&c, 0, 1, Some(at_ms(5_000))).await);
    assert!(record(&b, 0, 1, Some(at_ms(5_000))).await);
    assert!(record(&fresh, 0, 3, Some(at_ms(7_000))).await);
    let due = vec![tried(&b, 1), tried(&c, 1), tried(&fresh, 3), tried(&a, 1)];
    assert_eq!(backlog(at_ms(10_000), 100).await, due);
    assert_eq!(backlog(at_ms(10_000), 2).await, due[..2].to_vec());
    let past_window = ReportBacklogQuery {
        ended_after: at_ms(-5_000),
        ..due_at(at_ms(10_000), 100)
    };
    assert_eq!(
        calls
            .calls_awaiting_report(&past_window)
            .await
            .expect("backlog"),
        due
    );

    // The call record is untouched: same version and updated_at, and a write of the call
    // (here a webhook-like change of its end reason) applies and keeps the count.
    let stored = calls
        .find_by_id(&b.id)
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(stored, b);
    let mut edited = stored.clone();
    edited.data.end_reason = Some(text("edited"));
    edited.updated_at = at_ms(1);
    assert_eq!(
        calls.update(&edited).await.expect("update"),
        CasOutcome::Updated
    );
    edited.version += 1;
    assert_eq!(backlog(at_ms(10_000), 1).await, vec![tried(&edited, 1)]);

    // Given up: never due again, however late; the count is kept.
    assert!(record(&a, 1, 2, None).await);
    let much_later = at_ms(1_000_000_000_000);
    assert_eq!(
        backlog(much_later, 100).await,
        vec![tried(&edited, 1), tried(&c, 1), tried(&fresh, 3)]
    );
    // A given-up call can still be completed by a report (a late webhook).
    assert_eq!(
        calls
            .find_by_id(&a.id)
            .await
            .expect("find")
            .expect("stored"),
        a
    );

    // Analysed and unknown calls record nothing.
    let mut analysed = c.clone();
    analysed.details.analysis_at = Some(at_ms(11_000));
    assert_eq!(
        calls.update(&analysed).await.expect("update"),
        CasOutcome::Updated
    );
    assert!(!record(&c, 1, 2, Some(at_ms(20_000))).await);
    let unknown = awaiting(o, "fetch-unknown", CallStatus::Completed, -1);
    assert!(!record(&unknown, 0, 1, None).await);
    assert_eq!(
        backlog(much_later, 100).await,
        vec![tried(&edited, 1), tried(&fresh, 3)]
    );
}

/// Replicas recording the same try at once count it once.
pub async fn racing_records_of_one_report_fetch_count_it_once(repos: Repos) {
    let owner = client("fetchrace");
    insert_client(&repos, &owner).await;
    let call = awaiting(&owner.id, "fetch-race", CallStatus::Completed, -1_000);
    insert_call(&repos, &call).await;
    let tasks: Vec<_> = (0..8_u32)
        .map(|n| {
            let calls = repos.calls.clone();
            let id = call.id.clone();
            tokio::spawn(async move {
                calls
                    .record_report_fetch(&id, 0, 1, Some(at_ms(1_000 + i64::from(n))))
                    .await
                    .expect("recording")
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        if task.await.expect("task") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let entries = repos
        .calls
        .calls_awaiting_report(&due_at(at_ms(2_000), 10))
        .await
        .expect("backlog");
    assert_eq!(entries, vec![tried(&call, 1)]);
}
