//! SQLite-specific behaviour the shared contract suite cannot see: files, directories,
//! restarts, in-memory databases and corrupt rows.

// Test code (fixture helpers included) fails loudly on anything unexpected.
#![allow(clippy::expect_used)]

use chrono::{TimeZone, Utc};
use outcall_domain::call::{Call, CallData, CallDetails};
use outcall_domain::ports::{
    AdminRepository, CallRepository, ClientRepository, HealthProbe, RepositoryError,
};
use outcall_domain::{
    AdminUsername, AgentId, BoundedText, CallId, CallStatus, Client, ClientId, ClientMeta,
    ClientStatus, Email, PhoneNumber, SecretHash, Timestamp,
};
use outcall_sqlite::SqliteStore;

fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_742_472_000_123 + ms)
        .single()
        .expect("valid instant")
}

fn client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).expect("valid"),
        status: ClientStatus::Active,
        agent_id: AgentId::parse("agent_1").expect("valid"),
        twilio_phone_number: PhoneNumber::parse("+18005550100").expect("valid"),
        meta: ClientMeta {
            full_name: BoundedText::parse("Zoë Persistent", 200).expect("valid"),
            email: Email::parse(&format!("{id}@Example.com")).expect("valid"),
            phone: PhoneNumber::parse("+12125550101").expect("valid"),
            business_name: Some(BoundedText::parse("Durable Ltd", 200).expect("valid")),
            city: None,
            job_title: None,
            notes: None,
        },
        token_version: 2,
        created_at: at(0),
        updated_at: at(1),
    }
}

fn call(owner: &ClientId, id: &str) -> Call {
    Call {
        id: CallId::parse(id).expect("valid"),
        client_id: owner.clone(),
        data: CallData::new(
            PhoneNumber::parse("+12125550199").expect("valid"),
            at(10),
            CallStatus::Completed,
        ),
        details: CallDetails::default(),
        created_at: at(10),
        updated_at: at(11),
        version: 4,
    }
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn data_written_by_one_store_is_read_back_after_reconnecting_to_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url(&dir.path().join("outcall.db"));
    let owner = client("survivor");
    let record = call(&owner.id, "call-1");
    let admin = AdminUsername::parse("admin").expect("valid");
    {
        let store = SqliteStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        ClientRepository::insert(&store, &owner, &SecretHash::from_phc("phc".into()))
            .await
            .expect("insert");
        CallRepository::insert(&store, &record)
            .await
            .expect("insert call");
        store
            .upsert(&admin, &SecretHash::from_phc("admin-phc".into()), at(5))
            .await
            .expect("admin");
        store
            .revoke_token(&owner.id, "tok", None)
            .await
            .expect("revoke");
        store.close().await;
    }

    let store = SqliteStore::connect(&url).await.expect("reconnect");
    store.migrate().await.expect("migrating again is a no-op");
    let (found, hash) = store
        .find_with_secret(&owner.id)
        .await
        .expect("find")
        .expect("client survived");
    assert_eq!(found, owner);
    assert_eq!(hash.as_phc(), "phc");
    assert_eq!(
        store.find_by_id(&record.id).await.expect("find"),
        Some(record)
    );
    assert_eq!(
        AdminRepository::find(&store, &admin)
            .await
            .expect("find")
            .map(|a| a.created_at),
        Some(at(5))
    );
    assert!(store.is_token_revoked("tok").await.expect("check"));
}

#[tokio::test]
async fn the_data_directory_is_created_on_first_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("nested").join("data");
    let file = data_dir.join("outcall.db");
    assert!(!data_dir.exists());

    let store = SqliteStore::connect(&url(&file)).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.ping().await.expect("ping");

    assert!(data_dir.is_dir());
    assert!(file.is_file());
    // WAL mode keeps a write-ahead log beside the database file.
    ClientRepository::insert(
        &store,
        &client("walcheck"),
        &SecretHash::from_phc("x".into()),
    )
    .await
    .expect("insert");
    assert!(data_dir.join("outcall.db-wal").is_file());
}

#[tokio::test]
async fn an_in_memory_database_works_through_a_single_connection() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let owner = client("memory");
    ClientRepository::insert(&store, &owner, &SecretHash::from_phc("x".into()))
        .await
        .expect("insert");
    assert_eq!(
        ClientRepository::find(&store, &owner.id)
            .await
            .expect("find"),
        Some(owner)
    );
}

