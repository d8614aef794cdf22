//! The ElevenLabs emulator against a tokio-tungstenite client and a tiny webhook receiver:
//! signed URLs, scripted conversations, pings, barge-in, endings, the signed post-call webhook
//! and the conversation GET.

// Test code, where panics are the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, KeyInit, Mac};
use outcall_sandbox::{
    AgentMessage, ConversationEnd, ConversationScript, ConversationStatus, ElevenLabsEmulator,
    ElevenLabsEmulatorConfig, ScriptTurn, ScriptedAnalysis, TranscriptRole, WebhookTarget,
    elevenlabs_signature,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const KEY: &str = "xi_test_key";
const AGENT: &str = "agent_test";
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn turn(user: &str, user_audio_ms: u32, agent: &str) -> ScriptTurn {
    ScriptTurn {
        user: user.to_owned(),
        user_audio_ms,
        agent: agent.to_owned(),
    }
}

/// A fast, deterministic configuration: no pacing, no pings, one known agent.
fn config(script: ConversationScript) -> ElevenLabsEmulatorConfig {
    ElevenLabsEmulatorConfig {
        api_key: KEY.to_owned(),
        agents: vec![AGENT.to_owned()],
        script,
        audio_chunk_ms: 100,
        audio_realtime: false,
        webhook: None,
        agent_output_format: "ulaw_8000".to_owned(),
        user_input_format: "ulaw_8000".to_owned(),
    }
}

fn script(first_message: &str, turns: Vec<ScriptTurn>) -> ConversationScript {
    ConversationScript {
        first_message: first_message.to_owned(),
        turns,
        barge_in_on_turn: None,
        end_after_turns: true,
        ping_interval: Duration::ZERO,
        analysis: ScriptedAnalysis::default(),
    }
}

async fn get(url: &str, key: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.header("xi-api-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn signed_url(emulator: &ElevenLabsEmulator) -> String {
    let url = format!(
        "{}/v1/convai/conversation/get-signed-url?agent_id={AGENT}",
        emulator.base_url()
    );
    let (status, body) = get(&url, Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    body["signed_url"].as_str().unwrap().to_owned()
}

async fn connect(url: &str) -> Result<Ws, tungstenite::Error> {
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _response)| ws)
}

fn init(first_message: Option<&str>) -> Value {
    let mut message = json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"customer_name": "Jane", "call_id": "call-42", "balance": 12.5, "vip": true},
    });
    if let Some(first) = first_message {
        message["conversation_config_override"] = json!({"agent": {"first_message": first}});
    }
    message
}

async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

fn audio_chunk(bytes: usize) -> Value {
    json!({"user_audio_chunk": base64::engine::general_purpose::STANDARD.encode(vec![0xFF_u8; bytes])})
}

/// What the client saw.
#[derive(Debug, Default)]
struct Seen {
    /// JSON messages with their arrival time.
    messages: Vec<(Instant, Value)>,
    /// The close frame received, if any.
    close: Option<Option<CloseFrame>>,
    /// How the socket ended otherwise (error text), or `None` if it is still open.
    error: Option<String>,
    ended: bool,
    /// `user_audio_chunk` messages the client sent.
    audio_sent: u64,
}

impl Seen {
    fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m["type"] == kind)
            .collect()
    }

    fn types(&self) -> Vec<&str> {
        self.messages
            .iter()
            .filter_map(|(_, m)| m["type"].as_str())
            .collect()
    }
}

/// A test on what the client has seen so far.
type Condition = Box<dyn Fn(&Seen) -> bool + Send>;

struct Drive {
    /// Send a 20 ms μ-law frame this often (Twilio's rate is every 20 ms).
    audio_every: Option<Duration>,
    answer_pings: bool,
    /// Close (1000) from the client side once this is true of what was seen.
    close_when: Option<Condition>,
    /// Stop reading (socket left open) once this is true.
    stop_when: Option<Condition>,
}

impl Default for Drive {
    fn default() -> Self {
        Self {
            audio_every: None,
            answer_pings: true,
            close_when: None,
            stop_when: None,
        }
    }
}

