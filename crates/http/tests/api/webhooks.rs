//! Twilio's webhooks: signature first, then TwiML or the status event.

use std::sync::{Arc, Mutex};

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use outcall_domain::test_support::call_fixture;
use outcall_domain::{CallSid, CallStatus};
use outcall_http::HttpSettings;
use serde_json::{Value, json};

use crate::common::{Mocks, PUBLIC_URL, one, store_calls, stored};

/// The URL and form parameters a signature check was asked about.
type Seen = Arc<Mutex<Option<(String, Vec<(String, String)>)>>>;

const SIGNATURE: &str = "c2lnbmVkLWJ5LXR3aWxpbw==";
const FORM: &str = "application/x-www-form-urlencoded";

/// What the app answered, whatever its content type.
struct Raw {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Raw {
    /// The JSON body, less an error body's `requestId` (which must be there).
    fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{} answered with {}",
            self.status,
            self.content_type
        );
        let mut body: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        if self.status.is_client_error() || self.status.is_server_error() {
            let id = body.as_object_mut().and_then(|m| m.remove("requestId"));
            assert!(id.is_some_and(|id| id.is_string()), "no requestId");
        }
        body
    }
}

async fn send_raw(mocks: Mocks, req: TestRequest) -> Raw {
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;
    let response = test::call_service(&app, req.to_request()).await;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = test::read_body(response).await.to_vec();
    Raw {
        status,
        content_type,
        body,
    }
}

fn signed(req: TestRequest) -> TestRequest {
    req.insert_header(("X-Twilio-Signature", SIGNATURE))
}

fn form_post(uri: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header((header::CONTENT_TYPE, FORM))
        .set_payload(body.to_owned())
}

/// The telephony mock accepts exactly one signature check, of `url` with `SIGNATURE`.
fn accepts(mocks: &mut Mocks, url: &'static str, valid: bool) {
    mocks
        .telephony
        .expect_verify_webhook()
        .times(1)
        .withf(move |u, _, sig| u == url && sig == SIGNATURE)
        .return_const(valid);
}

fn untouched(mocks: &mut Mocks) {
    mocks.calls.expect_find_by_id().never();
    mocks.calls.expect_find().never();
    mocks.calls.expect_update().never();
    mocks.telephony.expect_stream_twiml().never();
}

