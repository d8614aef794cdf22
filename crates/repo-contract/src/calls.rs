//! The `CallRepository` contract: records, lookups, compare-and-set and listing.

use outcall_domain::call::{Call, CallDetails, CallOutcome, Sentiment, limits};
use outcall_domain::ports::{CasOutcome, RepositoryError, UniqueField};
use outcall_domain::queries::CallListQuery;
use outcall_domain::{CallStatus, ClientId, DynamicValue, DynamicVariables};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Repos;
use crate::fixtures::{
    agent, at_ms, call, call_id, client, client_id, conversation, insert_call, insert_client,
    newest_call_first, phone, sid, text,
};

fn dynamic(entries: &[(&str, DynamicValue)]) -> DynamicVariables {
    DynamicVariables::new(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
        .expect("valid dynamic variables")
}

/// Dynamic variables of all four kinds: unicode and escape-worthy text, an empty text, a
/// text of the maximum length, integers beyond `i32` and a float that looks whole.
fn every_kind_of_dynamic_variable() -> DynamicVariables {
    dynamic(&[
        (
            "first_name",
            DynamicValue::Text("Zoë «O'Brien» \"Z\" 👋\n\\ 100%".into()),
        ),
        ("empty", DynamicValue::Text(String::new())),
        (
            "longest",
            DynamicValue::Text("ü".repeat(DynamicVariables::MAX_VALUE_LEN)),
        ),
        ("order_count", DynamicValue::Integer(3_000_000_000)),
        ("debt", DynamicValue::Integer(-4_000_000_000)),
        ("balance", DynamicValue::Number(1234.5)),
        ("whole", DynamicValue::Number(2.0)),
        ("vip", DynamicValue::Bool(true)),
        ("opted_out", DynamicValue::Bool(false)),
    ])
}

/// A call with every optional field set (multi-line, non-ASCII and long texts included).
fn full_call(owner: &ClientId, id: &str, sid_seed: u64) -> Call {
    let mut c = call(owner, id, at_ms(-3_600_000), CallStatus::Queued);
    c.apply_status(CallStatus::Completed, at_ms(-3_000_000));
    let data = &mut c.data;
    data.call_sid = Some(sid(sid_seed));
    data.request_id = Some(text("req-42/ü"));
    data.phone = phone("+4915112345678");
    data.from = Some(phone("+18005550100"));
    data.agent_id = Some(agent("agent_call.1"));
    data.end_time = Some(at_ms(-3_000_001));
    data.duration = Some(599);
    data.recording_url = Some(text(
        "https://api.twilio.example/Recordings/RE1.mp3?x=1&y='2'",
    ));
    data.error_code = Some(text("31005"));
    data.error_message = Some(text("Connection error: \"gateway\" 100% down \\ retry"));
    data.conversation_id = Some(conversation(&format!("conv_{id}")));
    data.answered_by = Some(text("human"));
    data.sip_response_code = Some(487);
    // Exactly the longest first message, in multi-byte characters.
    let opening = "Hallo {{first_name}}! 👋 Ça va?\n";
    let padding = limits::FIRST_MESSAGE - opening.chars().count();
    data.first_message = Some(text(&format!("{opening}{}", "é".repeat(padding))));
    data.dynamic_variables = every_kind_of_dynamic_variable();
    // Exactly the longest end reason, in multi-byte characters.
    let reason = "agent_hangup: « au revoir » 👋\n";
    let padding = limits::END_REASON - reason.chars().count();
    data.end_reason = Some(text(&format!("{reason}{}", "ß".repeat(padding))));
    c.details = CallDetails {
        outcome: Some(CallOutcome::NotInterested),
        summary: Some(text("Caller said: « non, merci » — maybe later.")),
        transcript: Some(text(
            &"agent: Hello 👋\nuser: Hi, who's this?\n".repeat(400),
        )),
        sentiment: Some(Sentiment::Negative),
        next_action: Some(text("Send brochure")),
        next_action_date: Some(at_ms(7 * 86_400_000 + 999)),
        agent_notes: Some(text("Prefers e-mail; speaks _Spanish_ %.")),
        call_successful: Some(text(&"ü".repeat(limits::CALL_SUCCESSFUL))),
        // The longest duration the domain accepts, beyond 16 bits.
        agent_duration_secs: Some(limits::MAX_DURATION_SECS),
        analysis_at: Some(at_ms(-2_999_000 + 457)),
    };
    c.created_at = at_ms(-3_600_000 + 17);
    c.updated_at = at_ms(-2_999_999);
    c
}

fn all_calls() -> CallListQuery {
    CallListQuery {
        status: None,
        limit: CallListQuery::MAX_LIMIT,
        offset: 0,
    }
}

/// Every field of a call round-trips exactly through every lookup, with all optional fields
/// set and with none set; the stored version is the one given; unknown keys give `None`.
pub async fn a_call_reads_back_exactly_with_every_optional_field_set_or_unset(repos: Repos) {
    let owner = client("owner1");
    insert_client(&repos, &owner).await;
    let mut full = full_call(&owner.id, "full1", 11);
    full.version = 3;
    let bare = call(&owner.id, "bare1", at_ms(5), CallStatus::Initiated);
    assert_eq!(full.data.dynamic_variables.len(), 9);
    assert_eq!(
        full.data
            .first_message
            .as_ref()
            .map(|m| m.as_str().chars().count()),
        Some(limits::FIRST_MESSAGE)
    );
    assert_eq!(
        (
            bare.data.sip_response_code,
            &bare.data.first_message,
            bare.data.dynamic_variables.is_empty()
        ),
        (None, &None, true)
    );
    assert_eq!(
        full.data
            .end_reason
            .as_ref()
            .map(|r| r.as_str().chars().count()),
        Some(limits::END_REASON)
    );
    assert_eq!(
        (
            &bare.data.end_reason,
            &bare.details.call_successful,
            bare.details.agent_duration_secs,
            bare.details.analysis_at
        ),
        (&None, &None, None, None)
    );
    insert_call(&repos, &full).await;
    insert_call(&repos, &bare).await;

    assert_eq!(
        repos.calls.find(&owner.id, &full.id).await.expect("find"),
        Some(full.clone())
    );
    assert_eq!(
        repos.calls.find_by_id(&full.id).await.expect("find"),
        Some(full.clone())
    );
    assert_eq!(
        repos.calls.find_by_sid(&sid(11)).await.expect("find"),
        Some(full.clone())
    );
    assert_eq!(
        repos
            .calls
            .find_by_conversation(&conversation("conv_full1"))
            .await
            .expect("find"),
        Some(full.clone())
    );
    assert_eq!(
        repos.calls.find(&owner.id, &bare.id).await.expect("find"),
        Some(bare.clone())
    );
    assert_eq!(
        repos.calls.find_by_id(&bare.id).await.expect("find"),
        Some(bare.clone())
    );

    assert_eq!(
        repos
            .calls
            .find_by_id(&call_id("nope"))
            .await
            .expect("find"),
        None
    );
    assert_eq!(repos.calls.find_by_sid(&sid(12)).await.expect("find"), None);
    assert_eq!(
        repos
            .calls
            .find_by_conversation(&conversation("conv_nope"))
            .await
            .expect("find"),
        None
    );
    let page = repos
        .calls
        .list_for_client(&owner.id, &all_calls())
        .await
        .expect("list");
    assert_eq!(page.calls, vec![bare, full]);
}

/// A client can never read another client's call through the tenant-scoped lookups.
pub async fn a_call_is_invisible_to_another_client(repos: Repos) {
    let owner = client("tenant1");
    let other = client("tenant2");
    insert_client(&repos, &owner).await;
    insert_client(&repos, &other).await;
    let theirs = call(&owner.id, "secret1", at_ms(0), CallStatus::Completed);
    insert_call(&repos, &theirs).await;

    assert_eq!(
        repos.calls.find(&other.id, &theirs.id).await.expect("find"),
        None
    );
    assert_eq!(
        repos
            .calls
            .find(&client_id("nobody"), &theirs.id)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        repos.calls.find(&owner.id, &theirs.id).await.expect("find"),
        Some(theirs.clone())
    );
    let page = repos
        .calls
        .list_for_client(&other.id, &all_calls())
        .await
        .expect("list");
    assert_eq!((page.total, page.filtered, page.calls.len()), (0, 0, 0));
    let stats = repos
        .calls
        .stats_for_client(&other.id)
        .await
        .expect("stats");
    assert_eq!(stats.total, 0);
}

/// A taken SID is `Duplicate(CallSid)`, a taken id `Duplicate(CallId)`, and neither stores
/// anything; many calls may lack a SID; a call of a nonexistent client is `Unexpected`.
pub async fn inserting_a_call_with_a_taken_id_or_sid_is_a_duplicate(repos: Repos) {
    let owner = client("dupcalls");
    insert_client(&repos, &owner).await;
    let mut first = call(&owner.id, "first", at_ms(0), CallStatus::Ringing);
    first.data.call_sid = Some(sid(7));
    insert_call(&repos, &first).await;

    let mut same_sid = call(&owner.id, "second", at_ms(1), CallStatus::Queued);
    same_sid.data.call_sid = Some(sid(7));
    let err = repos
        .calls
        .insert(&same_sid)
        .await
        .expect_err("duplicate sid");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::CallSid)),
        "{err:?}"
    );
    assert_eq!(
        repos.calls.find_by_id(&same_sid.id).await.expect("find"),
        None
    );

    let same_id = call(&owner.id, "first", at_ms(2), CallStatus::Queued);
    let err = repos
        .calls
        .insert(&same_id)
        .await
        .expect_err("duplicate id");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::CallId)),
        "{err:?}"
    );
    assert_eq!(
        repos.calls.find_by_id(&first.id).await.expect("find"),
        Some(first)
    );

    for n in 0..3 {
        insert_call(
            &repos,
            &call(
                &owner.id,
                &format!("nosid{n}"),
                at_ms(n),
                CallStatus::Queued,
            ),
        )
        .await;
    }

    let orphan = call(&client_id("ghost"), "orphan", at_ms(0), CallStatus::Queued);
    let err = repos
        .calls
        .insert(&orphan)
        .await
        .expect_err("unknown client");
    assert!(matches!(err, RepositoryError::Unexpected(_)), "{err:?}");
    assert_eq!(
        repos.calls.find_by_id(&orphan.id).await.expect("find"),
        None
    );
}

