//! Twilio's media stream WebSocket: the signature is checked before the upgrade, and a signed
//! stream is bridged to the call's agent (over a real socket, against a fake agent), and
//! serving the TwiML prepares the agent connection.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use outcall_domain::analysis::PostCallReport;
use outcall_domain::ports::{AgentConnection, VoiceAgent, VoiceAgentError};
use outcall_domain::test_support::{call_fixture, client_fixture, stored_calls};
use outcall_domain::values::{AgentId, BoundedText, ConversationId};
use outcall_domain::{Call, CallStatus};
use outcall_http::{Api, ApiState, HttpSettings, ServerOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::{Mocks, send};

const SIGNATURE: &str = "c2lnbmVkLWJ5LXR3aWxpbw==";
const PATH: &str = "/twilio/media-stream";

// ---- a fake voice agent ---------------------------------------------------------------

/// The test's end of one agent conversation: plays ElevenLabs.
struct AgentPeer {
    agent_id: AgentId,
    to_bridge: mpsc::UnboundedSender<String>,
    from_bridge: mpsc::UnboundedReceiver<String>,
    closed: Arc<AtomicBool>,
}

impl AgentPeer {
    fn say(&self, message: Value) {
        self.to_bridge
            .send(message.to_string())
            .expect("the bridge holds the connection");
    }

    /// The next message the bridge sent, or `None` once it closed the connection.
    async fn next(&mut self) -> Option<Value> {
        within(self.from_bridge.recv())
            .await
            .map(|text| serde_json::from_str(&text).expect("the bridge sends JSON to the agent"))
    }
}

struct FakeConnection {
    to_peer: Option<mpsc::UnboundedSender<String>>,
    from_peer: mpsc::UnboundedReceiver<String>,
    closed: Arc<AtomicBool>,
}

#[async_trait]
impl AgentConnection for FakeConnection {
    async fn send(&mut self, text: String) -> Result<(), VoiceAgentError> {
        self.to_peer
            .as_ref()
            .and_then(|tx| tx.send(text).ok())
            .ok_or_else(|| VoiceAgentError::Closed("gone".into()))
    }

    async fn recv(&mut self) -> Option<Result<String, VoiceAgentError>> {
        self.from_peer.recv().await.map(Ok)
    }

    async fn close(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.to_peer = None;
    }
}

/// Hands every conversation it opens to the test.
struct FakeAgent {
    peers: mpsc::UnboundedSender<AgentPeer>,
    connects: Arc<AtomicUsize>,
}

#[async_trait]
impl VoiceAgent for FakeAgent {
    async fn connect(&self, agent: &AgentId) -> Result<Box<dyn AgentConnection>, VoiceAgentError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let (to_peer, from_bridge) = mpsc::unbounded_channel();
        let (to_bridge, from_peer) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let _ = self.peers.send(AgentPeer {
            agent_id: agent.clone(),
            to_bridge,
            from_bridge,
            closed: closed.clone(),
        });
        Ok(Box::new(FakeConnection {
            to_peer: Some(to_peer),
            from_peer,
            closed,
        }))
    }

    async fn fetch_report(
        &self,
        _: &ConversationId,
    ) -> Result<Option<PostCallReport>, VoiceAgentError> {
        Ok(None)
    }
}

/// Installs a fake agent as the bridge's; returns its conversations and connect count.
fn fake_agent(mocks: &mut Mocks) -> (mpsc::UnboundedReceiver<AgentPeer>, Arc<AtomicUsize>) {
    let (peers_tx, peers) = mpsc::unbounded_channel();
    let connects = Arc::new(AtomicUsize::new(0));
    mocks.bridge_agent = Some(Arc::new(FakeAgent {
        peers: peers_tx,
        connects: connects.clone(),
    }));
    (peers, connects)
}

// ---- the call ---------------------------------------------------------------------------

type Store = Arc<Mutex<Option<Call>>>;

/// The URL, parameters and signature a signature check was asked about.
type SignatureCheck = (String, Vec<(String, String)>, String);

/// `call_1` of client `c1`, answered, with agent `agent_1`; every lookup finds it.
fn live_call(mocks: &mut Mocks, status: CallStatus) -> Store {
    let mut call = call_fixture("c1", "call_1", status);
    call.data.agent_id = AgentId::parse("agent_1").ok();
    call.data.first_message = BoundedText::parse("Hi, this is Acme", 1000).ok();
    let store: Store = Arc::new(Mutex::new(Some(call)));
    mocks.calls = stored_calls(store.clone());
    mocks
        .clients
        .expect_find()
        .returning(|id| Ok(Some(client_fixture(id.as_str()))));
    store
}

