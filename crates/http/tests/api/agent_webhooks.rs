//! ElevenLabs' post-call webhook: signature first, body streamed into the check, audio never
//! buffered, every understood event answered 200.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_http::error::PayloadError;
use actix_http::{BoxedPayloadStream, Payload, Request};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use outcall_domain::analysis::{InitiationFailure, PostCallReport, Speaker, TranscriptTurn};
use outcall_domain::ports::{
    AgentWebhookEvent, AgentWebhooks, BodyVerifier, RepositoryError, WebhookParseError,
    WebhookRejection,
};
use outcall_domain::test_support::{call_fixture, fixed_now};
use outcall_domain::{BoundedText, Call, CallStatus, ConversationId, Timestamp};
use outcall_http::HttpSettings;
use serde_json::json;

use crate::common::{Mocks, Reply, send, store_calls, stored};

pub const PATH: &str = "/webhooks/elevenlabs/post-call";
/// The only signature header the fake accepts (distinctive, so the log test can look for it).
pub const GOOD_SIGNATURE: &str = "t=1742472000,v0=0123abcd-good-signature";
/// A body containing this fails the fake's check, as an altered body fails the real one.
const TAMPERED: &str = "TAMPERED";

/// What the fake was given, shared with the test.
#[derive(Clone, Default)]
pub struct Seen {
    /// Every byte fed to any verifier, in order.
    pub fed: Arc<Mutex<Vec<u8>>>,
    /// `now` of every verifier started.
    pub now: Arc<Mutex<Vec<Timestamp>>>,
    /// Every body parsed.
    pub parsed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Seen {
    pub fn fed(&self) -> Vec<u8> {
        self.fed.lock().expect("lock").clone()
    }

    pub fn parsed(&self) -> Vec<Vec<u8>> {
        self.parsed.lock().expect("lock").clone()
    }
}

/// An HMAC-free stand-in for the ElevenLabs check: the header must equal [`GOOD_SIGNATURE`],
/// and the body must not contain `TAMPERED`. `parse` answers with the event it was given.
pub struct FakeWebhooks {
    seen: Seen,
    answer: Result<AgentWebhookEvent, WebhookParseError>,
}

impl FakeWebhooks {
    pub fn answering(answer: Result<AgentWebhookEvent, WebhookParseError>) -> (Self, Seen) {
        let seen = Seen::default();
        (
            Self {
                seen: seen.clone(),
                answer,
            },
            seen,
        )
    }
}

struct FakeVerifier {
    fed: Arc<Mutex<Vec<u8>>>,
    body: Vec<u8>,
}

impl BodyVerifier for FakeVerifier {
    fn update(&mut self, chunk: &[u8]) {
        self.fed.lock().expect("lock").extend_from_slice(chunk);
        self.body.extend_from_slice(chunk);
    }

    fn finish(self: Box<Self>) -> Result<(), WebhookRejection> {
        let tampered = self
            .body
            .windows(TAMPERED.len())
            .any(|window| window == TAMPERED.as_bytes());
        if tampered {
            Err(WebhookRejection::Mismatch)
        } else {
            Ok(())
        }
    }
}

impl AgentWebhooks for FakeWebhooks {
    fn verifier(
        &self,
        signature_header: Option<&str>,
        now: Timestamp,
    ) -> Result<Box<dyn BodyVerifier>, WebhookRejection> {
        self.seen.now.lock().expect("lock").push(now);
        match signature_header {
            None => Err(WebhookRejection::MissingSignature),
            Some(GOOD_SIGNATURE) => Ok(Box::new(FakeVerifier {
                fed: self.seen.fed.clone(),
                body: Vec::new(),
            })),
            Some(_) => Err(WebhookRejection::MalformedSignature),
        }
    }