/// `update` writes every mutable field (setting and clearing optional ones, the SIP response
/// code, first message, dynamic variables, end reason and analysis fields included) when the
/// stored version matches, incrementing it; a stale version is `Conflict` and writes nothing;
/// an unknown call is `Missing`; taking another call's SID is `Duplicate(CallSid)`.
pub async fn updating_a_call_is_a_compare_and_set_on_its_version(repos: Repos) {
    let owner = client("casowner");
    insert_client(&repos, &owner).await;
    let bare = call(&owner.id, "cas1", at_ms(0), CallStatus::Queued);
    insert_call(&repos, &bare).await;
    let mut neighbour = call(&owner.id, "cas2", at_ms(1), CallStatus::Queued);
    neighbour.data.call_sid = Some(sid(99));
    insert_call(&repos, &neighbour).await;

    // Everything set: take the fully populated shape onto the stored record.
    let mut filled = full_call(&owner.id, "cas1", 42);
    filled.created_at = bare.created_at;
    filled.version = bare.version;
    assert_eq!(
        repos.calls.update(&filled).await.expect("update"),
        CasOutcome::Updated
    );
    filled.version += 1;
    assert_eq!(
        repos.calls.find_by_id(&filled.id).await.expect("find"),
        Some(filled.clone())
    );
    assert_eq!(
        repos.calls.find_by_sid(&sid(42)).await.expect("find"),
        Some(filled.clone())
    );

    // Only the request fields change: each is written.
    let mut retold = filled.clone();
    retold.data.sip_response_code = Some(603);
    retold.data.first_message = Some(text("Second try: ¿sí?"));
    retold.data.dynamic_variables = dynamic(&[
        ("first_name", DynamicValue::Text("Łukasz".into())),
        ("order_count", DynamicValue::Integer(3_000_000_001)),
    ]);
    assert_eq!(
        repos.calls.update(&retold).await.expect("update"),
        CasOutcome::Updated
    );
    retold.version += 1;
    assert_eq!(
        repos.calls.find_by_id(&retold.id).await.expect("find"),
        Some(retold.clone())
    );

    // Only the end reason and the analysis fields change: each is written.
    let mut reanalysed = retold.clone();
    reanalysed.data.end_reason = Some(text("stream dropped"));
    reanalysed.details.call_successful = Some(text("failure"));
    reanalysed.details.agent_duration_secs = Some(0);
    reanalysed.details.analysis_at = Some(at_ms(-1_000_001));
    assert_eq!(
        repos.calls.update(&reanalysed).await.expect("update"),
        CasOutcome::Updated
    );
    reanalysed.version += 1;
    assert_eq!(
        repos.calls.find_by_id(&reanalysed.id).await.expect("find"),
        Some(reanalysed.clone())
    );
    let filled = reanalysed;

    // A writer still holding version 0 loses and changes nothing.
    let mut stale = bare.clone();
    stale.apply_status(CallStatus::Ringing, at_ms(10));
    assert_eq!(
        repos.calls.update(&stale).await.expect("update"),
        CasOutcome::Conflict
    );
    assert_eq!(
        repos.calls.find_by_id(&filled.id).await.expect("find"),
        Some(filled.clone())
    );

    // Everything optional cleared again (the status stays terminal).
    let mut cleared = call(&owner.id, "cas1", at_ms(20), CallStatus::Queued);
    cleared.apply_status(CallStatus::Failed, at_ms(30));
    cleared.data.end_time = None;
    cleared.created_at = bare.created_at;
    cleared.updated_at = at_ms(31);
    cleared.version = filled.version;
    assert_eq!(
        repos.calls.update(&cleared).await.expect("update"),
        CasOutcome::Updated
    );
    cleared.version += 1;
    assert_eq!(cleared.version, 4);
    assert_eq!(
        (
            &cleared.data.end_reason,
            &cleared.details.call_successful,
            cleared.details.agent_duration_secs,
            cleared.details.analysis_at
        ),
        (&None, &None, None, None)
    );
    assert_eq!(
        repos.calls.find_by_id(&cleared.id).await.expect("find"),
        Some(cleared.clone())
    );
    assert_eq!(repos.calls.find_by_sid(&sid(42)).await.expect("find"), None);

    let mut thief = cleared.clone();
    thief.data.call_sid = Some(sid(99));
    let err = repos.calls.update(&thief).await.expect_err("sid taken");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::CallSid)),
        "{err:?}"
    );
    assert_eq!(
        repos.calls.find_by_id(&cleared.id).await.expect("find"),
        Some(cleared.clone())
    );
    assert_eq!(
        repos.calls.find_by_id(&neighbour.id).await.expect("find"),
        Some(neighbour)
    );

    let ghost = call(&owner.id, "ghost", at_ms(0), CallStatus::Queued);
    assert_eq!(
        repos.calls.update(&ghost).await.expect("update"),
        CasOutcome::Missing
    );
    assert_eq!(repos.calls.find_by_id(&ghost.id).await.expect("find"), None);
}

