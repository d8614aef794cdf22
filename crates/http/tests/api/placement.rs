//! Placing calls (`make-call`) and ending them (`hangup`).

use actix_web::http::{StatusCode, header};
use actix_web::test::TestRequest;
use outcall_domain::ports::{PlacedCall, TelephonyError};
use outcall_domain::test_support::{call_fixture, client_fixture};
use outcall_domain::{
    BoundedText, CallId, CallSid, CallStatus, Client, ClientStatus, DynamicValue, PhoneNumber,
};
use serde_json::{Value, json};

use crate::common::{Mocks, admin, client, one, store_calls, stored};

const SID: &str = "CA0123456789abcdef0123456789abcdef";

fn call_id() -> CallId {
    CallId::parse("call_1").expect("valid")
}

/// Mocks knowing `known` and an Active `c1`, where a placed call gets ids `call_1` / `req_1`.
fn placing(known: Vec<Client>) -> Mocks {
    let mut mocks = Mocks::signed_in(known);
    mocks.ids.expect_call_id().returning(call_id);
    mocks
        .ids
        .expect_request_id()
        .returning(|| "req_1".to_owned());
    mocks
}

fn make_call(body: Value) -> TestRequest {
    client(TestRequest::post().uri("/secure/make-call")).set_json(body)
}

#[actix_web::test]
async fn a_client_places_a_call_from_its_own_number_and_gets_the_calls_ids() {
    let mut mocks = placing(vec![]);
    let store = store_calls(&mut mocks, None);
    mocks
        .telephony
        .expect_place_call()
        .times(1)
        .withf(|outbound| {
            outbound.to.as_str() == "+12125550123"
                && outbound.from.as_str() == "+18001234567"
                && outbound.call_id.as_str() == "call_1"
        })
        .returning(|_| {
            Ok(PlacedCall {
                sid: CallSid::parse(SID).expect("valid"),
            })
        });
    let reply = one(
        mocks,
        make_call(json!({
            "phone": "+12125550123",
            "firstMessage": "Hello Jane",
            "dynamicVariables": {"first_name": "Jane", "visits": 3, "score": 0.5, "vip": true}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "success": true,
            "message": "Call initiated successfully",
            "callSid": SID,
            "requestId": "req_1",
            "callId": "call_1"
        })
    );
    let call = stored(&store);
    assert_eq!(call.client_id.as_str(), "c1");
    assert_eq!(call.data.call_sid.as_ref().map(CallSid::as_str), Some(SID));
    assert_eq!(
        call.data.first_message.as_ref().map(BoundedText::as_str),
        Some("Hello Jane")
    );
    let vars = &call.data.dynamic_variables;
    assert_eq!(vars.get("visits"), Some(&DynamicValue::Integer(3)));
    assert_eq!(vars.get("score"), Some(&DynamicValue::Number(0.5)));
    assert_eq!(vars.get("vip"), Some(&DynamicValue::Bool(true)));
    assert_eq!(
        vars.get("first_name"),
        Some(&DynamicValue::Text("Jane".into()))
    );
}

#[actix_web::test]
async fn an_admin_places_a_call_for_a_client_from_that_clients_number() {
    let mut c2 = client_fixture("c2");
    c2.twilio_phone_number = PhoneNumber::parse("+18005550002").expect("valid");
    let mut mocks = placing(vec![c2]);
    let store = store_calls(&mut mocks, None);
    mocks
        .telephony
        .expect_place_call()
        .times(1)
        .withf(|outbound| outbound.from.as_str() == "+18005550002")
        .returning(|_| {
            Ok(PlacedCall {
                sid: CallSid::parse(SID).expect("valid"),
            })
        });
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients/c2/make-call"))
            .set_json(json!({"phone": "+12125550123"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["callId"], "call_1");
    assert_eq!(stored(&store).client_id.as_str(), "c2");
}

#[actix_web::test]
async fn invalid_call_requests_are_refused_naming_the_field_before_anything_is_stored_or_dialled() {
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"phone": "2125550123"}),
            "phone: phone number must be in E.164 format (e.g. +12125551234)",
        ),
        (json!({"phone": 12125550123u64}), "phone must be a string"),
        (
            json!({"phone": "+12125550123", "dynamicVariables": many}),
            "dynamicVariables may hold at most 32 variables",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"First-Name": "x"}}),
            "dynamicVariables key \"First-Name\" must be 1 to 64 characters of a-z, 0-9 and '_'",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"system__call_sid": "x"}}),
            "dynamicVariables key \"system__call_sid\" uses the reserved prefix 'system__'",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"note": "x".repeat(501)}}),
            "dynamicVariables.note must be at most 500 characters",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"address": {"city": "Oslo"}}}),
            "dynamicVariables.address must be a string, number or boolean",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"nothing": null}}),
            "dynamicVariables.nothing must be a string, number or boolean",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": {"list": [1, 2]}}),
            "dynamicVariables.list must be a string, number or boolean",
        ),
        (
            json!({"phone": "+12125550123", "dynamicVariables": ["a"]}),
            "dynamicVariables must be an object",
        ),
        (
            json!({"phone": "+12125550123", "firstMessage": "x".repeat(1001)}),
            "firstMessage: must be at most 1000 characters",
        ),
        (
            json!({"phone": "+12125550123", "firstMessage": 5}),
            "firstMessage must be a string",
        ),
        (
            json!({"phone": "+12125550123", "from": "+18005550000"}),
            "from cannot be chosen: calls are placed from the client's own Twilio number with the client's own agent",
        ),
        (
            json!({"phone": "+12125550123", "callerId": "+18005550000"}),
            "callerId cannot be chosen: calls are placed from the client's own Twilio number with the client's own agent",
        ),
        (
            json!({"phone": "+12125550123", "agentId": "agent_other"}),
            "agentId cannot be chosen: calls are placed from the client's own Twilio number with the client's own agent",
        ),
        (
            json!({"phone": "+12125550123", "priority": "high"}),
            "unknown fields: priority",
        ),
    ];
    for (body, details) in cases {
        for admin_route in [false, true] {
            let mut mocks = Mocks::signed_in(vec![]);
            mocks.calls.expect_insert().never();
            mocks.telephony.expect_place_call().never();
            let req = if admin_route {
                admin(TestRequest::post().uri("/admin/clients/c1/make-call")).set_json(&body)
            } else {
                make_call(body.clone())
            };
            let reply = one(mocks, req).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{details}");
            assert_eq!(
                reply.body,
                json!({"error": "Invalid call request", "details": details, "statusCode": 400}),
            );
        }
    }
}

