//! The REST client against a local fake of Twilio's API (wiremock).

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::expect_used)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use outcall_domain::ports::{OutboundCall, StreamInstructions, Telephony, TelephonyError};
use outcall_domain::values::{CallId, CallSid, PhoneNumber};
use outcall_twilio::{MachineDetection, TwilioClient, TwilioConfig};
use secrecy::SecretString;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cr3t-auth-token";
const CALL_SID: &str = "CAfedcba9876543210fedcba9876543210";
const CALLS_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json";
const TO: &str = "+15551234567";
const FROM: &str = "+15557654321";

fn config(server: &MockServer) -> TwilioConfig {
    TwilioConfig {
        api_base: server.uri(),
        ..TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN))
    }
}

fn client(config: TwilioConfig) -> TwilioClient {
    TwilioClient::new(config).expect("valid config")
}

fn outbound() -> OutboundCall {
    OutboundCall {
        call_id: CallId::parse("call_1").expect("valid"),
        to: PhoneNumber::parse(TO).expect("valid"),
        from: PhoneNumber::parse(FROM).expect("valid"),
        twiml_url: "https://calls.example.com/twilio/twiml?callId=call_1".to_owned(),
        status_callback_url: "https://calls.example.com/twilio/status?callId=call_1".to_owned(),
    }
}

fn created_body() -> serde_json::Value {
    serde_json::json!({
        "sid": CALL_SID,
        "account_sid": ACCOUNT_SID,
        "parent_call_sid": null,
        "to": TO,
        "from": FROM,
        "status": "queued",
        "direction": "outbound-api",
        "duration": null,
        "price": null,
        "api_version": "2010-04-01",
        "queue_time": "0",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json"),
    })
}

fn error_body(code: u32, message: &str, status: u16) -> serde_json::Value {
    serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

/// A fake that answers every create-call request with `response`.
async fn fake_create(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALLS_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn form_of(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn base_form() -> Vec<(String, String)> {
    pairs(&[
        ("To", TO),
        ("From", FROM),
        (
            "Url",
            "https://calls.example.com/twilio/twiml?callId=call_1",
        ),
        ("Method", "POST"),
        (
            "StatusCallback",
            "https://calls.example.com/twilio/status?callId=call_1",
        ),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
    ])
}

#[tokio::test]
async fn placing_a_call_posts_the_exact_form_with_basic_auth_and_returns_the_sid() {
    let server = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;

    let placed = client(config(&server))
        .place_call(&outbound())
        .await
        .expect("placed");

    assert_eq!(placed.sid.as_str(), CALL_SID);
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), CALLS_PATH);
    assert_eq!(request.url.query(), None);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{TOKEN}"));
    assert_eq!(
        header(request, "authorization"),
        Some(format!("Basic {credentials}").as_str())
    );
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(request, "accept"), Some("application/json"));
    // Exactly these fields, in this order: no optional field unless configured, and the
    // event field repeated once per event.
    assert_eq!(form_of(request), base_form());
}

#[tokio::test]
async fn the_repeated_event_field_is_sent_as_four_separate_fields_on_the_wire() {
    let server = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;
    client(config(&server))
        .place_call(&outbound())
        .await
        .expect("placed");
    let requests = server.received_requests().await.expect("recorded");
    let raw = String::from_utf8(requests[0].body.clone()).expect("utf8");
    assert!(
        raw.contains(
            "StatusCallbackEvent=initiated&StatusCallbackEvent=ringing\
             &StatusCallbackEvent=answered&StatusCallbackEvent=completed"
        ),
        "{raw}"
    );
    // `+` of E.164 numbers must be percent-encoded, or Twilio would read a space.
    assert!(
        raw.starts_with("To=%2B15551234567&From=%2B15557654321&"),
        "{raw}"
    );
}

#[tokio::test]
async fn configured_call_options_are_added_to_the_form() {
    for (detection, expected) in [
        (MachineDetection::Enable, "Enable"),
        (MachineDetection::DetectMessageEnd, "DetectMessageEnd"),
    ] {
        let server = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;
        let config = TwilioConfig {
            ring_timeout_secs: Some(25),
            time_limit_secs: Some(900),
            machine_detection: Some(detection),
            record: true,
            ..config(&server)
        };
        client(config)
            .place_call(&outbound())
            .await
            .expect("placed");
        let requests = server.received_requests().await.expect("recorded");
        let mut expected_form = base_form();
        expected_form.extend(pairs(&[
            ("Timeout", "25"),
            ("TimeLimit", "900"),
            ("MachineDetection", expected),
            ("Record", "true"),
        ]));
        assert_eq!(form_of(&requests[0]), expected_form);
    }
}

#[tokio::test]
async fn a_trailing_slash_on_the_api_base_does_not_change_the_path() {
    let server = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;
    let config = TwilioConfig {
        api_base: format!("{}/", server.uri()),
        ..config(&server)
    };
    client(config)
        .place_call(&outbound())
        .await
        .expect("placed");
}

