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

/// A call repository over one stored call, with real compare-and-set semantics: every lookup
/// finds the stored call, `update` succeeds only against the stored version.
pub fn stored_calls(
    store: std::sync::Arc<std::sync::Mutex<Option<Call>>>,
) -> crate::ports::MockCallRepository {
    use crate::ports::CasOutcome;
    let read = |store: &std::sync::Arc<std::sync::Mutex<Option<Call>>>| {
        store.lock().map(|slot| slot.clone()).unwrap_or(None)
    };
    let mut calls = crate::ports::MockCallRepository::new();
    let s = store.clone();
    calls.expect_insert().returning(move |call| {
        if let Ok(mut slot) = s.lock() {
            *slot = Some(call.clone());
        }
        Ok(())
    });
    let s = store.clone();
    calls.expect_find_by_id().returning(move |_| Ok(read(&s)));
    let s = store.clone();
    calls.expect_find().returning(move |_, _| Ok(read(&s)));
    let s = store.clone();
    calls
        .expect_find_by_conversation()
        .returning(move |id| Ok(read(&s).filter(|c| c.data.conversation_id.as_ref() == Some(id))));
    let s = store.clone();
    calls
        .expect_find_by_sid()
        .returning(move |sid| Ok(read(&s).filter(|c| c.data.call_sid.as_ref() == Some(sid))));
    calls.expect_update().returning(move |call| {
        let Ok(mut slot) = store.lock() else {
            return Ok(CasOutcome::Conflict);
        };
        match slot.as_mut() {
            Some(current) if current.version == call.version => {
                *current = Call {
                    version: call.version + 1,
                    ..call.clone()
                };
                Ok(CasOutcome::Updated)
            }
            Some(_) => Ok(CasOutcome::Conflict),
            None => Ok(CasOutcome::Missing),
        }
    });
    calls
}
