//! Aggregate queries, checked against values the suite computes itself from a seeded,
//! random mix of calls over several clients.

use chrono::Duration;
use outcall_domain::call::{Call, CallOutcome, Sentiment};
use outcall_domain::queries::{CallActivity, CallDashboard, CallStats, Tally};
use outcall_domain::{CallStatus, Client, Timestamp};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use crate::Repos;
use crate::fixtures::{
    agent, at_ms, base_time, call, client, conversation, insert_call, insert_client,
    newest_call_first, sid, text,
};

/// Clients (the last one without calls) and their calls, as stored.
struct World {
    clients: Vec<Client>,
    calls: Vec<Call>,
}

/// Stores four clients and 120 calls spread over the 20 days before `base_time()`, with
/// every status, outcome and sentiment, missing outcomes, sentiments and durations, zero
/// durations and shared start times.
async fn seed_world(repos: &Repos, seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clients = Vec::new();
    for (n, business) in [Some("Alpha Ltd"), None, Some("Gamma & Söhne"), None]
        .into_iter()
        .enumerate()
    {
        let mut c = client(&format!("world{n}"));
        c.meta.full_name = text(&format!("World Owner {n}"));
        c.meta.business_name = business.map(text);
        insert_client(repos, &c).await;
        clients.push(c);
    }

    let mut calls = Vec::new();
    let mut previous_start = base_time();
    for n in 0..120u64 {
        let owner = &clients[rng.random_range(0..3)];
        let start = if n > 0 && rng.random_bool(0.15) {
            previous_start
        } else {
            base_time()
                - Duration::minutes(rng.random_range(0..20 * 24 * 60))
                - Duration::milliseconds(rng.random_range(0..1_000))
        };
        previous_start = start;
        let status = *CallStatus::ALL.choose(&mut rng).expect("non-empty");
        let mut c = call(&owner.id, &format!("w{n:04}"), start, status);
        if rng.random_bool(0.5) {
            c.data.call_sid = Some(sid(1_000 + n));
        }
        if rng.random_bool(0.3) {
            c.data.agent_id = Some(agent("agent_world"));
            c.data.conversation_id = Some(conversation(&format!("conv_w{n}")));
        }
        c.data.duration = rng.random_bool(0.6).then(|| rng.random_range(0..1_800));
        c.details.outcome = rng
            .random_bool(0.7)
            .then(|| *CallOutcome::ALL.choose(&mut rng).expect("non-empty"));
        c.details.sentiment = rng
            .random_bool(0.7)
            .then(|| *Sentiment::ALL.choose(&mut rng).expect("non-empty"));
        calls.push(c);
    }
    let mut shuffled = calls.clone();
    shuffled.shuffle(&mut rng);
    for c in &shuffled {
        insert_call(repos, c).await;
    }
    World { clients, calls }
}

fn expected_stats<'a>(calls: impl Iterator<Item = &'a Call>) -> CallStats {
    let mut stats = CallStats::empty();
    for c in calls {
        stats.total += 1;
        stats.by_status.add(c.data.status(), 1);
        stats
            .by_outcome
            .add(c.details.outcome.unwrap_or(CallOutcome::Unknown), 1);
        stats
            .by_sentiment
            .add(c.details.sentiment.unwrap_or(Sentiment::Unknown), 1);
        if let Some(duration) = c.data.duration {
            stats.total_duration += u64::from(duration);
            stats.calls_with_duration += 1;
        }
    }
    stats
}

fn expected_dashboard(calls: &[Call], since: Timestamp) -> CallDashboard {
    let mut by_status = Tally::statuses();
    let mut by_outcome = Tally::outcomes();
    for c in calls {
        by_status.add(c.data.status(), 1);
        by_outcome.add(c.details.outcome.unwrap_or(CallOutcome::Unknown), 1);
    }
    CallDashboard {
        total: calls.len() as u64,
        recent: calls.iter().filter(|c| c.data.start_time >= since).count() as u64,
        by_status,
        by_outcome,
    }
}