/// Plays the client side until the socket ends, `stop_when` holds, or `WAIT` passes.
async fn drive(ws: &mut Ws, drive: Drive) -> Seen {
    let mut seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let mut ticker = tokio::time::interval(drive.audio_every.unwrap_or(ms(1000)));
    let mut closing = false;
    loop {
        if drive.stop_when.as_ref().is_some_and(|stop| stop(&seen)) {
            return seen;
        }
        if !closing && drive.close_when.as_ref().is_some_and(|close| close(&seen)) {
            closing = true;
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "client done".into(),
            };
            ws.send(Message::Close(Some(frame))).await.unwrap();
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => panic!("the conversation did not end in time: {:?}", seen.types()),
            _ = ticker.tick(), if drive.audio_every.is_some() && !closing => {
                if ws.send(Message::text(audio_chunk(160).to_string())).await.is_ok() {
                    seen.audio_sent += 1;
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap();
                    if drive.answer_pings && value["type"] == "ping" {
                        let pong = json!({"type": "pong", "event_id": value["ping_event"]["event_id"]});
                        let _ = ws.send(Message::text(pong.to_string())).await;
                    }
                    seen.messages.push((Instant::now(), value));
                }
                Some(Ok(Message::Close(frame))) => seen.close = Some(frame),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    seen.error = Some(error.to_string());
                    seen.ended = true;
                    return seen;
                }
                None => {
                    seen.ended = true;
                    return seen;
                }
            },
        }
    }
}

fn audio_event_id(message: &Value) -> u64 {
    message["audio_event"]["event_id"].as_u64().unwrap()
}

fn audio_bytes(message: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message["audio_event"]["audio_base_64"].as_str().unwrap())
        .unwrap()
}

/// The tests' own signature, written from protocols 7.4 without the emulator's code.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v0={hex}")
}