#[tokio::test]
async fn an_invalid_to_number_is_rejected_with_twilios_code_and_message() {
    let message = "The 'To' number 5551234567 is not a valid phone number.";
    let server =
        fake_create(ResponseTemplate::new(400).set_body_json(error_body(21211, message, 400)))
            .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("rejected");
    match error {
        TelephonyError::Rejected {
            code,
            message: got,
            http_status,
        } => {
            assert_eq!(code, Some(21211));
            assert_eq!(got, message);
            assert_eq!(http_status, 400);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unverified_caller_id_is_rejected_with_its_code() {
    let server = fake_create(ResponseTemplate::new(400).set_body_json(error_body(
        21210,
        "The source phone number provided, +15557654321, is not yet verified.",
        400,
    )))
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("rejected");
    assert!(matches!(
        error,
        TelephonyError::Rejected {
            code: Some(21210),
            http_status: 400,
            ..
        }
    ));
}

#[tokio::test]
async fn bad_credentials_are_unauthorized() {
    let server = fake_create(ResponseTemplate::new(401).set_body_json(error_body(
        20003,
        "Authenticate",
        401,
    )))
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("refused");
    assert!(matches!(error, TelephonyError::Unauthorized), "{error:?}");
}

#[tokio::test]
async fn a_401_without_a_body_is_unauthorized() {
    let server = fake_create(ResponseTemplate::new(401)).await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("refused");
    assert!(matches!(error, TelephonyError::Unauthorized), "{error:?}");
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_with_the_retry_after_seconds() {
    let server = fake_create(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "3")
            .set_body_json(error_body(20429, "Too Many Requests", 429)),
    )
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("limited");
    assert!(
        matches!(
            error,
            TelephonyError::RateLimited {
                retry_after_secs: Some(3)
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn rate_limiting_without_retry_after_has_no_delay() {
    let server = fake_create(ResponseTemplate::new(429).set_body_json(error_body(
        20429,
        "Too Many Requests",
        429,
    )))
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("limited");
    assert!(
        matches!(
            error,
            TelephonyError::RateLimited {
                retry_after_secs: None
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_not_retried() {
    let server = fake_create(ResponseTemplate::new(500).set_body_json(error_body(
        20500,
        "Internal Server Error",
        500,
    )))
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("failed");
    assert!(matches!(error, TelephonyError::Unavailable(_)), "{error:?}");
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn a_malformed_success_body_is_unavailable() {
    let server =
        fake_create(ResponseTemplate::new(201).set_body_raw("{\"sid\": \"CA", "application/json"))
            .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("unreadable");
    assert!(matches!(error, TelephonyError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_success_body_with_an_invalid_sid_is_unavailable() {
    let server = fake_create(
        ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "not-a-call-sid"})),
    )
    .await;
    let error = client(config(&server))
        .place_call(&outbound())
        .await
        .expect_err("unreadable");
    assert!(matches!(error, TelephonyError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_slow_provider_times_out_as_unavailable_after_exactly_one_request() {
    let server = fake_create(
        ResponseTemplate::new(201)
            .set_body_json(created_body())
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let config = TwilioConfig {
        request_timeout: Duration::from_millis(200),
        ..config(&server)
    };
    let started = std::time::Instant::now();
    let error = client(config)
        .place_call(&outbound())
        .await
        .expect_err("timed out");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not time out"
    );
    match &error {
        TelephonyError::Unavailable(cause) => {
            assert!(
                format!("{cause:#}").contains("did not answer within"),
                "{cause:#}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Give a (wrong) retry time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let config = TwilioConfig {
        api_base: format!("http://{address}"),
        ..TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN))
    };
    let error = client(config)
        .place_call(&outbound())
        .await
        .expect_err("unreachable");
    assert!(matches!(error, TelephonyError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn ending_a_call_posts_status_completed_to_the_call() {
    let server = MockServer::start().await;
    let call_path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json");
    Mock::given(method("POST"))
        .and(path(call_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(created_body()))
        .expect(1)
        .mount(&server)
        .await;

    client(config(&server))
        .end_call(&CallSid::parse(CALL_SID).expect("valid"))
        .await
        .expect("ended");

    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.url.path(), call_path);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{TOKEN}"));
    assert_eq!(
        header(request, "authorization"),
        Some(format!("Basic {credentials}").as_str())
    );
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(request, "accept"), Some("application/json"));
    assert_eq!(form_of(request), pairs(&[("Status", "completed")]));
}

#[tokio::test]
async fn ending_an_unknown_call_is_rejected_with_twilios_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body(
            20404,
            "The requested resource was not found",
            404,
        )))
        .mount(&server)
        .await;
    let error = client(config(&server))
        .end_call(&CallSid::parse(CALL_SID).expect("valid"))
        .await
        .expect_err("rejected");
    assert!(
        matches!(
            error,
            TelephonyError::Rejected {
                code: Some(20404),
                http_status: 404,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn ending_a_call_with_bad_credentials_is_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            20003,
            "Authenticate",
            401,
        )))
        .mount(&server)
        .await;
    let error = client(config(&server))
        .end_call(&CallSid::parse(CALL_SID).expect("valid"))
        .await
        .expect_err("refused");
    assert!(matches!(error, TelephonyError::Unauthorized), "{error:?}");
}

/// Collects everything the crate logs at any level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_neither_the_token_nor_full_phone_numbers() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("outcall_twilio=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // A call site first reached on another test thread while this subscriber registers
    // could be cached as uninteresting; an always-interested global subscriber (recording
    // nothing) and a rebuild of the cache keep this thread's events.
    static INTERESTED_EVERYWHERE: std::sync::Once = std::sync::Once::new();
    INTERESTED_EVERYWHERE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let ok = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;
    client(config(&ok))
        .place_call(&outbound())
        .await
        .expect("placed");
    // Twilio's rejection message quotes the number; it must not reach the log.
    let rejected = fake_create(ResponseTemplate::new(400).set_body_json(error_body(
        21211,
        "The 'To' number +15551234567 is not a valid phone number.",
        400,
    )))
    .await;
    let _ = client(config(&rejected)).place_call(&outbound()).await;

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("asking Twilio to place the call"), "{logs}");
    assert!(
        logs.contains("4567"),
        "redacted numbers keep their tail: {logs}"
    );
    for secret in [TOKEN, TO, FROM, "15551234567", "15557654321"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}

#[test]
fn debug_output_of_the_client_never_shows_the_token() {
    let client = client(TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN)));
    let shown = format!("{client:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn the_client_refuses_invalid_settings() {
    let bad_sid = TwilioConfig::new("AC123", SecretString::from(TOKEN));
    assert!(TwilioClient::new(bad_sid).is_err());
    let no_token = TwilioConfig::new(ACCOUNT_SID, SecretString::from(""));
    assert!(TwilioClient::new(no_token).is_err());
    let bad_base = TwilioConfig {
        api_base: "not a url".to_owned(),
        ..TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN))
    };
    assert!(TwilioClient::new(bad_base).is_err());
}

#[test]
fn webhooks_are_verified_with_the_configured_token() {
    let params = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA00000000000000000000000000000001"),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("CallbackSource", "call-progress-events"),
        ("Called", "+15005550006"),
        ("Caller", "+15005550001"),
        ("Direction", "outbound-api"),
        ("Duration", "1"),
        ("From", "+15005550001"),
        ("SequenceNumber", "3"),
        ("Timestamp", "Tue, 01 Jul 2025 12:00:42 +0000"),
        ("To", "+15005550006"),
    ]);
    let url = "https://example.com/twilio/status?call_id=abc";
    let signed = "9YHMLggE6fC/vZKfpbOtXGV9hIk=";
    let right = client(TwilioConfig::new(
        "AC00000000000000000000000000000000",
        SecretString::from("12345"),
    ));
    assert!(right.verify_webhook(url, &params, signed));
    assert!(right.verify_webhook(
        "https://example.com:443/twilio/status?call_id=abc",
        &params,
        signed
    ));
    let wrong = client(TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN)));
    assert!(!wrong.verify_webhook(url, &params, signed));
}

#[test]
fn the_port_writes_the_escaped_stream_twiml() {
    let client = client(TwilioConfig::new(ACCOUNT_SID, SecretString::from(TOKEN)));
    let stream = StreamInstructions {
        url: "wss://calls.example.com/twilio/media-stream".to_owned(),
        parameters: vec![("callId".to_owned(), "a\"b".to_owned())],
    };
    assert_eq!(
        client.stream_twiml(&stream),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
         <Stream url=\"wss://calls.example.com/twilio/media-stream\">\
         <Parameter name=\"callId\" value=\"a&quot;b\"/></Stream></Connect></Response>"
    );
}

#[tokio::test]
async fn requests_are_timed_by_operation_and_failures_counted_by_kind() {
    // A recorder of this test's own (the test runs on one thread).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let placed = fake_create(ResponseTemplate::new(201).set_body_json(created_body())).await;
    client(config(&placed))
        .place_call(&outbound())
        .await
        .expect("placed");
    let refused = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body(
            20404,
            "The requested resource was not found",
            404,
        )))
        .mount(&refused)
        .await;
    client(config(&refused))
        .end_call(&CallSid::parse(CALL_SID).expect("valid"))
        .await
        .expect_err("rejected");

    let text = metrics.render();
    for line in [
        r#"provider_request_duration_seconds_count{provider="twilio",operation="create_call"} 1"#,
        r#"provider_request_duration_seconds_count{provider="twilio",operation="end_call"} 1"#,
        r#"provider_request_errors_total{provider="twilio",operation="end_call",kind="rejected"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        !text.contains(r#"operation="create_call",kind="#),
        "a success is no error:\n{text}"
    );
}