/// Each client's statistics equal those computed from its seeded calls: calls without an
/// outcome or sentiment count as `Unknown`, durations sum only over calls that have one; a
/// client without calls has all-zero statistics with every key present.
pub async fn call_statistics_of_a_client_match_values_computed_from_its_calls(repos: Repos) {
    let world = seed_world(&repos, 0x5747).await;
    for owner in &world.clients {
        let expected = expected_stats(world.calls.iter().filter(|c| c.client_id == owner.id));
        let stats = repos
            .calls
            .stats_for_client(&owner.id)
            .await
            .expect("stats");
        assert_eq!(stats, expected, "{}", owner.id);
        assert_eq!(stats.by_status.iter().count(), CallStatus::ALL.len());
        assert_eq!(stats.by_outcome.iter().count(), CallOutcome::ALL.len());
        assert_eq!(stats.by_sentiment.iter().count(), Sentiment::ALL.len());
    }
    let idle = &world.clients[3];
    assert_eq!(
        repos.calls.stats_for_client(&idle.id).await.expect("stats"),
        CallStats::empty()
    );
}

/// Dashboard counts equal those computed from every seeded call; `recent` counts calls that
/// started at or after `since`, the boundary instant included and the millisecond before not.
pub async fn the_dashboard_matches_values_computed_from_all_calls(repos: Repos) {
    let empty = repos.calls.dashboard(base_time()).await.expect("dashboard");
    assert_eq!(empty, expected_dashboard(&[], base_time()));

    let mut world = seed_world(&repos, 0xDA5B).await;
    let since = base_time() - Duration::days(7);
    let owner = world.clients[0].id.clone();
    for (id, start) in [
        ("edge0", since),
        ("edge1", since - Duration::milliseconds(1)),
    ] {
        let c = call(&owner, id, start, CallStatus::Completed);
        insert_call(&repos, &c).await;
        world.calls.push(c);
    }

    for since in [
        since,
        since + Duration::milliseconds(1),
        at_ms(-30 * 86_400_000),
        base_time() + Duration::days(1),
    ] {
        let got = repos.calls.dashboard(since).await.expect("dashboard");
        assert_eq!(
            got,
            expected_dashboard(&world.calls, since),
            "since {since}"
        );
    }
}

/// Recent activity lists calls started at or after `since` (that very millisecond included),
/// newest first (ties by call id descending), at most `limit`, each with its client's full
/// name and business name.
pub async fn recent_activity_matches_values_computed_from_all_calls(repos: Repos) {
    let mut world = seed_world(&repos, 0xAC71).await;
    let since = base_time() - Duration::days(5);
    let owner = world.clients[2].id.clone();
    for (id, start) in [
        ("edge0", since),
        ("edge1", since - Duration::milliseconds(1)),
    ] {
        let c = call(&owner, id, start, CallStatus::NoAnswer);
        insert_call(&repos, &c).await;
        world.calls.push(c);
    }
    let expected_for = |since: Timestamp, limit: usize| -> Vec<CallActivity> {
        let mut recent: Vec<&Call> = world
            .calls
            .iter()
            .filter(|c| c.data.start_time >= since)
            .collect();
        recent.sort_by(|a, b| newest_call_first(a, b));
        recent
            .into_iter()
            .take(limit)
            .map(|c| {
                let owner = world
                    .clients
                    .iter()
                    .find(|o| o.id == c.client_id)
                    .expect("seeded owner");
                CallActivity {
                    client_id: owner.id.clone(),
                    client_name: owner.meta.full_name.clone(),
                    business_name: owner.meta.business_name.clone(),
                    call_id: c.id.clone(),
                    call_sid: c.data.call_sid.clone(),
                    phone: c.data.phone.clone(),
                    status: c.data.status(),
                    start_time: c.data.start_time,
                    duration: c.data.duration,
                    outcome: c.details.outcome,
                }
            })
            .collect()
    };

    let cases = [
        (since, 10),
        (since, 1_000),
        (since + Duration::milliseconds(1), 1_000),
        (base_time() - Duration::days(30), 7),
        (base_time() - Duration::days(30), 1_000),
        (base_time() + Duration::days(1), 10),
        (base_time() - Duration::days(30), 0),
    ];
    for (since, limit) in cases {
        let got = repos
            .calls
            .recent_activity(since, limit)
            .await
            .expect("activity");
        let expected = expected_for(since, limit as usize);
        assert_eq!(got, expected, "since {since}, limit {limit}");
    }
    // The data must exercise the limit and the boundary.
    let recent = expected_for(since, 1_000);
    assert!(recent.len() > 10);
    assert_eq!(recent.last().map(|a| a.call_id.as_str()), Some("edge0"));
}