#[tokio::test]
async fn a_corrupt_row_is_an_unexpected_error_naming_the_record_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url(&dir.path().join("outcall.db"));
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let owner = client("broken");
    ClientRepository::insert(&store, &owner, &SecretHash::from_phc("x".into()))
        .await
        .expect("insert");
    CallRepository::insert(&store, &call(&owner.id, "call-bad"))
        .await
        .expect("insert call");

    // Damage the rows behind the store's back, as a bad manual edit would.
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");
    sqlx::query("UPDATE clients SET phone = 'not a phone' WHERE client_id = 'broken'")
        .execute(&raw)
        .await
        .expect("corrupt client");
    sqlx::query("UPDATE calls SET duration = -5 WHERE call_id = 'call-bad'")
        .execute(&raw)
        .await
        .expect_err("the schema refuses a negative duration");
    sqlx::query("UPDATE calls SET call_sid = 'CAshort' WHERE call_id = 'call-bad'")
        .execute(&raw)
        .await
        .expect("corrupt call");
    raw.close().await;

    let err = ClientRepository::find(&store, &owner.id)
        .await
        .expect_err("corrupt client");
    let RepositoryError::Unexpected(cause) = err else {
        panic!("expected Unexpected, got {err:?}");
    };
    let chain = format!("{cause:#}");
    assert!(
        chain.contains("broken") && chain.contains("phone"),
        "{chain}"
    );

    let err = store
        .find_by_id(&CallId::parse("call-bad").expect("valid"))
        .await
        .expect_err("corrupt call");
    let RepositoryError::Unexpected(cause) = err else {
        panic!("expected Unexpected, got {err:?}");
    };
    let chain = format!("{cause:#}");
    assert!(
        chain.contains("call-bad") && chain.contains("call_sid"),
        "{chain}"
    );
}

#[tokio::test]
async fn an_invalid_url_is_an_error_not_a_panic() {
    let err = SqliteStore::connect("sqlite://x.db?mode=bogus")
        .await
        .expect_err("invalid");
    assert!(format!("{err:#}").contains("URL"), "{err:#}");
}

/// Applies only the initial migration to the database at `url`, as a deployment from before
/// the request fields existed would have.
async fn migrate_to_initial_schema(url: &str) -> sqlx::SqlitePool {
    let old = tempfile::tempdir().expect("tempdir");
    let initial = "20250320000000_initial.sql";
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(initial),
        old.path().join(initial),
    )
    .expect("copying the initial migration");
    let raw = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("raw connection");
    sqlx::migrate::Migrator::new(old.path())
        .await
        .expect("reading the initial migration")
        .run(&raw)
        .await
        .expect("applying the initial migration");
    raw
}

#[tokio::test]
async fn a_call_stored_before_the_request_fields_existed_reads_back_with_them_unset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url(&dir.path().join("outcall.db"));
    let raw = migrate_to_initial_schema(&url).await;
    sqlx::query(
        "INSERT INTO clients (client_id, status, agent_id, twilio_phone_number, full_name, \
         email, email_normalized, phone, search_text, secret_hash, created_at, updated_at) \
         VALUES ('old', 'Active', 'agent_1', '+18005550100', 'Old Timer', 'old@example.com', \
         'old@example.com', '+12125550101', 'old timer', 'phc', 0, 0)",
    )
    .execute(&raw)
    .await
    .expect("old client");
    sqlx::query(
        "INSERT INTO calls (call_id, client_id, phone, start_time, status, created_at, \
         updated_at, version) \
         VALUES ('old-call', 'old', '+12125550199', ?, 'completed', ?, ?, 4)",
    )
    .bind(at(10).timestamp_millis())
    .bind(at(10).timestamp_millis())
    .bind(at(11).timestamp_millis())
    .execute(&raw)
    .await
    .expect("old call");
    raw.close().await;

    let store = SqliteStore::connect(&url).await.expect("connect");
    store
        .migrate()
        .await
        .expect("migrating an existing database");
    let owner = ClientId::parse("old").expect("valid");
    let expected = call(&owner, "old-call");
    assert_eq!(
        store.find_by_id(&expected.id).await.expect("find"),
        Some(expected.clone())
    );
    let mut updated = expected.clone();
    updated.data.sip_response_code = Some(200);
    assert_eq!(
        CallRepository::update(&store, &updated)
            .await
            .expect("update"),
        outcall_domain::ports::CasOutcome::Updated
    );
}