/// `update` is scoped to the call's owner: a call presented under another client's id is
/// `Missing` (at any version) and nothing is written.
pub async fn updating_a_call_under_another_clients_id_is_missing_and_writes_nothing(repos: Repos) {
    let owner = client("realowner");
    let intruder = client("intruder");
    insert_client(&repos, &owner).await;
    insert_client(&repos, &intruder).await;
    let stored = call(&owner.id, "owned1", at_ms(0), CallStatus::Ringing);
    insert_call(&repos, &stored).await;

    let mut hijack = full_call(&intruder.id, "owned1", 5);
    hijack.created_at = stored.created_at;
    for version in [stored.version, stored.version + 1] {
        hijack.version = version;
        assert_eq!(
            repos.calls.update(&hijack).await.expect("update"),
            CasOutcome::Missing,
            "version {version}"
        );
    }
    assert_eq!(
        repos.calls.find_by_id(&stored.id).await.expect("find"),
        Some(stored.clone())
    );
    assert_eq!(repos.calls.find_by_sid(&sid(5)).await.expect("find"), None);

    // The owner's own update of the same call still succeeds.
    let mut mine = stored.clone();
    mine.apply_status(CallStatus::InProgress, at_ms(1));
    assert_eq!(
        repos.calls.update(&mine).await.expect("update"),
        CasOutcome::Updated
    );
}