#[actix_web::test]
async fn a_call_request_without_a_phone_lists_it_as_required() {
    for body in [
        json!({}),
        json!({"phone": ""}),
        json!({"firstMessage": "hi"}),
    ] {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.calls.expect_insert().never();
        mocks.telephony.expect_place_call().never();
        let reply = one(mocks, make_call(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.body,
            json!({"error": "Missing required fields", "requiredFields": ["phone"], "statusCode": 400})
        );
    }
}

#[actix_web::test]
async fn an_inactive_client_cannot_have_calls_placed() {
    for status in [ClientStatus::Inactive, ClientStatus::Suspended] {
        let mut c2 = client_fixture("c2");
        c2.status = status;
        let mut mocks = Mocks::signed_in(vec![c2]);
        mocks.calls.expect_insert().never();
        mocks.telephony.expect_place_call().never();
        let reply = one(
            mocks,
            admin(TestRequest::post().uri("/admin/clients/c2/make-call"))
                .set_json(json!({"phone": "+12125550123"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{status:?}");
        assert_eq!(
            reply.body,
            json!({"error": "Forbidden", "message": "Client is not active", "statusCode": 403})
        );
    }
}

#[actix_web::test]
async fn placing_a_call_for_an_unknown_client_is_client_not_found() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_insert().never();
    mocks.telephony.expect_place_call().never();
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients/nobody/make-call"))
            .set_json(json!({"phone": "+12125550123"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"error": "Client not found", "statusCode": 404})
    );
}

#[actix_web::test]
async fn provider_errors_map_to_clear_answers_and_leave_the_call_failed() {
    // The provider's error, the status, the body and the Retry-After header.
    type Case = (fn() -> TelephonyError, u16, Value, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            || TelephonyError::Rejected {
                code: Some(21211),
                message: "The 'To' number +12125550123 is not a valid phone number.".into(),
                http_status: 400,
            },
            400,
            json!({
                "error": "Invalid 'To' phone number",
                "details": "The 'To' number +12125550123 is not a valid phone number.",
                "twilioCode": 21211,
                "callId": "call_1",
                "statusCode": 400
            }),
            None,
        ),
        (
            || TelephonyError::Rejected {
                code: Some(21219),
                message: "The number is unverified.".into(),
                http_status: 400,
            },
            400,
            json!({
                "error": "Destination cannot be called",
                "details": "The number is unverified.",
                "twilioCode": 21219,
                "callId": "call_1",
                "statusCode": 400
            }),
            None,
        ),
        (
            || TelephonyError::Unauthorized,
            502,
            json!({
                "error": "Telephony provider credentials were refused",
                "details": "check OUTCALL__TWILIO__ACCOUNT_SID and OUTCALL__TWILIO__AUTH_TOKEN",
                "callId": "call_1",
                "statusCode": 502
            }),
            None,
        ),
        (
            || TelephonyError::Rejected {
                code: Some(20003),
                message: "Authenticate".into(),
                http_status: 401,
            },
            502,
            json!({
                "error": "Telephony provider rejected the call",
                "twilioCode": 20003,
                "callId": "call_1",
                "statusCode": 502
            }),
            None,
        ),
        (
            || TelephonyError::RateLimited {
                retry_after_secs: Some(7),
            },
            503,
            json!({
                "error": "Telephony provider is rate limiting requests",
                "retryAfter": 7,
                "callId": "call_1",
                "statusCode": 503
            }),
            Some("7"),
        ),
        (
            || TelephonyError::RateLimited {
                retry_after_secs: None,
            },
            503,
            json!({
                "error": "Telephony provider is rate limiting requests",
                "retryAfter": 1,
                "callId": "call_1",
                "statusCode": 503
            }),
            Some("1"),
        ),
        (
            || TelephonyError::Unavailable(anyhow::anyhow!("connect to 10.1.2.3 timed out")),
            502,
            json!({
                "error": "Telephony provider unavailable",
                "details": "the provider could not be reached or did not answer in time",
                "callId": "call_1",
                "statusCode": 502
            }),
            None,
        ),
    ];
    for (error, status, body, retry_after) in cases {
        let mut mocks = placing(vec![]);
        let store = store_calls(&mut mocks, None);
        mocks
            .telephony
            .expect_place_call()
            .times(1)
            .returning(move |_| Err(error()));
        let reply = one(mocks, make_call(json!({"phone": "+12125550123"}))).await;
        assert_eq!(reply.status.as_u16(), status, "{body}");
        assert_eq!(reply.body, body);
        assert_eq!(reply.header(header::RETRY_AFTER), retry_after, "{body}");
        assert_eq!(stored(&store).data.status(), CallStatus::Failed, "{body}");
    }
}

fn live_call(status: CallStatus) -> outcall_domain::Call {
    let mut call = call_fixture("c1", "call_1", status);
    call.data.call_sid = CallSid::parse(SID).ok();
    call
}

#[actix_web::test]
async fn hanging_up_a_live_call_ends_it_through_the_provider() {
    for (req, who) in [
        (
            client(TestRequest::post().uri("/secure/calls/call_1/hangup")),
            "client",
        ),
        (
            admin(TestRequest::post().uri("/admin/clients/c1/calls/call_1/hangup")),
            "admin",
        ),
    ] {
        let mut mocks = Mocks::signed_in(vec![]);
        store_calls(&mut mocks, Some(live_call(CallStatus::InProgress)));
        mocks
            .telephony
            .expect_end_call()
            .times(1)
            .withf(|sid| sid.as_str() == SID)
            .returning(|_| Ok(()));
        let reply = one(mocks, req).await;
        assert_eq!(reply.status, StatusCode::OK, "{who}");
        assert_eq!(
            reply.body,
            json!({"success": true, "message": "Call ended"}),
            "{who}"
        );
    }
}

#[actix_web::test]
async fn hanging_up_a_finished_call_is_a_conflict() {
    let mut mocks = Mocks::signed_in(vec![]);
    store_calls(&mut mocks, Some(live_call(CallStatus::Completed)));
    mocks.telephony.expect_end_call().never();
    let reply = one(
        mocks,
        client(TestRequest::post().uri("/secure/calls/call_1/hangup")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body,
        json!({"error": "Call already ended", "statusCode": 409})
    );
}

#[actix_web::test]
async fn hanging_up_an_unknown_or_another_clients_call_is_call_not_found() {
    for uri in [
        "/secure/calls/call_9/hangup",
        "/admin/clients/c2/calls/call_1/hangup",
        "/secure/calls/bad%20id/hangup",
    ] {
        let mut mocks = Mocks::signed_in(vec![]);
        store_calls(&mut mocks, Some(live_call(CallStatus::Ringing)));
        mocks.telephony.expect_end_call().never();
        let req = if uri.starts_with("/secure") {
            client(TestRequest::post().uri(uri))
        } else {
            admin(TestRequest::post().uri(uri))
        };
        let reply = one(mocks, req).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            reply.body,
            json!({"error": "Call not found", "statusCode": 404}),
            "{uri}"
        );
    }
}

#[actix_web::test]
async fn a_provider_failure_while_hanging_up_is_reported_with_the_call_id() {
    let mut mocks = Mocks::signed_in(vec![]);
    store_calls(&mut mocks, Some(live_call(CallStatus::InProgress)));
    mocks
        .telephony
        .expect_end_call()
        .returning(|_| Err(TelephonyError::Unavailable(anyhow::anyhow!("reset"))));
    let reply = one(
        mocks,
        client(TestRequest::post().uri("/secure/calls/call_1/hangup")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body["error"], "Telephony provider unavailable");
    assert_eq!(reply.body["callId"], "call_1");
}

#[actix_web::test]
async fn make_call_and_hangup_require_the_right_token_before_reading_the_body() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_insert().never();
    mocks.telephony.expect_place_call().never();
    mocks.telephony.expect_end_call().never();
    let app = actix_web::test::init_service(outcall_http::app(
        mocks.state(),
        outcall_http::HttpSettings::default(),
    ))
    .await;
    let cases = [
        (
            TestRequest::post()
                .uri("/secure/make-call")
                .set_payload("not json"),
            401,
        ),
        (
            admin(TestRequest::post().uri("/secure/make-call")).set_payload("not json"),
            403,
        ),
        (
            client(TestRequest::post().uri("/admin/clients/c1/make-call")).set_payload("not json"),
            403,
        ),
        (TestRequest::post().uri("/secure/calls/call_1/hangup"), 401),
        (
            client(TestRequest::post().uri("/admin/clients/c1/calls/call_1/hangup")),
            403,
        ),
    ];
    for (req, status) in cases {
        let reply = crate::common::send(&app, req.to_request()).await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    }
}