fn stored(store: &Store) -> Call {
    store
        .lock()
        .expect("lock")
        .clone()
        .expect("the call exists")
}

// ---- Twilio's side ----------------------------------------------------------------------

fn start(call_id: &str) -> String {
    json!({
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"callId": call_id},
        },
        "streamSid": "MZ1",
    })
    .to_string()
}

const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
const STOP: &str = r#"{"event":"stop","sequenceNumber":"4","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;

fn media(payload: &str) -> String {
    json!({"event": "media", "sequenceNumber": "2", "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload}, "streamSid": "MZ1"}).to_string()
}

/// A masked client text frame, as a WebSocket client puts it on the wire.
fn client_text_frame(text: &str) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let payload = text.as_bytes();
    let mut frame = vec![0x81];
    match u8::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len),
        _ => {
            frame.push(0x80 | 126);
            let len = u16::try_from(payload.len()).expect("a short frame");
            frame.extend_from_slice(&len.to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// A WebSocket upgrade of the media stream path, carrying `connected` and `start` frames in
/// case anything were bridged.
fn upgrade() -> TestRequest {
    let mut body = client_text_frame(CONNECTED);
    body.extend(client_text_frame(&start("call_1")));
    TestRequest::get()
        .uri(PATH)
        .insert_header((header::UPGRADE, "websocket"))
        .insert_header((header::CONNECTION, "Upgrade"))
        .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
        .insert_header((header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="))
        .set_payload(body)
}

/// Fails a test that would otherwise hang.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("answered in time")
}

/// Waits (up to 10 s) for work on the server's worker thread.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Serves `state` the way outcall does (with the media stream's upgrade handler).
fn serve(state: ApiState, listener: TcpListener) -> actix_web::dev::ServerHandle {
    let api = Api::new(state, HttpSettings::default());
    let server = outcall_http::serve(
        api,
        listener,
        ServerOptions {
            shutdown_timeout_secs: 1,
        },
    )
    .expect("listening");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle
}

/// Sends `head` (a request head without its blank line) plus a `connected` and a `start`
/// frame, as a client that does not wait for the 101 would, and reads the whole answer until
/// the server closes the connection: the status code and the JSON body.
async fn raw_upgrade(port: u16, head: &str) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    let mut request = format!("{head}\r\n").into_bytes();
    request.extend(client_text_frame(CONNECTED));
    request.extend(client_text_frame(&start("call_1")));
    socket.write_all(&request).await.expect("sent");
    let mut answer = Vec::new();
    within(socket.read_to_end(&mut answer))
        .await
        .expect("read until the server closes");
    let answer = String::from_utf8(answer).expect("a text answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head[9..12].parse().expect("a status code");
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

fn upgrade_head(method: &str, path: &str, port: u16, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}"
    )
}

/// Lets tasks spawned on this thread run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

// ---- tests ------------------------------------------------------------------------------

#[actix_web::test]
async fn an_unsigned_or_wrongly_signed_upgrade_is_refused_before_any_agent_session() {
    for signature in [None, Some(""), Some("forged")] {
        let mut mocks = Mocks::new();
        let (_peers, connects) = fake_agent(&mut mocks);
        mocks.calls.expect_find_by_id().never();
        let mut req = upgrade();
        if let Some(value) = signature {
            req = req.insert_header(("X-Twilio-Signature", value));
        }
        if signature == Some("forged") {
            mocks
                .telephony
                .expect_verify_webhook()
                .times(1)
                .withf(|url, params, sig| {
                    url == "wss://calls.example.com/twilio/media-stream"
                        && params.is_empty()
                        && sig == "forged"
                })
                .return_const(false);
        } else {
            mocks.telephony.expect_verify_webhook().never();
        }
        let state = mocks.state();
        let stats = state.bridge.stats();
        let app = test::init_service(outcall_http::app(state, HttpSettings::default())).await;
        let reply = send(&app, req.to_request()).await;
        settle().await;

        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{signature:?}");
        assert_eq!(
            reply.body,
            json!({"error": "Invalid Twilio signature", "statusCode": 403})
        );
        assert_eq!(reply.header(header::UPGRADE), None, "{signature:?}");
        assert_eq!(connects.load(Ordering::SeqCst), 0, "{signature:?}");
        assert_eq!(stats.snapshot().sessions_total, 0, "{signature:?}");
    }
}

#[actix_web::test]
async fn the_served_upgrade_handler_refuses_unsigned_misdirected_and_malformed_upgrades() {
    // Every case answers its JSON error with a request id, upgrades nothing, closes the
    // connection and never opens an agent conversation or reads the frames sent after it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    let mut mocks = Mocks::new();
    let (_peers, connects) = fake_agent(&mut mocks);
    mocks.calls.expect_find_by_id().never();
    mocks
        .telephony
        .expect_verify_webhook()
        .returning(|_, _, signature| signature == SIGNATURE);
    let state = mocks.state();
    let stats = state.bridge.stats();
    let handle = serve(state, listener);

    let signed = "Sec-WebSocket-Version: 13\r\nX-Twilio-Signature: c2lnbmVkLWJ5LXR3aWxpbw==\r\n";
    let cases = [
        (
            upgrade_head("GET", PATH, port, "Sec-WebSocket-Version: 13\r\n"),
            403,
            "Invalid Twilio signature",
        ),
        (
            upgrade_head(
                "GET",
                PATH,
                port,
                "Sec-WebSocket-Version: 13\r\nX-Twilio-Signature: \r\n",
            ),
            403,
            "Invalid Twilio signature",
        ),
        (
            upgrade_head(
                "GET",
                PATH,
                port,
                "Sec-WebSocket-Version: 13\r\nX-Twilio-Signature: forged\r\n",
            ),
            403,
            "Invalid Twilio signature",
        ),
        (
            upgrade_head("GET", "/healthz", port, signed),
            404,
            "Not found",
        ),
        (
            upgrade_head("GET", "/twilio/media-stream/x", port, signed),
            404,
            "Not found",
        ),
        (
            upgrade_head("POST", PATH, port, signed),
            405,
            "Method Not Allowed",
        ),
        (
            upgrade_head(
                "GET",
                PATH,
                port,
                "Sec-WebSocket-Version: 8\r\nX-Twilio-Signature: c2lnbmVkLWJ5LXR3aWxpbw==\r\n",
            ),
            426,
            "Upgrade Required",
        ),
        (
            // No Sec-WebSocket-Key.
            format!(
                "GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\n{signed}"
            ),
            400,
            "Bad Request",
        ),
    ];
    for (head, status, error) in cases {
        let (got, answer_head, body) = raw_upgrade(port, &head).await;
        assert_eq!(got, status, "{head}");
        assert_eq!(body["error"], error, "{head}");
        assert_eq!(body["statusCode"], status, "{head}");
        let id = body["requestId"]
            .as_str()
            .expect("a request id in the body");
        assert!(
            answer_head.contains(&format!("x-request-id: {id}")),
            "{answer_head}"
        );
        assert!(answer_head.contains("connection: close"), "{answer_head}");
        assert!(!answer_head.contains("\r\nupgrade:"), "{answer_head}");
    }
    // A caller's own request id is kept.
    let (_, _, body) = raw_upgrade(
        port,
        &upgrade_head("GET", PATH, port, "X-Request-Id: trace-7\r\n"),
    )
    .await;
    assert_eq!(body["requestId"], "trace-7");

    settle().await;
    assert_eq!(connects.load(Ordering::SeqCst), 0);
    assert_eq!(stats.snapshot().sessions_total, 0);
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_signed_request_that_is_no_websocket_handshake_is_a_bad_request_and_bridges_nothing() {
    let mut mocks = Mocks::new();
    let (_peers, connects) = fake_agent(&mut mocks);
    mocks
        .telephony
        .expect_verify_webhook()
        .times(1)
        .return_const(true);
    let state = mocks.state();
    let stats = state.bridge.stats();
    let app = test::init_service(outcall_http::app(state, HttpSettings::default())).await;
    let req = TestRequest::get()
        .uri(PATH)
        .insert_header(("X-Twilio-Signature", SIGNATURE))
        .to_request();
    let reply = send(&app, req).await;
    settle().await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": "Bad Request", "statusCode": 400})
    );
    assert_eq!(connects.load(Ordering::SeqCst), 0);
    assert_eq!(stats.snapshot().sessions_total, 0);
}

#[actix_web::test]
async fn a_signed_upgrade_bridges_twilio_and_the_agent_both_ways_until_stop() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("bound").port();

    let mut mocks = Mocks::new();
    mocks.public_url = format!("http://127.0.0.1:{port}");
    let (mut peers, connects) = fake_agent(&mut mocks);
    let store = live_call(&mut mocks, CallStatus::InProgress);
    let checked: Arc<Mutex<Vec<SignatureCheck>>> = Arc::default();
    let record = checked.clone();
    mocks
        .telephony
        .expect_verify_webhook()
        .returning(move |url, params, signature| {
            record.lock().expect("lock").push((
                url.to_owned(),
                params.to_vec(),
                signature.to_owned(),
            ));
            true
        });
    let hang_ups = Arc::new(AtomicUsize::new(0));
    let counted = hang_ups.clone();
    mocks.telephony.expect_end_call().returning(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let state = mocks.state();
    let stats = state.bridge.stats();
    let server_handle = serve(state, listener);

    let mut request = format!("ws://127.0.0.1:{port}{PATH}")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("X-Twilio-Signature", HeaderValue::from_static(SIGNATURE));
    let (mut twilio, response) = within(tokio_tungstenite::connect_async(request))
        .await
        .expect("upgraded");
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(
        response.headers().get("x-request-id").map(|id| id.len()),
        Some(32),
        "the upgrade is answered with a request id"
    );
    assert_eq!(
        *checked.lock().expect("lock"),
        vec![(
            format!("ws://127.0.0.1:{port}/twilio/media-stream"),
            Vec::new(),
            SIGNATURE.to_owned()
        )]
    );

    twilio.send(Message::text(CONNECTED)).await.expect("sent");
    twilio
        .send(Message::text(start("call_1")))
        .await
        .expect("sent");
    let mut agent = within(peers.recv()).await.expect("the agent is connected");
    assert_eq!(agent.agent_id.as_str(), "agent_1");
    let client_data = agent.next().await.expect("client data first");
    assert_eq!(client_data["type"], "conversation_initiation_client_data");
    assert_eq!(
        client_data["dynamic_variables"]["outcall_call_id"],
        "call_1"
    );
    agent.say(json!({
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_1",
            "agent_output_audio_format": "ulaw_8000",
            "user_input_audio_format": "ulaw_8000",
        },
    }));

    // Pings are answered by the adapter, binary frames skipped: neither reaches the bridge.
    twilio
        .send(Message::Ping(b"are you there"[..].into()))
        .await
        .expect("sent");
    twilio
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("sent");
    twilio
        .send(Message::text(media("no+JhoaJjpzS/w==")))
        .await
        .expect("sent");
    assert_eq!(
        agent.next().await,
        Some(json!({"user_audio_chunk": "no+JhoaJjpzS/w=="}))
    );

    agent.say(
        json!({"type": "audio", "audio_event": {"audio_base_64": "f39+fX/+/w==", "event_id": 1}}),
    );
    // The adapter queued the pong when it read the ping, before the media frame.
    assert_eq!(
        within(twilio.next()).await.expect("open").expect("a frame"),
        Message::Pong(b"are you there"[..].into())
    );
    let outbound = match within(twilio.next()).await.expect("open").expect("a frame") {
        Message::Text(text) => serde_json::from_str::<Value>(&text).expect("JSON to Twilio"),
        other => panic!("expected the agent's audio, got {other:?}"),
    };
    assert_eq!(
        outbound,
        json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "f39+fX/+/w=="}})
    );

    twilio.send(Message::text(STOP)).await.expect("sent");
    let close = match within(twilio.next()).await {
        Some(Ok(Message::Close(frame))) => frame,
        other => panic!("expected a close frame, got {other:?}"),
    };
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Normal));
    assert!(matches!(
        within(twilio.next()).await,
        None | Some(Err(tungstenite::Error::ConnectionClosed))
    ));
    assert_eq!(agent.next().await, None, "the agent connection is closed");
    assert!(agent.closed.load(Ordering::SeqCst));

    eventually("the bridge finished", || {
        stats.snapshot().live_sessions == 0 && stats.snapshot().sessions_total == 1
    })
    .await;
    eventually("the end of the call is recorded", || {
        stored(&store)
            .data
            .end_reason
            .is_some_and(|reason| reason.as_str() == "the Twilio media stream stopped")
    })
    .await;
    let call = stored(&store);
    assert_eq!(
        call.data.conversation_id.as_ref().map(|id| id.as_str()),
        Some("conv_1")
    );
    assert_eq!(hang_ups.load(Ordering::SeqCst), 0, "Twilio ended the call");
    assert_eq!(connects.load(Ordering::SeqCst), 1);

    drop(twilio);
    server_handle.stop(true).await;
}

#[actix_web::test]
async fn serving_a_calls_twiml_starts_connecting_its_agent() {
    let mut mocks = Mocks::new();
    let (mut peers, connects) = fake_agent(&mut mocks);
    live_call(&mut mocks, CallStatus::Ringing);
    mocks.telephony.expect_verify_webhook().return_const(true);
    mocks
        .telephony
        .expect_stream_twiml()
        .returning(|_| "<Response/>".to_owned());
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;
    let twiml = TestRequest::get()
        .uri("/twilio/twiml?callId=call_1")
        .insert_header(("X-Twilio-Signature", SIGNATURE))
        .to_request();
    let response = test::call_service(&app, twiml).await;
    assert_eq!(response.status(), StatusCode::OK);

    let agent = within(peers.recv())
        .await
        .expect("the agent is being connected");
    assert_eq!(agent.agent_id.as_str(), "agent_1");
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}