/// A stored `Number(0.1)` and `Integer(9007199254740993)` (2^53 + 1, not representable as a
/// double) read back exactly, and a whole-looking float or a small integer keep their kind.
pub async fn dynamic_variables_keep_exact_numbers_and_their_kind(repos: Repos) {
    let owner = client("numbers");
    insert_client(&repos, &owner).await;
    let mut c = call(&owner.id, "num1", at_ms(0), CallStatus::Queued);
    c.data.dynamic_variables = dynamic(&[
        ("tenth", DynamicValue::Number(0.1)),
        ("big", DynamicValue::Integer(9_007_199_254_740_993)),
        ("one_float", DynamicValue::Number(1.0)),
        ("one_int", DynamicValue::Integer(1)),
        ("third", DynamicValue::Number(1.0 / 3.0)),
        ("min", DynamicValue::Integer(i64::MIN)),
        ("max", DynamicValue::Integer(i64::MAX)),
    ]);
    insert_call(&repos, &c).await;

    let back = repos
        .calls
        .find(&owner.id, &c.id)
        .await
        .expect("find")
        .expect("stored");
    let vars = &back.data.dynamic_variables;
    match vars.get("tenth") {
        Some(DynamicValue::Number(n)) => assert_eq!(n.to_bits(), 0.1f64.to_bits(), "{n:e}"),
        other => panic!("tenth came back as {other:?}"),
    }
    assert_eq!(
        vars.get("big"),
        Some(&DynamicValue::Integer(9_007_199_254_740_993))
    );
    assert_eq!(vars.get("one_float"), Some(&DynamicValue::Number(1.0)));
    assert_eq!(vars.get("one_int"), Some(&DynamicValue::Integer(1)));
    assert_eq!(back, c);
}

