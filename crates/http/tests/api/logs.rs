//! What the request logs may and may not contain.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use outcall_domain::ports::{RepositoryError, TelephonyError};
use outcall_domain::test_support::call_fixture;
use outcall_domain::{CallId, CallStatus};
use outcall_http::HttpSettings;
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::common::{Mocks, admin, client, send, store_calls};

/// The log lines written while a [`Capture::start`] guard lives, on this thread.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures this thread's events up to `level` (and span closes with `span_close`) until
    /// the guard drops; actix tests run on one thread, so it sees every event of the request.
    ///
    /// Tests run in parallel and tracing caches, per call site, whether any subscriber is
    /// interested. A call site first reached on another thread while this thread's subscriber
    /// was being registered could be cached as uninteresting, and its events lost here. A
    /// global subscriber interested in everything (it records nothing) makes that cache never
    /// say "never"; each thread's own subscriber still decides what it records.
    pub fn start(
        level: tracing::Level,
        span_close: bool,
    ) -> (Self, tracing::subscriber::DefaultGuard) {
        static INTERESTED_EVERYWHERE: std::sync::Once = std::sync::Once::new();
        INTERESTED_EVERYWHERE.call_once(|| {
            // Fails only if another global default exists, which is just as interested.
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(if span_close {
                FmtSpan::CLOSE
            } else {
                FmtSpan::NONE
            })
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[actix_web::test]
async fn logs_carry_failure_causes_but_never_secrets_tokens_or_phone_numbers() {
    // actix tests run on one thread, so a thread-local default sees every event.
    let (capture, _guard) = Capture::start(tracing::Level::TRACE, true);

    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_find_with_secret()
        .returning(|_| Ok(None));
    mocks.hasher.expect_verify_against_decoy().return_const(());
    mocks.clients.expect_list().returning(|_| {
        Err(RepositoryError::Unexpected(anyhow::anyhow!(
            "disk quota exceeded on volume 7"
        )))
    });
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;

    let login = TestRequest::post()
        .uri("/auth/login")
        .set_json(json!({"clientId": "c1", "clientSecret": "super-secret-value-4711"}))
        .to_request();
    assert_eq!(send(&app, login).await.status, StatusCode::UNAUTHORIZED);

    let create = admin(TestRequest::post().uri("/admin/clients"))
        .set_json(json!({
            "clientSecret": "another-secret-value-0815",
            "clientMeta": {"fullName": "J", "email": "j@example.com", "phone": "+12125559876"},
            "agentId": "a1",
            "twilioPhoneNumber": "not-a-number"
        }))
        .to_request();
    assert_eq!(send(&app, create).await.status, StatusCode::BAD_REQUEST);

    let read = client(TestRequest::get().uri("/secure/client")).to_request();
    assert_eq!(send(&app, read).await.status, StatusCode::OK);

    let list = admin(TestRequest::get().uri("/admin/clients")).to_request();
    assert_eq!(
        send(&app, list).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let logs = capture.text();
    assert!(
        logs.contains("disk quota exceeded on volume 7"),
        "the 5xx cause is logged:\n{logs}"
    );
    assert!(
        logs.contains("client_id=c1"),
        "handler spans name the client:\n{logs}"
    );
    for secret in [
        "super-secret-value-4711",
        "another-secret-value-0815",
        "client-token",
        "admin-token",
        "+12125559876",
        "2125559876",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[actix_web::test]
async fn webhook_logs_carry_neither_the_signature_nor_the_callers_phone_numbers() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE, true);

    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .ids
        .expect_call_id()
        .returning(|| CallId::parse("call_1").expect("valid"));
    mocks
        .ids
        .expect_request_id()
        .returning(|| "req_1".to_owned());
    store_calls(
        &mut mocks,
        Some(call_fixture("c1", "call_1", CallStatus::Ringing)),
    );
    mocks
        .telephony
        .expect_verify_webhook()
        .returning(|_, _, signature| signature != "forged-signature-value");
    mocks
        .telephony
        .expect_stream_twiml()
        .returning(|_| "<Response/>".to_owned());
    mocks.telephony.expect_place_call().returning(|_| {
        Err(TelephonyError::Rejected {
            code: Some(21211),
            message: "The 'To' number +12125550199 is not a valid phone number.".into(),
            http_status: 400,
        })
    });
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;

    let get_twiml = TestRequest::get()
        .uri("/twilio/twiml?callId=call_1&From=%2B14155550111&To=%2B12125550199&Called=%2B12125550199&Caller=%2B14155550111")
        .insert_header(("X-Twilio-Signature", "good-signature-value"))
        .to_request();
    assert_eq!(
        test::call_service(&app, get_twiml).await.status(),
        StatusCode::OK
    );

    let status = TestRequest::post()
        .uri("/twilio/status?callId=call_1")
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .insert_header(("X-Twilio-Signature", "good-signature-value"))
        .set_payload(
            "CallStatus=in-progress&From=%2B14155550111&To=%2B12125550199&CallDuration=bad",
        )
        .to_request();
    assert_eq!(
        test::call_service(&app, status).await.status(),
        StatusCode::NO_CONTENT
    );

    let forged = TestRequest::post()
        .uri("/twilio/status?callId=call_1&Caller=%2B14155550111")
        .insert_header(("X-Twilio-Signature", "forged-signature-value"))
        .set_payload("CallStatus=completed")
        .to_request();
    assert_eq!(
        test::call_service(&app, forged).await.status(),
        StatusCode::FORBIDDEN
    );

    let rejected = client(TestRequest::post().uri("/secure/make-call"))
        .set_json(json!({"phone": "+12125550199"}))
        .to_request();
    assert_eq!(send(&app, rejected).await.status, StatusCode::BAD_REQUEST);

    let logs = capture.text();
    assert!(
        logs.contains("call_id=call_1"),
        "webhook spans name the call:\n{logs}"
    );
    assert!(
        logs.contains("CallDuration"),
        "the skipped parameter is named:\n{logs}"
    );
    assert!(
        logs.contains("21211"),
        "the provider's code is logged:\n{logs}"
    );
    for secret in [
        "good-signature-value",
        "forged-signature-value",
        "4155550111",
        "2125550199",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[actix_web::test]
async fn agent_webhook_logs_name_ids_and_reasons_but_never_the_signature_body_or_values() {
    use outcall_domain::ports::AgentWebhookEvent;

    use crate::agent_webhooks::{
        GOOD_SIGNATURE, TRANSCRIPT_TEXT, bridged, find_by_conversation, mocks_answering, one,
        report, streamed, whole,
    };

    let (capture, _guard) = Capture::start(tracing::Level::TRACE, true);

    let body = format!(
        r#"{{"type":"post_call_transcription","data":{{"conversation_id":"conv_1","marker":"BODY-MARKER-31337","transcript":[{{"role":"user","message":"{TRANSCRIPT_TEXT}"}}]}}}}"#
    );

    // Applied, with an outcome outside the allowed set.
    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report(
        "conv_1",
        &[("call_outcome", "SECRET-OUTCOME-VALUE")],
    ))));
    let store = store_calls(&mut mocks, Some(bridged(CallStatus::Completed)));
    find_by_conversation(&mut mocks, &store);
    let reply = one(mocks, HttpSettings::default(), whole(GOOD_SIGNATURE, &body)).await;
    assert_eq!(reply.body, json!({"status": "applied"}));

    // No call has this conversation.
    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report(
        "conv_unknown_77",
        &[],
    ))));
    mocks
        .calls
        .expect_find_by_conversation()
        .returning(|_| Ok(None));
    let reply = one(mocks, HttpSettings::default(), whole(GOOD_SIGNATURE, &body)).await;
    assert_eq!(reply.body, json!({"status": "unknown-call"}));

    // Unused event type, and a malformed body.
    let (mocks, _) = mocks_answering(Ok(AgentWebhookEvent::Other("voice_removed".into())));
    one(mocks, HttpSettings::default(), whole(GOOD_SIGNATURE, &body)).await;
    let (mocks, _) = mocks_answering(Err(outcall_domain::ports::WebhookParseError(format!(
        "invalid type: string \"{TRANSCRIPT_TEXT}\""
    ))));
    let reply = one(mocks, HttpSettings::default(), whole(GOOD_SIGNATURE, &body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // A forged signature.
    let (mocks, _) = mocks_answering(Ok(AgentWebhookEvent::Other("x".into())));
    let (req, _) = streamed(
        Some("t=1742472000,v0=forged-signature-value"),
        body.as_bytes(),
        64,
    );
    let reply = one(mocks, HttpSettings::default(), req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let logs = capture.text();
    for expected in [
        "call_outcome",
        "not a known outcome",
        "conv_unknown_77",
        "voice_removed",
        "call_id=call_1",
        "signature header is malformed",
    ] {
        assert!(logs.contains(expected), "{expected} is not logged:\n{logs}");
    }
    for secret in [
        GOOD_SIGNATURE,
        "0123abcd-good-signature",
        "forged-signature-value",
        "SECRET-OUTCOME-VALUE",
        "BODY-MARKER-31337",
        TRANSCRIPT_TEXT,
        "4711-0815",
        "brochure",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[actix_web::test]
async fn an_event_for_no_known_call_is_a_warning_that_names_the_conversation() {
    use outcall_domain::ports::AgentWebhookEvent;

    use crate::agent_webhooks::{GOOD_SIGNATURE, mocks_answering, one, report, whole};

    // At WARN the request spans are off: the warning must carry the id itself.
    let (capture, _guard) = Capture::start(tracing::Level::WARN, false);

    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report(
        "conv_unknown_77",
        &[],
    ))));
    mocks
        .calls
        .expect_find_by_conversation()
        .returning(|_| Ok(None));
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(GOOD_SIGNATURE, r#"{"type":"post_call_transcription"}"#),
    )
    .await;
    assert_eq!(reply.body, json!({"status": "unknown-call"}));

    let logs = capture.text();
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN") && line.contains("no known call"))
        .unwrap_or_else(|| panic!("no warning:\n{logs}"));
    assert!(warning.contains("conv_unknown_77"), "{warning}");
}