#[tokio::test]
async fn corrupt_request_fields_are_unexpected_errors_naming_the_column_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url(&dir.path().join("outcall.db"));
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let owner = client("damaged");
    ClientRepository::insert(&store, &owner, &SecretHash::from_phc("x".into()))
        .await
        .expect("insert");
    let record = call(&owner.id, "call-dv");
    CallRepository::insert(&store, &record)
        .await
        .expect("insert call");
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");

    for code in [99, 700, -1] {
        sqlx::query("UPDATE calls SET sip_response_code = ?")
            .bind(code)
            .execute(&raw)
            .await
            .expect_err("the schema refuses a SIP response code outside 100..=699");
    }
    sqlx::query("UPDATE calls SET dynamic_variables = NULL")
        .execute(&raw)
        .await
        .expect_err("the schema refuses missing dynamic variables");

    let long_first_message = "x".repeat(outcall_domain::call::limits::FIRST_MESSAGE + 1);
    let corruptions: [(&str, &str, &str); 5] = [
        ("dynamic_variables", "not json", "dynamic_variables"),
        ("dynamic_variables", "[]", "dynamic_variables"),
        ("dynamic_variables", r#"{"a":null}"#, "dynamic_variables"),
        ("dynamic_variables", r#"{"Bad":1}"#, "dynamic_variables"),
        ("first_message", &long_first_message, "first_message"),
    ];
    for (column, value, named) in corruptions {
        sqlx::query("UPDATE calls SET dynamic_variables = '{}', first_message = NULL")
            .execute(&raw)
            .await
            .expect("repair");
        let set = match column {
            "dynamic_variables" => "UPDATE calls SET dynamic_variables = ?",
            _ => "UPDATE calls SET first_message = ?",
        };
        sqlx::query(set)
            .bind(value)
            .execute(&raw)
            .await
            .expect("corrupt");
        let err = store
            .find_by_id(&record.id)
            .await
            .expect_err("corrupt call");
        let RepositoryError::Unexpected(cause) = err else {
            panic!("expected Unexpected, got {err:?}");
        };
        let chain = format!("{cause:#}");
        assert!(
            chain.contains("call-dv") && chain.contains(named),
            "{value}: {chain}"
        );
    }
    raw.close().await;
}

#[tokio::test]
async fn corrupt_analysis_fields_are_unexpected_errors_naming_the_column_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url(&dir.path().join("outcall.db"));
    let store = SqliteStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let owner = client("analysed");
    ClientRepository::insert(&store, &owner, &SecretHash::from_phc("x".into()))
        .await
        .expect("insert");
    // A call in the report backlog, so that the backlog query reads it too.
    let mut record = call(&owner.id, "call-an");
    record.data.end_time = Some(at(20));
    record.data.conversation_id =
        Some(outcall_domain::ConversationId::parse("conv_an").expect("valid"));
    CallRepository::insert(&store, &record)
        .await
        .expect("insert call");
    assert_eq!(
        backlog_before(&store, 21).await.expect("backlog"),
        vec![never_tried(record.clone())]
    );
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");

    sqlx::query("UPDATE calls SET agent_duration_secs = -1")
        .execute(&raw)
        .await
        .expect_err("the schema refuses a negative agent duration");

    let limits = (
        outcall_domain::call::limits::END_REASON,
        outcall_domain::call::limits::CALL_SUCCESSFUL,
    );
    let texts: [(&'static str, String, &str); 2] = [
        (
            "UPDATE calls SET end_reason = ?",
            "x".repeat(limits.0 + 1),
            "end_reason",
        ),
        (
            "UPDATE calls SET call_successful = ?",
            "x".repeat(limits.1 + 1),
            "call_successful",
        ),
    ];
    let integers: [(&'static str, i64, &str); 2] = [
        (
            "UPDATE calls SET agent_duration_secs = ?",
            i64::from(u32::MAX) + 1,
            "agent_duration_secs",
        ),
        ("UPDATE calls SET analysis_at = ?", i64::MAX, "analysis_at"),
    ];
    let corruptions = texts
        .into_iter()
        .map(|(sql, value, named)| (sql, Raw::Text(value), named))
        .chain(
            integers
                .into_iter()
                .map(|(sql, value, named)| (sql, Raw::Integer(value), named)),
        );
    for (sql, value, named) in corruptions {
        sqlx::query(
            "UPDATE calls SET end_reason = NULL, call_successful = NULL, \
             agent_duration_secs = NULL, analysis_at = NULL",
        )
        .execute(&raw)
        .await
        .expect("repair");
        let corrupt = sqlx::query(sql);
        match value {
            Raw::Text(text) => corrupt.bind(text),
            Raw::Integer(n) => corrupt.bind(n),
        }
        .execute(&raw)
        .await
        .expect("corrupt");
        let mut reads = vec![store.find_by_id(&record.id).await.map(|_| ())];
        if named != "analysis_at" {
            reads.push(backlog_before(&store, 21).await.map(|_| ()));
        }
        for read in reads {
            let Err(RepositoryError::Unexpected(cause)) = read else {
                panic!("{named}: expected Unexpected, got {read:?}");
            };
            let chain = format!("{cause:#}");
            assert!(
                chain.contains("call-an") && chain.contains(named),
                "{named}: {chain}"
            );
        }
    }
    raw.close().await;
}

/// The value one corrupting statement writes.
enum Raw {
    Text(String),
    Integer(i64),
}

#[tokio::test]
async fn pool_usage_counts_open_connections_within_the_pool_limit() {
    let store = SqliteStore::temporary().await.expect("store");
    store.ping().await.expect("ping");
    let usage = store
        .pool_usage()
        .expect("a pooled store reports its usage");
    assert!(usage.max >= 1, "{usage:?}");
    assert!(
        usage.idle >= 1,
        "the ping's connection went back: {usage:?}"
    );
    assert!(usage.idle + usage.in_use <= usage.max, "{usage:?}");
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

fn never_tried(call: Call) -> outcall_domain::queries::AwaitingReport {
    outcall_domain::queries::AwaitingReport {
        call,
        fetch_attempts: 0,
    }
}