/// A SIP response code outside 100..=699 is refused (`Unexpected`) on insert and on update,
/// storing nothing; the bounds themselves are stored.
pub async fn a_sip_response_code_outside_100_to_699_is_refused_and_nothing_is_stored(repos: Repos) {
    let owner = client("sipper");
    insert_client(&repos, &owner).await;
    for code in [0, 99, 700, u16::MAX] {
        let mut bad = call(&owner.id, &format!("sip{code}"), at_ms(0), CallStatus::Busy);
        bad.data.sip_response_code = Some(code);
        let err = repos.calls.insert(&bad).await.expect_err("out of range");
        assert!(
            matches!(err, RepositoryError::Unexpected(_)),
            "{code}: {err:?}"
        );
        assert_eq!(repos.calls.find_by_id(&bad.id).await.expect("find"), None);
    }

    let mut low = call(&owner.id, "siplow", at_ms(0), CallStatus::Busy);
    low.data.sip_response_code = Some(100);
    insert_call(&repos, &low).await;
    let mut high = low.clone();
    high.data.sip_response_code = Some(699);
    assert_eq!(
        repos.calls.update(&high).await.expect("update"),
        CasOutcome::Updated
    );
    high.version += 1;
    let mut bad = high.clone();
    bad.data.sip_response_code = Some(700);
    let err = repos.calls.update(&bad).await.expect_err("out of range");
    assert!(matches!(err, RepositoryError::Unexpected(_)), "{err:?}");
    assert_eq!(
        repos.calls.find_by_id(&high.id).await.expect("find"),
        Some(high)
    );
}