#[actix_web::test]
async fn an_unsigned_or_wrongly_signed_twiml_request_is_refused_and_reads_nothing() {
    for signature in [None, Some(""), Some("forged")] {
        let mut mocks = Mocks::new();
        untouched(&mut mocks);
        let mut req = form_post("/twilio/twiml?callId=call_1", "CallSid=CA1&From=%2B1");
        match signature {
            Some("forged") => {
                mocks
                    .telephony
                    .expect_verify_webhook()
                    .times(1)
                    .return_const(false);
                req = req.insert_header(("X-Twilio-Signature", "forged"));
            }
            Some(value) => {
                mocks.telephony.expect_verify_webhook().never();
                req = req.insert_header(("X-Twilio-Signature", value));
            }
            None => {
                mocks.telephony.expect_verify_webhook().never();
            }
        }
        let reply = send_raw(mocks, req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{signature:?}");
        assert_eq!(
            reply.json(),
            json!({"error": "Invalid Twilio signature", "statusCode": 403})
        );
    }
}

#[actix_web::test]
async fn a_signed_twiml_request_gets_the_stream_twiml_as_xml() {
    let mut mocks = Mocks::new();
    accepts(
        &mut mocks,
        "https://calls.example.com/twilio/twiml?callId=call_1",
        true,
    );
    store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    mocks
        .telephony
        .expect_stream_twiml()
        .times(1)
        .withf(|stream| {
            stream.url == "wss://calls.example.com/twilio/media-stream"
                && stream.parameters == vec![("callId".to_owned(), "call_1".to_owned())]
        })
        .returning(|_| "<Response><Connect><Stream/></Connect></Response>".to_owned());
    let reply = send_raw(
        mocks,
        signed(form_post(
            "/twilio/twiml?callId=call_1",
            "CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=in-progress",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/xml");
    assert_eq!(
        reply.body,
        b"<Response><Connect><Stream/></Connect></Response>"
    );
}

#[actix_web::test]
async fn a_get_twiml_request_is_verified_over_its_query_as_received_with_no_form_params() {
    const QUERY: &str = "callId=call_1&CallSid=CA1&From=%2B12125550123&Caller=+12125550123";
    let mut mocks = Mocks::new();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    mocks
        .telephony
        .expect_verify_webhook()
        .times(1)
        .returning(move |url, params, _| {
            *record.lock().expect("lock") = Some((url.to_owned(), params.to_vec()));
            true
        });
    store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    mocks
        .telephony
        .expect_stream_twiml()
        .returning(|_| "<Response/>".to_owned());
    let reply = send_raw(
        mocks,
        signed(TestRequest::get().uri(&format!("/twilio/twiml?{QUERY}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (url, params) = seen.lock().expect("lock").clone().expect("verified");
    assert_eq!(url, format!("{PUBLIC_URL}/twilio/twiml?{QUERY}"));
    assert!(params.is_empty(), "{params:?}");
}

#[actix_web::test]
async fn twiml_for_an_unknown_or_impossible_call_id_is_not_found() {
    let mut mocks = Mocks::new();
    mocks
        .telephony
        .expect_verify_webhook()
        .times(1)
        .return_const(true);
    store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    mocks.telephony.expect_stream_twiml().never();
    let reply = send_raw(
        mocks,
        signed(form_post("/twilio/twiml?callId=call_9", "CallSid=CA1")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"error": "Call not found", "statusCode": 404})
    );

    for uri in [
        "/twilio/twiml",
        "/twilio/twiml?callId=",
        "/twilio/twiml?callId=a%20b",
    ] {
        let mut mocks = Mocks::new();
        mocks
            .telephony
            .expect_verify_webhook()
            .times(1)
            .return_const(true);
        untouched(&mut mocks);
        let reply = send_raw(mocks, signed(form_post(uri, "CallSid=CA1"))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[actix_web::test]
async fn an_unsigned_status_callback_is_refused_and_changes_nothing() {
    let mut mocks = Mocks::new();
    untouched(&mut mocks);
    mocks.telephony.expect_verify_webhook().never();
    let reply = one(
        mocks,
        form_post("/twilio/status?callId=call_1", "CallStatus=completed"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid Twilio signature", "statusCode": 403})
    );

    let mut mocks = Mocks::new();
    untouched(&mut mocks);
    accepts(
        &mut mocks,
        "https://calls.example.com/twilio/status?callId=call_1",
        false,
    );
    let reply = one(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_1",
            "CallStatus=completed",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn a_status_callback_with_an_unknown_status_is_a_bad_request() {
    let mut mocks = Mocks::new();
    untouched(&mut mocks);
    accepts(
        &mut mocks,
        "https://calls.example.com/twilio/status?callId=call_1",
        true,
    );
    let reply = one(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_1",
            "CallSid=CA1&CallStatus=exploded",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "error": "Invalid status callback",
            "details": "CallStatus: status must be one of queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, canceled",
            "statusCode": 400
        })
    );
}

#[actix_web::test]
async fn a_signed_status_callback_advances_the_call_and_answers_no_content() {
    let mut mocks = Mocks::new();
    accepts(
        &mut mocks,
        "https://calls.example.com/twilio/status?callId=call_1",
        true,
    );
    let store = store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    let reply = send_raw(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_1",
            "CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=completed&CallDuration=42\
             &SipResponseCode=200&AnsweredBy=human&CallDuration=x&SequenceNumber=3",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    let call = stored(&store);
    assert_eq!(call.data.status(), CallStatus::Completed);
    assert_eq!(call.data.duration, Some(42));
    assert_eq!(call.data.sip_response_code, Some(200));
    assert_eq!(
        call.data.call_sid.as_ref().map(CallSid::as_str),
        Some("CA0123456789abcdef0123456789abcdef")
    );
    assert_eq!(call.version, 1, "written once");
}

#[actix_web::test]
async fn unreadable_optional_status_fields_are_skipped_not_refused() {
    let mut mocks = Mocks::new();
    mocks.telephony.expect_verify_webhook().return_const(true);
    let store = store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Queued)),
    );
    let reply = send_raw(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_1",
            "CallStatus=ringing&CallSid=nonsense&CallDuration=-1&SipResponseCode=abc",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let call = stored(&store);
    assert_eq!(call.data.status(), CallStatus::Ringing);
    assert_eq!(call.data.call_sid, None);
    assert_eq!(call.data.duration, None);
    assert_eq!(call.data.sip_response_code, None);
}

#[actix_web::test]
async fn a_status_callback_for_an_unknown_call_is_not_found() {
    let mut mocks = Mocks::new();
    accepts(
        &mut mocks,
        "https://calls.example.com/twilio/status?callId=call_9",
        true,
    );
    store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    let reply = one(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_9",
            "CallStatus=completed",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"error": "Call not found", "statusCode": 404})
    );
}

#[actix_web::test]
async fn every_form_parameter_reaches_the_signature_check_decoded_in_order_with_repeats() {
    let mut mocks = Mocks::new();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    mocks
        .telephony
        .expect_verify_webhook()
        .times(1)
        .returning(move |url, params, _| {
            *record.lock().expect("lock") = Some((url.to_owned(), params.to_vec()));
            false
        });
    untouched(&mut mocks);
    let reply = one(
        mocks,
        signed(form_post(
            "/twilio/status?callId=call_1&tag=a%20b",
            "To=%2B18005551212&Digits=5678&Digits=1234&Digits=1234&CallStatus=ringing\
             &Timestamp=Tue%2C+01+Jul+2025+12%3A00%3A42+%2B0000&Empty=&Caller=+14158675310",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let (url, params) = seen.lock().expect("lock").clone().expect("verified");
    assert_eq!(
        url,
        "https://calls.example.com/twilio/status?callId=call_1&tag=a%20b"
    );
    let expected: Vec<(String, String)> = [
        ("To", "+18005551212"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
        ("CallStatus", "ringing"),
        ("Timestamp", "Tue, 01 Jul 2025 12:00:42 +0000"),
        ("Empty", ""),
        ("Caller", " 14158675310"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(params, expected);
}

#[actix_web::test]
async fn a_webhook_body_over_the_form_limit_is_a_413_without_a_signature_check() {
    let mut mocks = Mocks::new();
    untouched(&mut mocks);
    mocks.telephony.expect_verify_webhook().never();
    let body = format!("CallStatus=ringing&Pad={}", "x".repeat(64 * 1024));
    let reply = one(
        mocks,
        signed(form_post("/twilio/status?callId=call_1", &body)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body,
        json!({"error": "Payload too large", "details": "request body must be at most 65536 bytes", "statusCode": 413})
    );
}

#[actix_web::test]
async fn status_callbacks_are_post_only() {
    let mut mocks = Mocks::new();
    untouched(&mut mocks);
    mocks.telephony.expect_verify_webhook().never();
    let reply = one(
        mocks,
        signed(TestRequest::get().uri("/twilio/status?callId=call_1&CallStatus=completed")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}
