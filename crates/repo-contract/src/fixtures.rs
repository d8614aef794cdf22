//! Small builders for the suite's records. Every timestamp has millisecond precision, the
//! precision the domain's `Clock` promises and every adapter must keep.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, TimeZone, Utc};
use outcall_domain::call::{Call, CallData, CallDetails};
use outcall_domain::ports::{Clock, IdGenerator};
use outcall_domain::{
    AgentId, BoundedText, CallId, CallSid, CallStatus, Client, ClientId, ClientMeta, ClientSecret,
    ClientStatus, ConversationId, Email, PhoneNumber, SecretHash, Timestamp,
};

use crate::Repos;

/// 2025-03-20T12:00:00.123Z: deliberately not on a whole second.
pub(crate) fn base_time() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 3, 20, 12, 0, 0)
        .single()
        .expect("valid instant")
        + Duration::milliseconds(123)
}

/// `base_time()` shifted by `ms` milliseconds.
pub(crate) fn at_ms(ms: i64) -> Timestamp {
    base_time() + Duration::milliseconds(ms)
}

pub(crate) fn text(raw: &str) -> BoundedText {
    BoundedText::parse(raw, usize::MAX).expect("valid text")
}

pub(crate) fn email(raw: &str) -> Email {
    Email::parse(raw).expect("valid email")
}

pub(crate) fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).expect("valid phone")
}

pub(crate) fn client_id(raw: &str) -> ClientId {
    ClientId::parse(raw).expect("valid client id")
}

pub(crate) fn call_id(raw: &str) -> CallId {
    CallId::parse(raw).expect("valid call id")
}

pub(crate) fn agent(raw: &str) -> AgentId {
    AgentId::parse(raw).expect("valid agent id")
}

pub(crate) fn conversation(raw: &str) -> ConversationId {
    ConversationId::parse(raw).expect("valid conversation id")
}

/// A valid Twilio SID derived from `n`, so that distinct numbers give distinct SIDs.
pub(crate) fn sid(n: u64) -> CallSid {
    CallSid::parse(&format!("CA{n:032x}")).expect("valid sid")
}

pub(crate) fn hash(raw: &str) -> SecretHash {
    SecretHash::from_phc(raw.to_owned())
}

/// An active client with only the required meta fields, email `{id}@example.com`, created
/// at `base_time()`.
pub(crate) fn client(id: &str) -> Client {
    Client {
        id: client_id(id),
        status: ClientStatus::Active,
        agent_id: agent("agent_default"),
        twilio_phone_number: phone("+18005550100"),
        meta: ClientMeta {
            full_name: text(&format!("Owner {id}")),
            email: email(&format!("{id}@example.com")),
            phone: phone("+12125550101"),
            business_name: None,
            city: None,
            job_title: None,
            notes: None,
        },
        token_version: 0,
        created_at: base_time(),
        updated_at: base_time(),
    }
}

/// A client with every field set to something other than the defaults of [`client`].
pub(crate) fn full_client(id: &str) -> Client {
    let mut c = client(id);
    c.status = ClientStatus::Suspended;
    c.agent_id = agent("agent_7f3.x-1");
    c.twilio_phone_number = phone("+447700900123");
    c.meta = ClientMeta {
        full_name: text("Zoë O'Connor-Ångström"),
        email: email(&format!("Mixed.{id}@Example.COM")),
        phone: phone("+4915112345678"),
        business_name: Some(text("Ünïcode \"Widgets\" & Co. 100%")),
        city: Some(text("São Paulo")),
        job_title: Some(text("Head of _Growth_")),
        notes: Some(text(
            "line one\nline two\twith a tab; 'quotes' \\ backslash",
        )),
    };
    c.token_version = 7;
    c.created_at = at_ms(-86_400_000 - 7);
    c.updated_at = at_ms(-5);
    c
}

/// A call of `owner` with every optional field unset.
pub(crate) fn call(owner: &ClientId, id: &str, start: Timestamp, status: CallStatus) -> Call {
    Call {
        id: call_id(id),
        client_id: owner.clone(),
        data: CallData::new(phone("+12125550199"), start, status),
        details: CallDetails::default(),
        created_at: start,
        updated_at: start,
        version: 0,
    }
}

pub(crate) async fn insert_client(repos: &Repos, client: &Client) {
    repos
        .clients
        .insert(client, &hash(&format!("$argon2id$fake${}", client.id)))
        .await
        .expect("client inserts");
}

pub(crate) async fn insert_call(repos: &Repos, call: &Call) {
    repos.calls.insert(call).await.expect("call inserts");
}

/// Newest `start_time` first, then `call_id` descending: the order every call listing uses.
pub(crate) fn newest_call_first(a: &Call, b: &Call) -> std::cmp::Ordering {
    b.data
        .start_time
        .cmp(&a.data.start_time)
        .then_with(|| b.id.cmp(&a.id))
}

/// Wall-clock time truncated to milliseconds, for the services the suite drives.
pub(crate) struct MillisClock;

impl Clock for MillisClock {
    fn now(&self) -> Timestamp {
        let now = Utc::now();
        now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1_000_000))
    }
}

/// Sequential ids; the suite never relies on their values.
#[derive(Default)]
pub(crate) struct SequentialIds(AtomicU64);

impl SequentialIds {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

impl IdGenerator for SequentialIds {
    fn client_id(&self) -> ClientId {
        client_id(&format!("gen{:08}", self.next()))
    }
    fn client_secret(&self) -> ClientSecret {
        ClientSecret::parse(&format!("contract-secret-{:08}", self.next())).expect("valid secret")
    }
    fn call_id(&self) -> CallId {
        call_id(&format!("gen{:08}", self.next()))
    }
    fn token_id(&self) -> String {
        format!("token-{:08}", self.next())
    }
    fn request_id(&self) -> String {
        format!("request-{:08}", self.next())
    }
}
