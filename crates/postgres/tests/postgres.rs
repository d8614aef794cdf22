//! PostgreSQL-specific behaviour the shared contract suite cannot see: the trigger-kept
//! tallies, restart survival, corrupt rows, the schema's own guards and migrating existing
//! databases.

// Test code, helpers included: anything unexpected must fail the test loudly.
#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;

use outcall_domain::ports::{
    CallRepository, CasOutcome, ClientRepository, RepositoryError, UniqueField,
};
use outcall_domain::queries::CallListQuery;
use outcall_domain::{
    BoundedText, CallOutcome, CallStatus, ClientId, ClientPatch, ConversationId, DynamicValue,
    DynamicVariables, Email, MetaPatch, Sentiment,
};
use outcall_postgres::PgStore;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use sqlx::Row as _;
use support::{at, call, client, fresh_database_url, fresh_store, hash};

/// Tallies recomputed from the calls with a plain GROUP BY, written independently of the
/// migration's trigger functions, in the table's column and row order.
const EXPECTED_TALLIES: &str = "
    SELECT client_id, COUNT(*), COALESCE(SUM(duration), 0)::BIGINT, COUNT(duration),
        COUNT(*) FILTER (WHERE status = 'queued'),
        COUNT(*) FILTER (WHERE status = 'initiated'),
        COUNT(*) FILTER (WHERE status = 'ringing'),
        COUNT(*) FILTER (WHERE status = 'in-progress'),
        COUNT(*) FILTER (WHERE status = 'completed'),
        COUNT(*) FILTER (WHERE status = 'busy'),
        COUNT(*) FILTER (WHERE status = 'failed'),
        COUNT(*) FILTER (WHERE status = 'no-answer'),
        COUNT(*) FILTER (WHERE status = 'canceled'),
        COUNT(*) FILTER (WHERE outcome = 'interested'),
        COUNT(*) FILTER (WHERE outcome = 'not-interested'),
        COUNT(*) FILTER (WHERE outcome = 'callback'),
        COUNT(*) FILTER (WHERE outcome = 'unavailable'),
        COUNT(*) FILTER (WHERE outcome = 'unknown' OR outcome IS NULL),
        COUNT(*) FILTER (WHERE sentiment = 'positive'),
        COUNT(*) FILTER (WHERE sentiment = 'neutral'),
        COUNT(*) FILTER (WHERE sentiment = 'negative'),
        COUNT(*) FILTER (WHERE sentiment = 'unknown' OR sentiment IS NULL)
    FROM calls GROUP BY client_id ORDER BY client_id";

const STORED_TALLIES: &str = "SELECT * FROM call_tallies ORDER BY client_id";

/// Columns after `client_id` in `call_tallies`.
const TALLY_COUNTS: usize = 21;

type TallyRow = (String, Vec<i64>);

async fn tallies(store: &PgStore, sql: &'static str) -> Vec<TallyRow> {
    sqlx::query(sql)
        .fetch_all(store.pool())
        .await
        .expect("reading tallies")
        .iter()
        .map(|row| {
            assert_eq!(row.len(), TALLY_COUNTS + 1, "call_tallies columns");
            let counts = (1..=TALLY_COUNTS).map(|i| row.get::<i64, _>(i)).collect();
            (row.get(0), counts)
        })
        .collect()
}

async fn assert_tallies_exact(store: &PgStore, when: &str) {
    let expected = tallies(store, EXPECTED_TALLIES).await;
    let stored = tallies(store, STORED_TALLIES).await;
    assert_eq!(
        stored, expected,
        "call_tallies drifted from the calls {when}"
    );
}

/// Two of this test's own multi-row statements may lock overlapping calls in different
/// orders; PostgreSQL then aborts one of them. That is the test's doing, not the adapter's.
fn tolerate_deadlock(err: sqlx::Error) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01") => {
            Ok(sqlx::postgres::PgQueryResult::default())
        }
        _ => Err(err),
    }
}