/// Seeds `owner` with calls whose start times include ties, in shuffled insertion order.
async fn seed_history(repos: &Repos, owner: &ClientId, prefix: &str, count: i64) -> Vec<Call> {
    let mut calls: Vec<Call> = (0..count)
        .map(|n| {
            let status = CallStatus::ALL[(n % 9) as usize];
            // Pairs of calls share a start time, so the id tie-break matters.
            call(
                owner,
                &format!("{prefix}{n:03}"),
                at_ms((n / 2) * 1_000),
                status,
            )
        })
        .collect();
    let mut shuffled = calls.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(count as u64));
    for c in &shuffled {
        insert_call(repos, c).await;
    }
    calls.sort_by(newest_call_first);
    calls
}

/// A client's calls come newest `start_time` first, ties by `call_id` descending; pages
/// split that order exactly, `total` and `filtered` stay the client's count on every page,
/// and other clients' calls never appear.
pub async fn listing_a_clients_calls_pages_newest_first_ties_by_id_descending_with_totals(
    repos: Repos,
) {
    let owner = client("lister");
    let other = client("other");
    insert_client(&repos, &owner).await;
    insert_client(&repos, &other).await;
    let expected = seed_history(&repos, &owner.id, "k", 9).await;
    seed_history(&repos, &other.id, "o", 5).await;

    let page = |limit, offset| CallListQuery {
        status: None,
        limit,
        offset,
    };
    let mut paged = Vec::new();
    for (offset, size) in [(0u64, 4usize), (4, 4), (8, 1)] {
        let got = repos
            .calls
            .list_for_client(&owner.id, &page(4, offset))
            .await
            .expect("list");
        assert_eq!((got.total, got.filtered), (9, 9), "offset {offset}");
        assert_eq!(got.calls.len(), size, "offset {offset}");
        paged.extend(got.calls);
    }
    assert_eq!(paged, expected);

    for offset in [9, 500] {
        let got = repos
            .calls
            .list_for_client(&owner.id, &page(4, offset))
            .await
            .expect("list");
        assert_eq!(
            (got.total, got.filtered, got.calls.len()),
            (9, 9, 0),
            "offset {offset}"
        );
    }
    let first = repos
        .calls
        .list_for_client(&owner.id, &page(1, 0))
        .await
        .expect("list");
    assert_eq!(first.calls, vec![expected[0].clone()]);
    let last = repos
        .calls
        .list_for_client(&owner.id, &page(1, 8))
        .await
        .expect("list");
    assert_eq!(last.calls, vec![expected[8].clone()]);
}

/// A status filter keeps only that status in the same order; `filtered` counts the matches
/// while `total` still counts all of the client's calls.
pub async fn listing_a_clients_calls_filters_by_status_counting_total_and_filtered(repos: Repos) {
    let owner = client("filterer");
    let other = client("noise");
    insert_client(&repos, &owner).await;
    insert_client(&repos, &other).await;
    let expected = seed_history(&repos, &owner.id, "f", 30).await;
    seed_history(&repos, &other.id, "n", 12).await;

    for status in CallStatus::ALL {
        let matching: Vec<Call> = expected
            .iter()
            .filter(|c| c.data.status() == status)
            .cloned()
            .collect();
        let got = repos
            .calls
            .list_for_client(
                &owner.id,
                &CallListQuery {
                    status: Some(status),
                    limit: 100,
                    offset: 0,
                },
            )
            .await
            .expect("list");
        assert_eq!(got.total, 30, "{status}");
        assert_eq!(got.filtered, matching.len() as u64, "{status}");
        assert_eq!(got.calls, matching, "{status}");

        // The second item alone, through the filter.
        let second = repos
            .calls
            .list_for_client(
                &owner.id,
                &CallListQuery {
                    status: Some(status),
                    limit: 1,
                    offset: 1,
                },
            )
            .await
            .expect("list");
        assert_eq!(second.calls, matching[1..2].to_vec(), "{status}");
        assert_eq!(second.filtered, matching.len() as u64, "{status}");
    }
}
