//! Test harness: a fresh, migrated database per test on the server `DATABASE_URL` names.
//!
//! `DATABASE_URL` must be a superuser URL of a throw-away server (it creates databases);
//! `scripts/test` (the README test command) starts one and sets it.

// Each test crate uses a different subset of these helpers, and as test code they fail
// loudly on anything unexpected.
#![allow(dead_code, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};
use outcall_domain::{
    AgentId, BoundedText, Call, CallData, CallDetails, CallId, CallStatus, Client, ClientId,
    ClientMeta, ClientStatus, Email, PhoneNumber, SecretHash,
};
use outcall_postgres::PgStore;
use sqlx::Connection as _;

/// Connections per test pool: enough for the concurrency tests, small enough that many
/// tests can run side by side.
const POOL_SIZE: u32 = 8;

fn server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set. The outcall-postgres tests need a throw-away PostgreSQL \
             server: run them with the README test command, `scripts/test` (or \
             `scripts/with-postgres cargo test -p outcall-postgres`), which starts one and sets \
             DATABASE_URL; or export DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres \
             pointing at a superuser of a server you can throw away."
        ),
    }
}

/// Creates an empty, uniquely named database and returns its URL.
pub async fn fresh_database_url() -> String {
    let server = server_url();
    let name = format!("outcall_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL ({e}); is the server up?"));
    // The name is generated above from a UUID, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE (DATABASE_URL must be a superuser)");
    admin.close().await.expect("closing the admin connection");
    let mut url = url::Url::parse(&server).expect("DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// A store on a fresh database, migrated.
pub async fn fresh_store() -> PgStore {
    let url = fresh_database_url().await;
    let store = PgStore::connect(&url, POOL_SIZE)
        .await
        .expect("connecting to the fresh database");
    store.migrate().await.expect("migrating the fresh database");
    store
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_742_472_000 + seconds, 0)
        .single()
        .expect("valid instant")
}

pub fn hash() -> SecretHash {
    SecretHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned())
}

pub fn client(id: &str, email: &str) -> Client {
    Client {
        id: ClientId::parse(id).expect("valid id"),
        status: ClientStatus::Active,
        agent_id: AgentId::parse("agent_1").expect("valid agent"),
        twilio_phone_number: PhoneNumber::parse("+18005550100").expect("valid number"),
        meta: ClientMeta {
            full_name: BoundedText::parse(&format!("Owner of {id}"), 200).expect("valid name"),
            email: Email::parse(email).expect("valid email"),
            phone: PhoneNumber::parse("+12125551234").expect("valid phone"),
            business_name: Some(BoundedText::parse("Acme", 200).expect("valid business")),
            city: None,
            job_title: None,
            notes: None,
        },
        token_version: 0,
        created_at: at(0),
        updated_at: at(0),
    }
}

pub fn call(client: &str, id: &str, status: CallStatus, start: i64) -> Call {
    Call {
        id: CallId::parse(id).expect("valid call id"),
        client_id: ClientId::parse(client).expect("valid client id"),
        data: CallData::new(
            PhoneNumber::parse("+12125550000").expect("valid phone"),
            at(start),
            status,
        ),
        details: CallDetails::default(),
        created_at: at(start),
        updated_at: at(start),
        version: 0,
    }
}