/// One worker's share of random writes through the ports and, for multi-row statements,
/// straight SQL.
async fn random_writes(store: PgStore, clients: Vec<String>, worker: u64, ops: usize) {
    let mut rng = StdRng::seed_from_u64(0x7a11 + worker);
    let mut next_call = 0;
    for _ in 0..ops {
        let client_id = clients.choose(&mut rng).expect("clients").clone();
        match rng.random_range(0..100) {
            // Insert a call with a random mix of tallied fields.
            0..=44 => {
                next_call += 1;
                let status = *CallStatus::ALL.choose(&mut rng).expect("statuses");
                let mut c = call(&client_id, &format!("w{worker}-{next_call}"), status, 0);
                c.data.start_time = at(rng.random_range(0..100_000));
                c.data.duration = rng.random_bool(0.6).then(|| rng.random_range(0..4000));
                c.details.outcome = rng
                    .random_bool(0.7)
                    .then(|| *CallOutcome::ALL.choose(&mut rng).expect("outcomes"));
                c.details.sentiment = rng
                    .random_bool(0.7)
                    .then(|| *Sentiment::ALL.choose(&mut rng).expect("sentiments"));
                match CallRepository::insert(&store, &c).await {
                    // Another worker may have deleted the client meanwhile.
                    Ok(()) | Err(RepositoryError::Unexpected(_)) => {}
                    Err(other) => panic!("unexpected insert error: {other:?}"),
                }
            }
            // Compare-and-set update of one of this client's calls.
            45..=79 => {
                let page = store
                    .list_for_client(
                        &ClientId::parse(&client_id).expect("id"),
                        &CallListQuery {
                            status: None,
                            limit: 50,
                            offset: 0,
                        },
                    )
                    .await
                    .expect("listing");
                let Some(mut c) = page.calls.choose(&mut rng).cloned() else {
                    continue;
                };
                let next = *CallStatus::ALL.choose(&mut rng).expect("statuses");
                c.apply_status(next, at(200_000));
                if rng.random_bool(0.5) {
                    c.data.duration = rng.random_bool(0.8).then(|| rng.random_range(0..4000));
                }
                if rng.random_bool(0.5) {
                    c.details.outcome = CallOutcome::ALL.choose(&mut rng).copied();
                }
                if rng.random_bool(0.3) {
                    c.details.sentiment = None;
                }
                // Any outcome is fine here: others race on the same calls and clients.
                CallRepository::update(&store, &c).await.expect("updating");
            }
            // Multi-row statements: the transition tables then hold many rows.
            80..=87 => {
                sqlx::query(
                    "UPDATE calls SET outcome = NULL, duration = duration + 1, \
                     version = version + 1 WHERE client_id = $1 AND status = $2",
                )
                .bind(&client_id)
                .bind(CallStatus::ALL.choose(&mut rng).expect("statuses").as_str())
                .execute(store.pool())
                .await
                .or_else(tolerate_deadlock)
                .expect("bulk update");
            }
            88..=93 => {
                sqlx::query("DELETE FROM calls WHERE client_id = $1 AND duration > $2")
                    .bind(&client_id)
                    .bind(rng.random_range(2000..4000))
                    .execute(store.pool())
                    .await
                    .or_else(tolerate_deadlock)
                    .expect("bulk delete");
            }
            // Delete the client (its calls cascade) and bring it back empty.
            _ => {
                let id = ClientId::parse(&client_id).expect("id");
                ClientRepository::delete(&store, &id)
                    .await
                    .expect("deleting");
                let fresh = client(&client_id, &format!("{client_id}@example.com"));
                match ClientRepository::insert(&store, &fresh, &hash()).await {
                    Ok(()) | Err(RepositoryError::Duplicate(UniqueField::ClientId)) => {}
                    Err(other) => panic!("unexpected re-insert error: {other:?}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_kept_tallies_equal_a_direct_group_by_after_concurrent_random_writes() {
    let store = fresh_store().await;
    let ids: Vec<String> = (0..3).map(|i| format!("client-{i}")).collect();
    for id in &ids {
        ClientRepository::insert(&store, &client(id, &format!("{id}@example.com")), &hash())
            .await
            .expect("inserting client");
    }
    // Warm up with one worker so that there is something to update and delete.
    random_writes(store.clone(), ids.clone(), 99, 60).await;
    assert_tallies_exact(&store, "after sequential writes").await;

    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(random_writes(store.clone(), ids.clone(), w, 120)))
        .collect();
    for worker in workers {
        worker.await.expect("a worker failed (deadlock or error)");
    }
    assert_tallies_exact(&store, "after concurrent writes").await;
    let stored = tallies(&store, STORED_TALLIES).await;
    assert!(
        stored.iter().all(|(_, counts)| counts[0] > 0),
        "tally rows at zero calls are removed"
    );

    // The operators' repair function computes the same tallies from scratch.
    let kept = tallies(&store, STORED_TALLIES).await;
    sqlx::query("SELECT call_tallies_rebuild()")
        .execute(store.pool())
        .await
        .expect("rebuilding");
    assert_eq!(tallies(&store, STORED_TALLIES).await, kept);

    // Statistics served from the tallies agree with the rows they summarise.
    for id in &ids {
        let client_id = ClientId::parse(id).expect("id");
        let stats = store.stats_for_client(&client_id).await.expect("stats");
        let row = sqlx::query(
            "SELECT COUNT(*) AS calls, COALESCE(SUM(duration), 0)::BIGINT AS total, \
             COUNT(duration) AS with_duration, \
             COUNT(*) FILTER (WHERE outcome IS NULL OR outcome = 'unknown') AS unknown \
             FROM calls WHERE client_id = $1",
        )
        .bind(id)
        .fetch_one(store.pool())
        .await
        .expect("direct counts");
        assert_eq!(stats.total, row.get::<i64, _>("calls") as u64, "{id}");
        assert_eq!(
            stats.total_duration,
            row.get::<i64, _>("total") as u64,
            "{id}"
        );
        assert_eq!(
            stats.calls_with_duration,
            row.get::<i64, _>("with_duration") as u64,
            "{id}"
        );
        assert_eq!(
            stats.by_outcome.get(CallOutcome::Unknown),
            row.get::<i64, _>("unknown") as u64,
            "{id}"
        );
    }

    // Deleting every client leaves no tallies behind.
    for id in &ids {
        ClientRepository::delete(&store, &ClientId::parse(id).expect("id"))
            .await
            .expect("deleting");
    }
    assert_eq!(tallies(&store, STORED_TALLIES).await, vec![]);
}

#[tokio::test]
async fn data_written_through_one_pool_is_read_back_after_reconnecting() {
    let url = fresh_database_url().await;
    let first = PgStore::connect(&url, 2).await.expect("connecting");
    first.migrate().await.expect("migrating");
    let written = client("survivor", "Survivor@Example.com");
    ClientRepository::insert(&first, &written, &hash())
        .await
        .expect("inserting client");
    let mut written_call = call("survivor", "call-1", CallStatus::Completed, 10);
    written_call.data.duration = Some(42);
    written_call.details.summary = Some(BoundedText::parse("kept", 100).expect("text"));
    CallRepository::insert(&first, &written_call)
        .await
        .expect("inserting call");
    first.pool().close().await;

    let second = PgStore::connect(&url, 2).await.expect("reconnecting");
    second.migrate().await.expect("migrating again is a no-op");
    let id = ClientId::parse("survivor").expect("id");
    let (read, secret) = second
        .find_with_secret(&id)
        .await
        .expect("reading")
        .expect("the client survived");
    assert_eq!(read, written);
    assert_eq!(secret, hash());
    let read_call = second
        .find_by_id(&written_call.id)
        .await
        .expect("reading call")
        .expect("the call survived");
    assert_eq!(read_call, written_call);
    assert_eq!(
        second
            .stats_for_client(&id)
            .await
            .expect("stats")
            .total_duration,
        42
    );
}

#[tokio::test]
async fn a_corrupt_row_is_an_unexpected_error_naming_the_column_not_a_panic() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    CallRepository::insert(&store, &call("c1", "k1", CallStatus::Queued, 0))
        .await
        .expect("inserting call");
    sqlx::query("UPDATE clients SET phone = 'not a phone'")
        .execute(store.pool())
        .await
        .expect("corrupting");
    sqlx::query("UPDATE calls SET call_sid = 'CA-short'")
        .execute(store.pool())
        .await
        .expect("corrupting");

    let id = ClientId::parse("c1").expect("id");
    match ClientRepository::find(&store, &id).await {
        Err(RepositoryError::Unexpected(e)) => {
            let chain = format!("{e:#}");
            assert!(chain.contains("column phone"), "{chain}");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
    let call_id = outcall_domain::CallId::parse("k1").expect("id");
    match store.find_by_id(&call_id).await {
        Err(RepositoryError::Unexpected(e)) => {
            let chain = format!("{e:#}");
            assert!(chain.contains("column call_sid"), "{chain}");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn an_email_differing_only_by_case_is_a_duplicate_on_insert_and_on_update() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("a", "Jane.Doe@Example.com"), &hash())
        .await
        .expect("inserting");
    let clash =
        ClientRepository::insert(&store, &client("b", "jane.doe@EXAMPLE.COM"), &hash()).await;
    assert!(
        matches!(clash, Err(RepositoryError::Duplicate(UniqueField::Email))),
        "{clash:?}"
    );

    ClientRepository::insert(&store, &client("b", "b@example.com"), &hash())
        .await
        .expect("inserting");
    let patch = ClientPatch {
        meta: MetaPatch {
            email: Some(Email::parse("JANE.DOE@example.com").expect("email")),
            ..MetaPatch::default()
        },
        ..ClientPatch::default()
    };
    let b = ClientId::parse("b").expect("id");
    let clash = ClientRepository::update(&store, &b, &patch, at(5)).await;
    assert!(
        matches!(clash, Err(RepositoryError::Duplicate(UniqueField::Email))),
        "{clash:?}"
    );
    let unchanged = ClientRepository::find(&store, &b)
        .await
        .expect("find")
        .expect("b");
    assert_eq!(unchanged.meta.email.as_str(), "b@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_writers_holding_the_same_version_exactly_one_wins() {
    let store = Arc::new(fresh_store().await);
    ClientRepository::insert(store.as_ref(), &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let original = call("c1", "k1", CallStatus::Ringing, 0);
    CallRepository::insert(store.as_ref(), &original)
        .await
        .expect("inserting call");

    let writers: Vec<_> = [CallStatus::Completed, CallStatus::Busy]
        .into_iter()
        .map(|status| {
            let store = store.clone();
            let mut mine = original.clone();
            tokio::spawn(async move {
                mine.apply_status(status, at(60));
                CallRepository::update(store.as_ref(), &mine)
                    .await
                    .expect("updating")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.push(writer.await.expect("writer"));
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, vec![CasOutcome::Conflict, CasOutcome::Updated]);

    let stored = store
        .find_by_id(&original.id)
        .await
        .expect("find")
        .expect("k1");
    assert_eq!(stored.version, 1);
    assert!(stored.data.status().is_terminal());
    let mut gone = stored.clone();
    gone.id = outcall_domain::CallId::parse("never-stored").expect("id");
    assert_eq!(
        CallRepository::update(store.as_ref(), &gone)
            .await
            .expect("update"),
        CasOutcome::Missing
    );
}

#[tokio::test]
async fn a_duration_beyond_the_column_range_is_an_unexpected_error_not_a_wrapped_value() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let mut huge = call("c1", "k1", CallStatus::Completed, 0);
    huge.data.duration = Some(u32::MAX);
    let result = CallRepository::insert(&store, &huge).await;
    assert!(
        matches!(result, Err(RepositoryError::Unexpected(_))),
        "{result:?}"
    );
    assert_eq!(store.find_by_id(&huge.id).await.expect("find"), None);
}

/// The `xmin` (writing transaction) of a client's tally row: it changes whenever the row is
/// rewritten, even to the same values.
async fn tally_row_version(store: &PgStore, client: &str) -> String {
    sqlx::query("SELECT xmin::TEXT AS v FROM call_tallies WHERE client_id = $1")
        .bind(client)
        .fetch_one(store.pool())
        .await
        .expect("reading the tally row")
        .get("v")
}

#[tokio::test]
async fn writing_only_the_request_fields_leaves_the_tally_row_untouched() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let mut stored = call("c1", "k1", CallStatus::Busy, 0);
    stored.data.duration = Some(3);
    stored.data.sip_response_code = Some(486);
    stored.data.first_message = Some(BoundedText::parse("Hello!", 100).expect("text"));
    CallRepository::insert(&store, &stored)
        .await
        .expect("inserting call");
    assert_tallies_exact(&store, "after inserting a call with request fields").await;
    let before = tally_row_version(&store, "c1").await;

    let mut changed = stored.clone();
    changed.data.sip_response_code = Some(603);
    changed.data.first_message = None;
    changed.data.dynamic_variables = DynamicVariables::new([(
        "first_name".to_owned(),
        DynamicValue::Text("Zoë".to_owned()),
    )])
    .expect("valid variables");
    assert_eq!(
        CallRepository::update(&store, &changed)
            .await
            .expect("updating"),
        CasOutcome::Updated
    );
    changed.version += 1;
    assert_eq!(
        store.find_by_id(&changed.id).await.expect("find"),
        Some(changed.clone())
    );
    assert_eq!(tally_row_version(&store, "c1").await, before);

    // A tallied column still moves the tallies.
    let mut done = changed.clone();
    done.data.duration = Some(4);
    assert_eq!(
        CallRepository::update(&store, &done)
            .await
            .expect("updating"),
        CasOutcome::Updated
    );
    assert_ne!(tally_row_version(&store, "c1").await, before);
    assert_tallies_exact(&store, "after updating a tallied column").await;
}

#[tokio::test]
async fn the_schema_guards_the_request_fields_and_corrupt_ones_are_unexpected_errors() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let stored = call("c1", "k1", CallStatus::Queued, 0);
    CallRepository::insert(&store, &stored)
        .await
        .expect("inserting call");

    for code in [99, 700, -1] {
        let err = sqlx::query("UPDATE calls SET sip_response_code = $1")
            .bind(code)
            .execute(store.pool())
            .await
            .expect_err("the schema refuses a SIP response code outside 100..=699");
        assert!(
            err.to_string().contains("calls_sip_response_code_check"),
            "{err}"
        );
    }
    sqlx::query("UPDATE calls SET dynamic_variables = NULL")
        .execute(store.pool())
        .await
        .expect_err("the schema refuses missing dynamic variables");

    let long_first_message = "x".repeat(outcall_domain::call::limits::FIRST_MESSAGE + 1);
    let corruptions: [(&'static str, &str, &str); 5] = [
        (
            "UPDATE calls SET dynamic_variables = $1",
            "not json",
            "dynamic_variables",
        ),
        (
            "UPDATE calls SET dynamic_variables = $1",
            "[]",
            "dynamic_variables",
        ),
        (
            "UPDATE calls SET dynamic_variables = $1",
            r#"{"a":null}"#,
            "dynamic_variables",
        ),
        (
            "UPDATE calls SET dynamic_variables = $1",
            r#"{"Bad":1}"#,
            "dynamic_variables",
        ),
        (
            "UPDATE calls SET first_message = $1",
            &long_first_message,
            "first_message",
        ),
    ];
    for (corrupt, value, named) in corruptions {
        sqlx::query("UPDATE calls SET dynamic_variables = '{}', first_message = NULL")
            .execute(store.pool())
            .await
            .expect("repairing");
        sqlx::query(corrupt)
            .bind(value)
            .execute(store.pool())
            .await
            .expect("corrupting");
        match store.find_by_id(&stored.id).await {
            Err(RepositoryError::Unexpected(e)) => {
                let chain = format!("{e:#}");
                assert!(
                    chain.contains(&format!("column {named}")),
                    "{value}: {chain}"
                );
            }
            other => panic!("{value}: expected Unexpected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_call_stored_before_the_request_fields_existed_reads_back_with_them_unset() {
    let url = fresh_database_url().await;
    let old = tempfile_dir();
    for name in ["0001_initial_schema.sql", "0002_call_tallies.sql"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../migrations")
                .join(name),
            old.join(name),
        )
        .expect("copying an old migration");
    }
    let first = PgStore::connect(&url, 2).await.expect("connecting");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("reading the old migrations")
        .run(first.pool())
        .await
        .expect("applying the old migrations");
    std::fs::remove_dir_all(&old).expect("removing the old migrations");
    // The adapter of that time wrote through the same columns minus the new ones.
    sqlx::query(
        "INSERT INTO clients (client_id, status, agent_id, twilio_phone_number, full_name, \
         email, email_normalized, phone, business_name, search_text, secret_hash, \
         created_at, updated_at) \
         VALUES ('old', 'Active', 'agent_1', '+18005550100', 'Owner of old', \
         'old@example.com', 'old@example.com', '+12125551234', 'Acme', 'x', 'phc', $1, $1)",
    )
    .bind(at(0))
    .execute(first.pool())
    .await
    .expect("an old client");
    sqlx::query(
        "INSERT INTO calls (call_id, client_id, phone, start_time, status, created_at, \
         updated_at, version) VALUES ('k1', 'old', '+12125550000', $1, 'completed', $1, $1, 0)",
    )
    .bind(at(10))
    .execute(first.pool())
    .await
    .expect("an old call");

    first
        .migrate()
        .await
        .expect("migrating an existing database");
    let expected = call("old", "k1", CallStatus::Completed, 10);
    assert_eq!(
        first.find_by_id(&expected.id).await.expect("find"),
        Some(expected.clone())
    );
    assert_tallies_exact(&first, "after migrating").await;
}

/// A fresh, empty directory under the system temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "outcall-old-migrations-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir(&dir).expect("creating a temporary directory");
    dir
}

#[tokio::test]
async fn writing_only_the_end_reason_and_analysis_fields_leaves_the_tally_row_untouched() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let mut stored = call("c1", "k1", CallStatus::Completed, 0);
    stored.data.duration = Some(30);
    stored.data.end_time = Some(at(30));
    stored.data.conversation_id = Some(ConversationId::parse("conv_1").expect("valid"));
    stored.details.outcome = Some(CallOutcome::Callback);
    CallRepository::insert(&store, &stored)
        .await
        .expect("inserting call");
    assert_tallies_exact(&store, "after inserting a bridged call").await;
    let before = tally_row_version(&store, "c1").await;

    let mut analysed = stored.clone();
    analysed.data.end_reason = Some(BoundedText::parse("agent_hangup", 100).expect("text"));
    analysed.details.call_successful = Some(BoundedText::parse("success", 32).expect("text"));
    analysed.details.agent_duration_secs = Some(28);
    analysed.details.analysis_at = Some(at(90));
    assert_eq!(
        CallRepository::update(&store, &analysed)
            .await
            .expect("updating"),
        CasOutcome::Updated
    );
    analysed.version += 1;
    assert_eq!(
        store.find_by_id(&analysed.id).await.expect("find"),
        Some(analysed.clone())
    );
    assert_eq!(tally_row_version(&store, "c1").await, before);
    assert_tallies_exact(&store, "after storing an analysis").await;

    // An analysis that also brings an outcome does move the tallies, exactly.
    let mut judged = analysed.clone();
    judged.details.outcome = Some(CallOutcome::Interested);
    judged.details.sentiment = Some(Sentiment::Positive);
    assert_eq!(
        CallRepository::update(&store, &judged)
            .await
            .expect("updating"),
        CasOutcome::Updated
    );
    assert_ne!(tally_row_version(&store, "c1").await, before);
    assert_tallies_exact(&store, "after an analysis with an outcome").await;
}

#[tokio::test]
async fn an_agent_duration_beyond_the_column_range_is_an_unexpected_error_and_nothing_is_stored() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    let mut huge = call("c1", "k1", CallStatus::Completed, 0);
    huge.details.agent_duration_secs = Some(u32::MAX);
    let result = CallRepository::insert(&store, &huge).await;
    match result {
        Err(RepositoryError::Unexpected(e)) => {
            let chain = format!("{e:#}");
            assert!(chain.contains("agent duration"), "{chain}");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
    assert_eq!(store.find_by_id(&huge.id).await.expect("find"), None);

    let mut stored = huge.clone();
    stored.details.agent_duration_secs = Some(i32::MAX.unsigned_abs());
    CallRepository::insert(&store, &stored)
        .await
        .expect("the largest storable agent duration");
    let mut grown = stored.clone();
    grown.details.agent_duration_secs = Some(i32::MAX.unsigned_abs() + 1);
    let result = CallRepository::update(&store, &grown).await;
    assert!(
        matches!(result, Err(RepositoryError::Unexpected(_))),
        "{result:?}"
    );
    assert_eq!(
        store.find_by_id(&stored.id).await.expect("find"),
        Some(stored)
    );
}

#[tokio::test]
async fn the_schema_guards_the_analysis_fields_and_corrupt_ones_are_unexpected_errors() {
    let store = fresh_store().await;
    ClientRepository::insert(&store, &client("c1", "c1@example.com"), &hash())
        .await
        .expect("inserting");
    // A call in the report backlog, so that the backlog query reads it too.
    let mut stored = call("c1", "k1", CallStatus::Completed, 0);
    stored.data.end_time = Some(at(20));
    stored.data.conversation_id = Some(ConversationId::parse("conv_1").expect("valid"));
    CallRepository::insert(&store, &stored)
        .await
        .expect("inserting call");
    assert_eq!(
        backlog_before(&store, 21).await.expect("backlog"),
        vec![never_tried(stored.clone())]
    );

    let err = sqlx::query("UPDATE calls SET agent_duration_secs = -1")
        .execute(store.pool())
        .await
        .expect_err("the schema refuses a negative agent duration");
    assert!(
        err.to_string().contains("calls_agent_duration_secs_check"),
        "{err}"
    );

    let limits = (
        outcall_domain::call::limits::END_REASON,
        outcall_domain::call::limits::CALL_SUCCESSFUL,
    );
    let corruptions: [(&'static str, String, &str); 2] = [
        (
            "UPDATE calls SET end_reason = $1",
            "x".repeat(limits.0 + 1),
            "end_reason",
        ),
        (
            "UPDATE calls SET call_successful = $1",
            "x".repeat(limits.1 + 1),
            "call_successful",
        ),
    ];
    for (corrupt, value, named) in corruptions {
        sqlx::query("UPDATE calls SET end_reason = NULL, call_successful = NULL")
            .execute(store.pool())
            .await
            .expect("repairing");
        sqlx::query(corrupt)
            .bind(value)
            .execute(store.pool())
            .await
            .expect("corrupting");
        let reads = [
            store.find_by_id(&stored.id).await.map(|_| ()),
            backlog_before(&store, 21).await.map(|_| ()),
        ];
        for read in reads {
            match read {
                Err(RepositoryError::Unexpected(e)) => {
                    let chain = format!("{e:#}");
                    assert!(chain.contains(&format!("column {named}")), "{chain}");
                }
                other => panic!("{named}: expected Unexpected, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_call_stored_before_the_analysis_fields_existed_reads_back_with_them_unset_and_awaits_its_report()
 {
    let url = fresh_database_url().await;
    let old = tempfile_dir();
    for name in [
        "0001_initial_schema.sql",
        "0002_call_tallies.sql",
        "0003_call_request_fields.sql",
    ] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../migrations")
                .join(name),
            old.join(name),
        )
        .expect("copying an old migration");
    }
    let first = PgStore::connect(&url, 2).await.expect("connecting");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("reading the old migrations")
        .run(first.pool())
        .await
        .expect("applying the old migrations");
    std::fs::remove_dir_all(&old).expect("removing the old migrations");
    let mut expected = call("old", "k1", CallStatus::Completed, 10);
    expected.data.end_time = Some(at(70));
    expected.data.conversation_id = Some(ConversationId::parse("conv_old").expect("valid"));
    expected.data.sip_response_code = Some(200);
    ClientRepository::insert(&first, &client("old", "old@example.com"), &hash())
        .await
        .expect("an old client");
    // The adapter of that time wrote through the same columns minus the new ones.
    sqlx::query(
        "INSERT INTO calls (call_id, client_id, phone, start_time, end_time, status, \
         conversation_id, sip_response_code, created_at, updated_at, version) \
         VALUES ('k1', 'old', '+12125550000', $1, $2, 'completed', 'conv_old', 200, $1, $1, 0)",
    )
    .bind(at(10))
    .bind(at(70))
    .execute(first.pool())
    .await
    .expect("an old call");

    first
        .migrate()
        .await
        .expect("migrating an existing database");
    assert_eq!(
        first.find_by_id(&expected.id).await.expect("find"),
        Some(expected.clone())
    );
    assert_eq!(
        backlog_before(&first, 71).await.expect("backlog"),
        vec![never_tried(expected)]
    );
    assert_tallies_exact(&first, "after migrating").await;
}

/// The missed-report backlog of calls never tried that ended before `ended_before_ms`, at
/// most 10.
async fn backlog_before<S: CallRepository>(
    store: &S,
    ended_before_ms: i64,
) -> Result<Vec<outcall_domain::queries::AwaitingReport>, RepositoryError> {
    let ended_before = at(ended_before_ms);
    store
        .calls_awaiting_report(&outcall_domain::queries::ReportBacklogQuery {
            ended_before,
            ended_after: ended_before - chrono::Duration::days(3650),
            now: ended_before,
            limit: 10,
        })
        .await
}

fn never_tried(call: outcall_domain::Call) -> outcall_domain::queries::AwaitingReport {
    outcall_domain::queries::AwaitingReport {
        call,
        fetch_attempts: 0,
    }
}