    fn parse(&self, body: &[u8]) -> Result<AgentWebhookEvent, WebhookParseError> {
        self.seen.parsed.lock().expect("lock").push(body.to_vec());
        self.answer.clone()
    }
}

/// Mocks whose webhook check is a [`FakeWebhooks`] answering `answer`.
pub fn mocks_answering(answer: Result<AgentWebhookEvent, WebhookParseError>) -> (Mocks, Seen) {
    let mut mocks = Mocks::new();
    let (fake, seen) = FakeWebhooks::answering(answer);
    mocks.agent_webhooks = Arc::new(fake);
    (mocks, seen)
}

/// No call may be looked up or written.
fn untouched(mocks: &mut Mocks) {
    mocks.calls.expect_find_by_conversation().never();
    mocks.calls.expect_find_by_id().never();
    mocks.calls.expect_find_by_sid().never();
    mocks.calls.expect_update().never();
}

/// A webhook request whose body arrives as a chunked stream of `chunk`-byte pieces (no
/// `Content-Length`), and a flag that is set once the body is read.
pub fn streamed(signature: Option<&str>, body: &[u8], chunk: usize) -> (Request, Arc<AtomicBool>) {
    let mut req = TestRequest::post()
        .uri(PATH)
        .insert_header(("Content-Type", "application/json"));
    if let Some(value) = signature {
        req = req.insert_header(("ElevenLabs-Signature", value));
    }
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let chunks: Vec<Result<Bytes, PayloadError>> = body
        .chunks(chunk)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let stream: BoxedPayloadStream = Box::pin(
        futures_util::stream::iter(chunks).inspect(move |_| flag.store(true, Ordering::SeqCst)),
    );
    let (req, _) = req.to_request().replace_payload(Payload::from(stream));
    (req, read)
}

/// A webhook request with the whole body and its `Content-Length`.
pub fn whole(signature: &str, body: &str) -> Request {
    TestRequest::post()
        .uri(PATH)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("elevenlabs-signature", signature))
        .set_payload(body.to_owned())
        .to_request()
}

pub async fn one(mocks: Mocks, settings: HttpSettings, req: Request) -> Reply {
    let app = test::init_service(outcall_http::app(mocks.state(), settings)).await;
    send(&app, req).await
}

fn conversation(id: &str) -> ConversationId {
    ConversationId::parse(id).expect("valid")
}

/// A call of client `c1` that the bridge connected to conversation `conv_1`.
pub fn bridged(status: CallStatus) -> Call {
    let mut call = call_fixture("c1", "call_1", status);
    call.data.conversation_id = Some(conversation("conv_1"));
    call
}

/// Lookups by conversation find the stored call only under its conversation id.
pub fn find_by_conversation(mocks: &mut Mocks, store: &Arc<Mutex<Option<Call>>>) {
    let s = store.clone();
    mocks
        .calls
        .expect_find_by_conversation()
        .returning(move |id| {
            Ok(s.lock()
                .expect("lock")
                .clone()
                .filter(|c| c.data.conversation_id.as_ref() == Some(id)))
        });
}

pub const TRANSCRIPT_TEXT: &str = "my account number is 4711-0815";

pub fn report(conversation_id: &str, data_collection: &[(&str, &str)]) -> PostCallReport {
    PostCallReport {
        conversation_id: conversation(conversation_id),
        call_id: None,
        event_at: fixed_now(),
        summary: Some("The callee wants a brochure.".into()),
        transcript: vec![
            TranscriptTurn {
                speaker: Speaker::Agent,
                text: "Hello, how can I help?".into(),
            },
            TranscriptTurn {
                speaker: Speaker::User,
                text: TRANSCRIPT_TEXT.into(),
            },
        ],
        data_collection: data_collection
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        call_successful: Some("success".into()),
        duration_secs: Some(42),
    }
}

/// A transcription envelope as ElevenLabs sends it (the fake does not read it).
pub fn transcription_body(conversation_id: &str) -> String {
    json!({
        "type": "post_call_transcription",
        "event_timestamp": 1_742_472_000,
        "data": {
            "conversation_id": conversation_id,
            "transcript": [{"role": "user", "message": TRANSCRIPT_TEXT}],
        }
    })
    .to_string()
}

fn audio_body(audio_bytes: usize) -> String {
    format!(
        r#"{{"type":"post_call_audio","event_timestamp":1742472000,"data":{{"agent_id":"agent_1","conversation_id":"conv_1","full_audio":"{}"}}}}"#,
        "A".repeat(audio_bytes)
    )
}

fn limited(bytes: usize) -> HttpSettings {
    HttpSettings {
        agent_webhook_limit_bytes: bytes,
        ..HttpSettings::default()
    }
}

#[actix_web::test]
async fn an_unsigned_or_badly_signed_webhook_is_refused_before_its_body_is_read() {
    for (signature, details) in [
        (None, "missing signature header"),
        (Some("t=1,v0=zz"), "signature header is malformed"),
    ] {
        let (mut mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::Other("x".into())));
        untouched(&mut mocks);
        let (req, read) = streamed(signature, transcription_body("conv_1").as_bytes(), 64);
        let reply = one(mocks, HttpSettings::default(), req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{signature:?}");
        assert_eq!(
            reply.body,
            json!({"error": "Invalid webhook signature", "details": details, "statusCode": 401})
        );
        assert!(!read.load(Ordering::SeqCst), "the body was read");
        assert!(seen.fed().is_empty());
        assert!(seen.parsed().is_empty());
    }
}

#[actix_web::test]
async fn the_signature_is_checked_against_the_clock() {
    let (mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::Other("x".into())));
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(GOOD_SIGNATURE, &transcription_body("conv_1")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(*seen.now.lock().expect("lock"), vec![fixed_now()]);
}