#[derive(Debug, Clone)]
struct Delivered {
    signature: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A webhook receiver answering `status` and keeping what it got.
struct Receiver {
    url: String,
    delivered: Arc<Mutex<Vec<Delivered>>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let kept = delivered.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/webhooks/elevenlabs",
            listener.local_addr().unwrap()
        );
        let server = HttpServer::new(move || {
            let kept = kept.clone();
            App::new().route(
                "/webhooks/elevenlabs",
                web::post().to(move |request: HttpRequest, body: web::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        kept.lock().unwrap().push(Delivered {
                            signature: header("elevenlabs-signature"),
                            content_type: header("content-type"),
                            body: body.to_vec(),
                        });
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                            .finish()
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            delivered,
            server: handle,
        }
    }

    fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().unwrap().clone()
    }
}

#[test]
fn the_signature_reproduces_the_protocols_vector_and_the_tests_own_hmac() {
    let body = br#"{"type":"post_call_transcription","event_timestamp":1700000000,"data":{"conversation_id":"conv_1"}}"#;
    let vector = "t=1700000000,v0=0803716dec0e1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f";
    assert_eq!(
        elevenlabs_signature("test_secret", 1_700_000_000, body),
        vector
    );
    assert_eq!(
        expected_signature("test_secret", "1700000000", body),
        vector
    );
    // Sensitive to every input.
    assert_ne!(
        elevenlabs_signature("test_secret", 1_700_000_001, body),
        vector
    );
    assert_ne!(
        elevenlabs_signature("test_secreT", 1_700_000_000, body),
        vector
    );
    assert_ne!(
        elevenlabs_signature("test_secret", 1_700_000_000, &body[1..]),
        vector
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_url_endpoint_checks_the_api_key_and_the_agent() {
    let emulator = ElevenLabsEmulator::start(config(script("Hi", vec![])))
        .await
        .unwrap();
    let base = emulator.base_url();
    let url = format!("{base}/v1/convai/conversation/get-signed-url?agent_id={AGENT}");
    for key in [Some("wrong"), None] {
        let (status, body) = get(&url, key).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["detail"]["status"], "invalid_api_key");
    }
    let unknown = format!("{base}/v1/convai/conversation/get-signed-url?agent_id=agent_other");
    let (status, body) = get(&unknown, Some(KEY)).await;
    assert_eq!(status, 404, "{body}");
    let missing = format!("{base}/v1/convai/conversation/get-signed-url");
    let (status, body) = get(&missing, Some(KEY)).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "agent_id"]));

    let (status, body) = get(&url, Some(KEY)).await;
    assert_eq!(status, 200);
    let signed = url::Url::parse(body["signed_url"].as_str().unwrap()).unwrap();
    assert_eq!(signed.scheme(), "ws");
    assert_eq!(signed.host_str(), Some("127.0.0.1"));
    assert_eq!(signed.port(), Some(emulator.address().port()));
    assert_eq!(signed.path(), "/v1/convai/conversation");
    let query: Vec<(String, String)> = signed.query_pairs().into_owned().collect();
    assert_eq!(query[0], ("agent_id".to_owned(), AGENT.to_owned()));
    assert_eq!(query[1].0, "conversation_signature");
    assert!(query[1].1.len() >= 32);
    // The deprecated spelling works too, and every URL carries a new signature.
    let legacy = format!("{base}/v1/convai/conversation/get_signed_url?agent_id={AGENT}");
    let (status, again) = get(&legacy, Some(KEY)).await;
    assert_eq!(status, 200);
    assert_ne!(again["signed_url"], body["signed_url"]);
    // Unknown paths are FastAPI-style 404s.
    let (status, body) = get(&format!("{base}/v1/nothing"), Some(KEY)).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_url_opens_one_conversation_and_missing_unknown_or_reused_signatures_get_403() {
    let mut any_agent = config(script("Hi", vec![]));
    any_agent.agents = Vec::new();
    let emulator = ElevenLabsEmulator::start(any_agent).await.unwrap();
    let url = signed_url(&emulator).await;
    let mut ws = connect(&url).await.unwrap();

    let ws_base = url.split('?').next().unwrap().to_owned();
    let other_agent = {
        let (_, body) = get(
            &format!(
                "{}/v1/convai/conversation/get-signed-url?agent_id=agent_b",
                emulator.base_url()
            ),
            Some(KEY),
        )
        .await;
        let signed = body["signed_url"].as_str().unwrap().to_owned();
        signed.replace("agent_id=agent_b", &format!("agent_id={AGENT}"))
    };
    for refused in [
        url.clone(),
        format!("{ws_base}?agent_id={AGENT}"),
        format!("{ws_base}?agent_id={AGENT}&conversation_signature=0123456789abcdef"),
        other_agent,
    ] {
        match connect(&refused).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{refused}");
                let body: Value =
                    serde_json::from_slice(response.body().as_ref().unwrap()).unwrap();
                assert_eq!(body["detail"]["status"], "invalid_signature");
            }
            other => panic!("{refused} was not refused with 403: {other:?}"),
        }
    }
    // The first socket is a working conversation.
    send_json(&mut ws, &init(None)).await;
    let seen = drive(&mut ws, Drive::default()).await;
    assert_eq!(seen.types()[0], "conversation_initiation_metadata");
    assert_eq!(emulator.conversations().len(), 1);
    assert_eq!(emulator.conversations()[0].agent_id, AGENT);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_conversation_plays_in_order_with_pings_barge_in_and_the_agent_closing_1000() {
    let long =
        "Let me tell you about the complete history of our company, from the very first day.";
    let mut script = script(
        "Hello from the configured first message.",
        vec![
            turn("I need help.", 200, "Sure, what do you need help with?"),
            turn("Tell me everything.", 200, long),
            turn("Thanks, bye.", 100, "Goodbye!"),
        ],
    );
    script.barge_in_on_turn = Some(1);
    script.ping_interval = ms(40);
    let emulator = ElevenLabsEmulator::start(config(script)).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(Some("Hi Jane, this is Acme calling."))).await;
    let seen = drive(
        &mut ws,
        Drive {
            audio_every: Some(ms(20)),
            ..Drive::default()
        },
    )
    .await;

    // Metadata first, with the configured formats.
    let metadata = &seen.messages[0].1;
    assert_eq!(metadata["type"], "conversation_initiation_metadata");
    let event = &metadata["conversation_initiation_metadata_event"];
    let id = event["conversation_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("conv_") && id.len() > 10, "{id}");
    assert_eq!(event["agent_output_audio_format"], "ulaw_8000");
    assert_eq!(event["user_input_audio_format"], "ulaw_8000");

    // What was said, in order, with the override as the first message.
    let said: Vec<Value> = seen
        .messages
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m["type"] != "audio" && m["type"] != "ping")
        .skip(1)
        .cloned()
        .collect();
    let response = |text: &str| json!({"type": "agent_response", "agent_response_event": {"agent_response": text}});
    let user = |text: &str| json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": text}});
    assert_eq!(said.len(), 9, "{said:#?}");
    assert_eq!(said[0], response("Hi Jane, this is Acme calling."));
    assert_eq!(said[1], user("I need help."));
    assert_eq!(said[2], response("Sure, what do you need help with?"));
    assert_eq!(said[3], user("Tell me everything."));
    assert_eq!(said[4], response(long));
    assert_eq!(
        said[5],
        json!({"type": "interruption", "interruption_event": {"event_id": 3}})
    );
    assert_eq!(said[6]["type"], "agent_response_correction");
    let correction = &said[6]["agent_response_correction_event"];
    assert_eq!(correction["original_agent_response"], long);
    let corrected = correction["corrected_agent_response"].as_str().unwrap();
    assert!(corrected.ends_with("...") && long.starts_with(corrected.trim_end_matches("...")));
    assert!(corrected.len() < long.len() - 10, "{corrected}");
    assert_eq!(said[7], user("Thanks, bye."));
    assert_eq!(said[8], response("Goodbye!"));

    // Audio: event ids per response, chunk indexes counting up, and right after the
    // interruption exactly one stale chunk of the interrupted response.
    let all: Vec<&Value> = seen.messages.iter().map(|(_, m)| m).collect();
    let interruption = all
        .iter()
        .position(|m| m["type"] == "interruption")
        .unwrap();
    let after_interruption: Vec<&&Value> = all[interruption + 1..]
        .iter()
        .filter(|m| m["type"] != "ping")
        .collect();
    assert_eq!(after_interruption[0]["type"], "audio");
    assert_eq!(audio_event_id(after_interruption[0]), 3);
    assert_eq!(after_interruption[1]["type"], "agent_response_correction");
    let audio = seen.of_type("audio");
    let ids: Vec<u64> = audio.iter().map(|m| audio_event_id(m)).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&4));
    for (index, chunk) in audio.iter().enumerate() {
        let bytes = audio_bytes(chunk);
        assert_eq!(bytes.len(), 800, "100 ms of μ-law");
        assert_eq!(bytes[..4], (index as u32 + 1).to_be_bytes());
    }
    // The interrupted reply stopped after half its chunks (plus the stale one).
    let interrupted = ids.iter().filter(|id| **id == 3).count();
    let full = (long.chars().count() * 60).div_ceil(100);
    assert_eq!(interrupted, full / 2 + 1);

    // The agent ended the conversation with 1000.
    let close = seen.close.clone().flatten().expect("a close frame");
    assert_eq!(close.code, CloseCode::Normal);
    assert!(seen.ended);

    let record = emulator.wait_for_end(&id, WAIT).await.unwrap();
    assert_eq!(record.end, Some(ConversationEnd::AgentEnded));
    assert_eq!(record.status, ConversationStatus::Done);
    assert_eq!(record.agent_id, AGENT);
    assert_eq!(record.dynamic_variables["customer_name"], "Jane");
    assert_eq!(record.dynamic_variables["balance"], 12.5);
    assert_eq!(
        record.first_message_override.as_deref(),
        Some("Hi Jane, this is Acme calling.")
    );
    assert!(record.user_audio_chunks >= 25 && record.user_audio_chunks <= seen.audio_sent);
    assert_eq!(record.user_audio_bytes, record.user_audio_chunks * 160);
    assert_eq!(record.audio_chunks_sent, audio.len() as u64);
    assert_eq!(record.sent.len(), seen.messages.len());
    // Pings: every one the client answered before the close was matched, by id.
    let pings: Vec<u64> = seen
        .of_type("ping")
        .iter()
        .map(|p| p["ping_event"]["event_id"].as_u64().unwrap())
        .collect();
    assert!(pings.len() >= 3, "{pings:?}");
    assert_eq!(pings, (1..=pings.len() as u64).collect::<Vec<_>>());
    assert_eq!(record.pings_sent, pings.len() as u64);
    assert!(record.pongs.len() + 1 >= pings.len(), "{:?}", record.pongs);
    assert!(record.pongs.iter().all(|p| p.latency < ms(1000)));
    let pong_ids: Vec<u64> = record.pongs.iter().map(|p| p.event_id).collect();
    assert_eq!(pong_ids, pings[..pong_ids.len()]);
    assert_eq!(record.unmatched_pongs, 0);
    // Later pings report the measured round trip.
    assert!(seen.of_type("ping").last().unwrap()["ping_event"]["ping_ms"].is_u64());
    // The transcript as the post-call data will report it.
    let transcript: Vec<(TranscriptRole, &str, bool)> = record
        .transcript
        .iter()
        .map(|t| (t.role, t.message.as_str(), t.interrupted))
        .collect();
    assert_eq!(
        transcript,
        vec![
            (
                TranscriptRole::Agent,
                "Hi Jane, this is Acme calling.",
                false
            ),
            (TranscriptRole::User, "I need help.", false),
            (
                TranscriptRole::Agent,
                "Sure, what do you need help with?",
                false
            ),
            (TranscriptRole::User, "Tell me everything.", false),
            (TranscriptRole::Agent, corrected, true),
            (TranscriptRole::User, "Thanks, bye.", false),
            (TranscriptRole::Agent, "Goodbye!", false),
        ]
    );
    assert_eq!(record.transcript[4].original_message.as_deref(), Some(long));
    assert!(record.finished, "no webhook is configured");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_call_webhook_is_signed_over_the_exact_body_and_reports_the_conversation() {
    let receiver = Receiver::start(200).await;
    let mut config = config(script(
        "Hello!",
        vec![turn("Who is this?", 0, "This is Acme.")],
    ));
    config.script.analysis = ScriptedAnalysis {
        summary: "Short call.".to_owned(),
        call_successful: "success".to_owned(),
        data_collection: vec![
            ("call_outcome".to_owned(), json!("interested")),
            ("next_action_date".to_owned(), json!("2025-03-27")),
        ],
    };
    config.webhook = Some(WebhookTarget {
        url: receiver.url.clone(),
        secret: "whsec_test".to_owned(),
        delay: ms(100),
    });
    let emulator = ElevenLabsEmulator::start(config).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    let mut initiation = init(None);
    initiation["custom_llm_extra_body"] = json!({"temperature": 0.5});
    initiation["user_id"] = json!("user-7");
    send_json(&mut ws, &initiation).await;
    let seen = drive(&mut ws, Drive::default()).await;
    assert!(seen.close.is_some());
    let id = seen.messages[0].1["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ended, but the webhook waits for its delay.
    let ended = emulator.wait_for_end(&id, WAIT).await.unwrap();
    assert!(ended.webhook.is_none() && !ended.finished);
    let record = emulator.wait_for_finish(&id, WAIT).await.unwrap();
    let delivery = record.webhook.clone().unwrap();
    assert_eq!(delivery.http_status, Some(200));
    assert_eq!(delivery.error, None);

    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 1);
    let hook = &delivered[0];
    assert_eq!(hook.content_type.as_deref(), Some("application/json"));
    assert_eq!(hook.body.len(), delivery.body_bytes);
    let signature = hook.signature.clone().unwrap();
    assert_eq!(signature, delivery.signature);
    let timestamp = signature
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .unwrap();
    assert_eq!(
        signature,
        expected_signature("whsec_test", timestamp, &hook.body)
    );
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 60);

    let envelope: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(envelope["type"], "post_call_transcription");
    assert_eq!(
        envelope["event_timestamp"],
        timestamp.parse::<i64>().unwrap()
    );
    let data = &envelope["data"];
    assert_eq!(data["conversation_id"], id.as_str());
    assert_eq!(data["agent_id"], AGENT);
    assert_eq!(data["status"], "done");
    assert_eq!(data["user_id"], "user-7");
    let turns: Vec<(&str, &str)> = data["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["role"].as_str().unwrap(), t["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        turns,
        vec![
            ("agent", "Hello!"),
            ("user", "Who is this?"),
            ("agent", "This is Acme.")
        ]
    );
    assert!(data["transcript"][0]["time_in_call_secs"].is_u64());
    assert!(data["metadata"]["call_duration_secs"].is_u64());
    assert!(data["metadata"]["start_time_unix_secs"].as_i64().unwrap() <= now);
    let analysis = &data["analysis"];
    assert_eq!(analysis["transcript_summary"], "Short call.");
    assert_eq!(analysis["call_successful"], "success");
    assert_eq!(
        analysis["data_collection_results"]["call_outcome"]["data_collection_id"],
        "call_outcome"
    );
    assert_eq!(
        analysis["data_collection_results"]["call_outcome"]["value"],
        "interested"
    );
    assert!(analysis["data_collection_results"]["call_outcome"]["rationale"].is_string());
    assert_eq!(
        analysis["data_collection_results"]["next_action_date"]["value"],
        "2025-03-27"
    );
    let client_data = &data["conversation_initiation_client_data"];
    assert_eq!(
        client_data["dynamic_variables"],
        initiation["dynamic_variables"]
    );
    assert_eq!(
        client_data["custom_llm_extra_body"],
        json!({"temperature": 0.5})
    );

    // The conversation GET returns the same data.
    let (status, fetched) = get(
        &format!("{}/v1/convai/conversations/{id}", emulator.base_url()),
        Some(KEY),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&fetched, data);
    emulator.shutdown().await;
    receiver.server.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_receiver_is_recorded_and_not_retried() {
    let receiver = Receiver::start(500).await;
    let mut config = config(script("Hello!", vec![]));
    config.webhook = Some(WebhookTarget {
        url: receiver.url.clone(),
        secret: "s".to_owned(),
        delay: Duration::ZERO,
    });
    let emulator = ElevenLabsEmulator::start(config).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let seen = drive(&mut ws, Drive::default()).await;
    let id = seen.messages[0].1["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = emulator.wait_for_finish(&id, WAIT).await.unwrap();
    assert_eq!(record.webhook.unwrap().http_status, Some(500));
    tokio::time::sleep(ms(200)).await;
    assert_eq!(receiver.delivered().len(), 1);
    emulator.shutdown().await;
    receiver.server.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_conversation_is_in_progress_without_analysis_until_the_end_then_done() {
    let mut script = script("Hello there.", vec![turn("Hi.", 10_000, "Never said.")]);
    script.end_after_turns = false;
    let emulator = ElevenLabsEmulator::start(config(script)).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let seen = drive(
        &mut ws,
        Drive {
            stop_when: Some(Box::new(|seen: &Seen| seen.of_type("audio").len() >= 2)),
            ..Drive::default()
        },
    )
    .await;
    let id = seen.messages[0].1["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v1/convai/conversations/{id}", emulator.base_url());

    let (status, live) = get(&url, Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(live["status"], "in-progress");
    assert_eq!(live["analysis"], Value::Null);
    assert_eq!(live["transcript"][0]["message"], "Hello there.");
    assert_eq!(
        live["conversation_initiation_client_data"]["dynamic_variables"]["call_id"],
        "call-42"
    );
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    assert_eq!(get(&url, None).await.0, 401);
    let (status, body) = get(
        &format!(
            "{}/v1/convai/conversations/conv_unknown",
            emulator.base_url()
        ),
        Some(KEY),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["detail"]["status"].is_string());

    // The client hangs up.
    let seen = drive(
        &mut ws,
        Drive {
            close_when: Some(Box::new(|_: &Seen| true)),
            ..Drive::default()
        },
    )
    .await;
    assert!(seen.ended);
    let record = emulator.wait_for_end(&id, WAIT).await.unwrap();
    assert_eq!(
        record.end,
        Some(ConversationEnd::ClientClosed {
            code: Some(1000),
            reason: "client done".to_owned()
        })
    );
    let (status, done) = get(&url, Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(done["status"], "done");
    assert_eq!(
        done["analysis"]["transcript_summary"],
        ScriptedAnalysis::default().summary
    );
    assert_eq!(
        done["analysis"]["data_collection_results"]["call_sentiment"]["value"],
        "positive"
    );
    assert_eq!(
        done["metadata"]["termination_reason"],
        "Client disconnected: 1000"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_conversation_drops_the_socket_without_a_close_frame() {
    let mut script = script(
        "Hello, this will be cut off.",
        vec![turn("Hi.", 10_000, "Never.")],
    );
    script.end_after_turns = false;
    let mut config = config(script);
    config.audio_realtime = true;
    let emulator = ElevenLabsEmulator::start(config).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let seen = drive(
        &mut ws,
        Drive {
            stop_when: Some(Box::new(|seen: &Seen| !seen.of_type("audio").is_empty())),
            ..Drive::default()
        },
    )
    .await;
    let id = seen.messages[0].1["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(emulator.kill_conversation(&id));
    let seen = drive(&mut ws, Drive::default()).await;
    assert!(seen.ended);
    assert_eq!(seen.close, None, "no close frame");
    assert!(seen.error.is_some(), "{seen:?}");
    let record = emulator.wait_for_end(&id, WAIT).await.unwrap();
    assert_eq!(record.end, Some(ConversationEnd::Killed));
    assert_eq!(record.status, ConversationStatus::Done);
    assert!(!emulator.kill_conversation(&id));
    assert!(!emulator.kill_conversation("conv_unknown"));
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pcm_16000_output_format_is_reported_and_its_chunks_are_sized_for_it() {
    let mut config = config(script("Hi", vec![]));
    config.agent_output_format = "pcm_16000".to_owned();
    config.audio_chunk_ms = 20;
    let emulator = ElevenLabsEmulator::start(config).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let seen = drive(&mut ws, Drive::default()).await;
    let event = &seen.messages[0].1["conversation_initiation_metadata_event"];
    assert_eq!(event["agent_output_audio_format"], "pcm_16000");
    assert_eq!(event["user_input_audio_format"], "ulaw_8000");
    let audio = seen.of_type("audio");
    // "Hi" is 120 ms of speech: six 20 ms chunks of 16-bit samples at 16 kHz.
    assert_eq!(audio.len(), 6);
    assert!(audio.iter().all(|a| audio_bytes(a).len() == 640));
    emulator.shutdown().await;

    let bad = ElevenLabsEmulatorConfig {
        agent_output_format: "mp3_44100_128".to_owned(),
        ..ElevenLabsEmulatorConfig::default()
    };
    assert!(ElevenLabsEmulator::start(bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_client_messages_are_recorded_and_the_conversation_goes_on() {
    let mut script = script("", vec![turn("Hello?", 100, "Hi, how can I help?")]);
    script.end_after_turns = false;
    script.ping_interval = ms(30);
    let emulator = ElevenLabsEmulator::start(config(script)).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    // Audio before the initiation is counted, not heard.
    send_json(&mut ws, &audio_chunk(1600)).await;
    send_json(&mut ws, &init(Some(""))).await;
    for garbage in [
        json!({"type": "contextual_update", "text": "on the pricing page"}),
        json!({"type": "user_activity"}),
        json!({"type": "some_future_message", "x": [1, 2]}),
        json!({"no_type": true}),
        json!({"type": "pong", "event_id": 999}),
        json!({"type": "pong", "event_id": "not a number"}),
        json!({"user_audio_chunk": "%%% not base64 %%%"}),
        json!({"user_audio_chunk": 42}),
        init(None),
    ] {
        send_json(&mut ws, &garbage).await;
    }
    ws.send(Message::text("{not json")).await.unwrap();
    ws.send(Message::binary(vec![1_u8, 2, 3])).await.unwrap();
    // The empty first-message override: the agent waits for the user.
    let seen = drive(
        &mut ws,
        Drive {
            stop_when: Some(Box::new(|seen: &Seen| seen.of_type("ping").len() >= 3)),
            ..Drive::default()
        },
    )
    .await;
    assert_eq!(seen.types()[0], "conversation_initiation_metadata");
    assert!(
        seen.of_type("agent_response").is_empty(),
        "{:?}",
        seen.types()
    );
    // 100 ms of user audio after the initiation starts the turn.
    send_json(&mut ws, &audio_chunk(800)).await;
    let seen = drive(
        &mut ws,
        Drive {
            stop_when: Some(Box::new(|seen: &Seen| !seen.of_type("audio").is_empty())),
            ..Drive::default()
        },
    )
    .await;
    let said: Vec<&str> = seen
        .types()
        .into_iter()
        .filter(|t| *t != "ping")
        .take(2)
        .collect();
    assert_eq!(said, ["user_transcript", "agent_response"]);

    let id = emulator.conversations()[0].conversation_id.clone();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4000),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let record = emulator.wait_for_end(&id, WAIT).await.unwrap();
    assert_eq!(
        record.end,
        Some(ConversationEnd::ClientClosed {
            code: Some(4000),
            reason: "bye".to_owned()
        })
    );
    assert_eq!(record.first_message_override.as_deref(), Some(""));
    assert_eq!(record.first_message, "");
    assert_eq!(record.user_audio_chunks, 2);
    assert_eq!(record.user_audio_bytes, 2400);
    assert_eq!(record.user_audio_invalid, 1);
    assert_eq!(record.unmatched_pongs, 2);
    let kinds: Vec<&str> = record
        .other_client_messages
        .iter()
        .map(|m| m.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "contextual_update",
            "user_activity",
            "some_future_message",
            "<no type>",
            "<invalid json>",
            "conversation_initiation_client_data",
            "<invalid json>",
            "<binary>",
        ]
    );
    assert_eq!(record.transcript[0].role, TranscriptRole::User);
    assert!(
        record
            .sent_without_audio()
            .iter()
            .all(|m| !matches!(m, AgentMessage::AgentResponse { text } if text.is_empty()))
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_audio_is_paced_by_chunk_length_and_the_agent_closes_after_playback() {
    let mut config = config(script("abcd", vec![]));
    config.audio_realtime = true;
    config.audio_chunk_ms = 50;
    let emulator = ElevenLabsEmulator::start(config).await.unwrap();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let seen = drive(&mut ws, Drive::default()).await;
    let times: Vec<Instant> = seen
        .messages
        .iter()
        .filter(|(_, m)| m["type"] == "audio")
        .map(|(at, _)| *at)
        .collect();
    // 4 characters = 240 ms = five 50 ms chunks, 200 ms from first to last.
    assert_eq!(times.len(), 5);
    let spread = times[4] - times[0];
    assert!(spread >= ms(180) && spread < ms(600), "{spread:?}");
    let closed = emulator.conversations()[0].duration.unwrap();
    assert!(
        closed >= ms(240),
        "the close came before playback ended: {closed:?}"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_live_conversations_and_stops_serving() {
    let mut script = script("Hello.", vec![turn("Hi.", 10_000, "Never.")]);
    script.end_after_turns = false;
    let emulator = ElevenLabsEmulator::start(config(script)).await.unwrap();
    let base = emulator.base_url();
    let mut ws = connect(&signed_url(&emulator).await).await.unwrap();
    send_json(&mut ws, &init(None)).await;
    let _ = drive(
        &mut ws,
        Drive {
            stop_when: Some(Box::new(|seen: &Seen| !seen.messages.is_empty())),
            ..Drive::default()
        },
    )
    .await;
    emulator.shutdown().await;
    let seen = drive(&mut ws, Drive::default()).await;
    assert!(seen.ended && seen.close.is_none(), "{seen:?}");
    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{base}/v1/convai/conversation/get-signed-url?agent_id={AGENT}"
        ))
        .header("xi-api-key", KEY)
        .timeout(ms(2000))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}
