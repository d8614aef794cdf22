//! Fixtures for tests in this crate and, behind the `mocks` feature, in others.

use chrono::TimeZone;

use crate::Timestamp;
use crate::call::{Call, CallData, CallDetails};
use crate::call_status::CallStatus;
use crate::client::{Client, ClientMeta};
use crate::values::{AgentId, BoundedText, CallId, ClientId, ClientStatus, Email, PhoneNumber};

/// 2025-03-20T12:00:00Z, the instant the API contract's examples use.
pub fn fixed_now() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2025, 3, 20, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn valid<T, E: std::fmt::Debug>(value: Result<T, E>) -> T {
    match value {
        Ok(v) => v,
        Err(e) => panic!("fixture value is invalid: {e:?}"),
    }
}

/// An Active client named after its id, with a unique email.
pub fn client_fixture(id: &str) -> Client {
    Client {
        id: valid(ClientId::parse(id)),
        status: ClientStatus::Active,
        agent_id: valid(AgentId::parse("agent_fixture")),
        twilio_phone_number: valid(PhoneNumber::parse("+18001234567")),
        meta: ClientMeta {
            full_name: valid(BoundedText::parse(&format!("Owner of {id}"), 200)),
            email: valid(Email::parse(&format!("{id}@example.com"))),
            phone: valid(PhoneNumber::parse("+12125551234")),
            business_name: None,
            city: None,
            job_title: None,
            notes: None,
        },
        token_version: 0,
        created_at: fixed_now(),
        updated_at: fixed_now(),
    }
}

/// A call of `client` in `status`, started at [`fixed_now`].
pub fn call_fixture(client: &str, call: &str, status: CallStatus) -> Call {
    Call {
        id: valid(CallId::parse(call)),
        client_id: valid(ClientId::parse(client)),
        data: CallData::new(
            valid(PhoneNumber::parse("+12125550000")),
            fixed_now(),
            status,
        ),
        details: CallDetails::default(),
        created_at: fixed_now(),
        updated_at: fixed_now(),
        version: 0,
    }
}