#[actix_web::test]
async fn a_body_that_does_not_match_its_signature_is_refused_and_changes_nothing() {
    let (mut mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_1", &[]))));
    untouched(&mut mocks);
    let body = transcription_body(TAMPERED);
    let (req, read) = streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 16);
    let reply = one(mocks, HttpSettings::default(), req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid webhook signature", "details": "signature does not match the body", "statusCode": 401})
    );
    assert!(read.load(Ordering::SeqCst));
    assert_eq!(seen.fed(), body.as_bytes(), "every byte was checked");
    assert!(seen.parsed().is_empty(), "an unverified body was parsed");
}

#[actix_web::test]
async fn a_signed_body_that_is_not_an_event_is_a_400() {
    let (mut mocks, seen) = mocks_answering(Err(WebhookParseError(
        "missing field `conversation_id`".into(),
    )));
    untouched(&mut mocks);
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(GOOD_SIGNATURE, r#"{"type":"post_call_transcription"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid webhook payload", "statusCode": 400})
    );
    assert_eq!(
        seen.parsed(),
        vec![br#"{"type":"post_call_transcription"}"#.to_vec()]
    );
}

#[actix_web::test]
async fn a_signed_post_call_report_completes_its_call_and_answers_applied() {
    let (mut mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report(
        "conv_1",
        &[
            ("call_outcome", "interested"),
            ("call_sentiment", "positive"),
        ],
    ))));
    let store = store_calls(&mut mocks, Some(bridged(CallStatus::Completed)));
    find_by_conversation(&mut mocks, &store);
    let body = transcription_body("conv_1");
    // Chunks that split the envelope's `type` member.
    let (req, _) = streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 7);
    let reply = one(mocks, HttpSettings::default(), req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "applied"}));
    assert_eq!(seen.fed(), body.as_bytes());
    assert_eq!(seen.parsed(), vec![body.into_bytes()], "the verified bytes");
    let call = stored(&store);
    assert_eq!(
        call.details.summary.as_ref().map(BoundedText::as_str),
        Some("The callee wants a brochure.")
    );
    assert_eq!(
        call.details.transcript.as_ref().map(BoundedText::as_str),
        Some(format!("Agent: Hello, how can I help?\nUser: {TRANSCRIPT_TEXT}").as_str())
    );
    assert_eq!(call.details.agent_duration_secs, Some(42));
    assert_eq!(call.version, 1);
}

#[actix_web::test]
async fn the_same_report_delivered_twice_answers_duplicate_and_changes_nothing() {
    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_1", &[]))));
    let store = store_calls(&mut mocks, Some(bridged(CallStatus::Completed)));
    find_by_conversation(&mut mocks, &store);
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;
    let body = transcription_body("conv_1");
    let first = send(&app, whole(GOOD_SIGNATURE, &body)).await;
    assert_eq!(first.body, json!({"status": "applied"}));
    let after_first = stored(&store);
    let second = send(&app, whole(GOOD_SIGNATURE, &body)).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, json!({"status": "duplicate"}));
    assert_eq!(
        stored(&store),
        after_first,
        "the redelivery changed the call"
    );
}

#[actix_web::test]
async fn a_report_for_no_known_call_is_still_a_200_and_changes_nothing() {
    let (mut mocks, _) =
        mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_other", &[]))));
    mocks
        .calls
        .expect_find_by_conversation()
        .times(1)
        .withf(|id| id.as_str() == "conv_other")
        .returning(|_| Ok(None));
    mocks.calls.expect_find_by_id().never();
    mocks.calls.expect_update().never();
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(GOOD_SIGNATURE, &transcription_body("conv_other")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "unknown-call"}));
}

#[actix_web::test]
async fn an_initiation_failure_marks_its_call_failed() {
    let failure = InitiationFailure {
        conversation_id: Some(conversation("conv_1")),
        call_id: None,
        call_sid: None,
        reason: "busy".into(),
        event_at: fixed_now(),
    };
    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::InitiationFailure(failure)));
    let store = store_calls(&mut mocks, Some(bridged(CallStatus::InProgress)));
    find_by_conversation(&mut mocks, &store);
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(
            GOOD_SIGNATURE,
            r#"{"type":"call_initiation_failure","data":{"conversation_id":"conv_1","failure_reason":"busy"}}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "applied"}));
    let call = stored(&store);
    assert_eq!(call.data.status(), CallStatus::Failed);
    assert!(
        call.data
            .end_reason
            .as_ref()
            .is_some_and(|reason| reason.as_str().contains("busy")),
        "{:?}",
        call.data.end_reason
    );
}

