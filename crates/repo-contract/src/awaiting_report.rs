//! `CallRepository::calls_awaiting_report`: the backlog the missed-report fallback works on.

use outcall_domain::call::Call;
use outcall_domain::ports::CasOutcome;
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

/// Exactly the calls with a conversation id, a terminal status, no analysis and an end time
/// strictly before `ended_before` are returned, whichever client owns them, oldest end time
/// first with ties by id, at most `limit` of them; each excluded call differs from a
/// qualifying one in one respect only (no conversation id, each non-terminal status, already
/// analysed, ended at or after the bound, no end time), and a call leaves the backlog once its
/// analysis is stored.
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
    assert_eq!(excluded.len(), 9);

    let mut all: Vec<&Call> = expected.iter().chain(&excluded).collect();
    all.shuffle(&mut StdRng::seed_from_u64(17));
    for c in all {
        insert_call(&repos, c).await;
    }

    let backlog = |limit| repos.calls.calls_awaiting_report(cutoff(), limit);
    assert_eq!(backlog(100).await.expect("backlog"), expected);
    assert_eq!(backlog(6).await.expect("backlog"), expected);
    assert_eq!(backlog(3).await.expect("backlog"), expected[..3].to_vec());
    assert_eq!(backlog(1).await.expect("backlog"), expected[..1].to_vec());
    assert_eq!(backlog(0).await.expect("backlog"), Vec::<Call>::new());
    // An earlier bound cuts the tail: only calls ended strictly before it.
    assert_eq!(
        repos
            .calls
            .calls_awaiting_report(at_ms(-30_000), 100)
            .await
            .expect("backlog"),
        expected[..2].to_vec()
    );

    // Storing the oldest call's analysis takes it out of the backlog.
    let mut done = expected[0].clone();
    done.details.analysis_at = Some(at_ms(5));
    done.details.call_successful = Some(text("success"));
    assert_eq!(
        repos.calls.update(&done).await.expect("update"),
        CasOutcome::Updated
    );
    assert_eq!(backlog(100).await.expect("backlog"), expected[1..].to_vec());
}