#[actix_web::test]
async fn an_audio_event_larger_than_the_limit_is_verified_in_full_and_ignored() {
    let type_first = audio_body(64 * 1024);
    // The envelope's members in another order: the type is only known past the limit.
    let type_last = format!(
        r#"{{"data":{{"type":"x","full_audio":"{}"}},"type":"post_call_audio"}}"#,
        "A".repeat(64 * 1024)
    );
    for body in [type_first, type_last] {
        let (mut mocks, seen) =
            mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_1", &[]))));
        untouched(&mut mocks);
        let (req, _) = streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 1000);
        let reply = one(mocks, limited(1024), req).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", &body[..40]);
        assert_eq!(reply.body, json!({"status": "ignored"}));
        assert!(seen.fed() == body.as_bytes(), "not every byte was verified");
        assert!(seen.parsed().is_empty(), "an audio body was parsed");
    }
}

#[actix_web::test]
async fn an_oversized_audio_event_that_does_not_match_its_signature_is_refused() {
    let (mut mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::Audio));
    untouched(&mut mocks);
    let body = format!("{}{TAMPERED}\"}}}}", &audio_body(8 * 1024)[..8 * 1024]);
    let (req, _) = streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 500);
    let reply = one(mocks, limited(1024), req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(seen.fed() == body.as_bytes());
    assert!(seen.parsed().is_empty());
}

#[actix_web::test]
async fn a_body_over_the_limit_that_is_not_audio_is_a_413_and_is_not_parsed() {
    let transcription = format!(
        r#"{{"type":"post_call_transcription","data":{{"summary":"{}"}}}}"#,
        "s".repeat(4096)
    );
    // No type at all: it cannot be audio.
    let untyped = format!(r#"{{"data":{{"full_audio":"{}"}}}}"#, "A".repeat(4096));
    // Never says what it is, up to its last byte.
    let unfinished = format!(r#"{{"data":"{}"#, "A".repeat(4096));
    for (body, streaming) in [
        (transcription.clone(), true),
        (transcription, false),
        (untyped, true),
        (unfinished, true),
    ] {
        let (mut mocks, seen) =
            mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_1", &[]))));
        untouched(&mut mocks);
        let req = if streaming {
            streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 300).0
        } else {
            whole(GOOD_SIGNATURE, &body)
        };
        let reply = one(mocks, limited(1024), req).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            &body[..30]
        );
        assert_eq!(
            reply.body,
            json!({"error": "Payload too large", "details": "request body must be at most 1024 bytes", "statusCode": 413})
        );
        assert!(seen.parsed().is_empty());
    }
}

#[actix_web::test]
async fn a_body_exactly_at_the_limit_is_accepted() {
    let (mut mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::Other("x".into())));
    untouched(&mut mocks);
    let body = transcription_body("conv_1");
    let (req, _) = streamed(Some(GOOD_SIGNATURE), body.as_bytes(), 10);
    let reply = one(mocks, limited(body.len()), req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(seen.parsed(), vec![body.into_bytes()]);
}

#[actix_web::test]
async fn other_event_types_are_acknowledged_and_ignored() {
    for event in [
        AgentWebhookEvent::Other("voice_removal_notice".into()),
        // Audio that the envelope check did not recognise is still ignored once parsed.
        AgentWebhookEvent::Audio,
    ] {
        let (mut mocks, seen) = mocks_answering(Ok(event.clone()));
        untouched(&mut mocks);
        let body = r#"{"type":"voice_removal_notice","data":{}}"#;
        let reply = one(mocks, HttpSettings::default(), whole(GOOD_SIGNATURE, body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{event:?}");
        assert_eq!(reply.body, json!({"status": "ignored"}));
        assert_eq!(seen.parsed().len(), 1);
    }
}

#[actix_web::test]
async fn a_storage_failure_is_a_500_that_hides_its_cause() {
    let (mut mocks, _) = mocks_answering(Ok(AgentWebhookEvent::PostCall(report("conv_1", &[]))));
    mocks.calls.expect_find_by_conversation().returning(|_| {
        Err(RepositoryError::Unexpected(anyhow::anyhow!(
            "connection reset"
        )))
    });
    mocks.calls.expect_update().never();
    let reply = one(
        mocks,
        HttpSettings::default(),
        whole(GOOD_SIGNATURE, &transcription_body("conv_1")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!({"error": "Internal server error", "statusCode": 500})
    );
}

#[actix_web::test]
async fn the_webhook_takes_only_post() {
    let (mocks, seen) = mocks_answering(Ok(AgentWebhookEvent::Other("x".into())));
    let reply = one(
        mocks,
        HttpSettings::default(),
        TestRequest::get()
            .uri(PATH)
            .insert_header(("ElevenLabs-Signature", GOOD_SIGNATURE))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(seen.now.lock().expect("lock").is_empty());
}
