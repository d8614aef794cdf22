//! The shell against in-memory fakes: a Twilio socket over channels, a voice agent whose
//! connections are channels the test speaks through, and `LiveCalls` over the domain's mocks.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use outcall_domain::analysis::PostCallReport;
use outcall_domain::ports::{MockClientRepository, MockClock, MockTelephony};
use outcall_domain::test_support::{call_fixture, client_fixture, fixed_now, stored_calls};
use outcall_domain::values::{AgentId, BoundedText, CallSid};
use outcall_domain::{Call, CallStatus};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

// ---- Twilio side ----------------------------------------------------------------------

/// The bridge's end of a fake Twilio media stream socket.
struct FakeTwilio {
    incoming: mpsc::UnboundedReceiver<Result<String, String>>,
    outgoing: Option<mpsc::UnboundedSender<String>>,
}

impl Stream for FakeTwilio {
    type Item = Result<String, String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().incoming.poll_recv(cx)
    }
}

impl Sink<String> for FakeTwilio {
    type Error = &'static str;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.outgoing.as_ref().map(|_| ()).ok_or("closed"))
    }

    fn start_send(self: Pin<&mut Self>, item: String) -> Result<(), Self::Error> {
        let outgoing = self.outgoing.as_ref().ok_or("closed")?;
        outgoing.send(item).map_err(|_| "peer gone")
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().outgoing = None;
        Poll::Ready(Ok(()))
    }
}

/// The test's end: plays Twilio.
struct Caller {
    to_bridge: Option<mpsc::UnboundedSender<Result<String, String>>>,
    from_bridge: mpsc::UnboundedReceiver<String>,
}

impl Caller {
    fn send(&self, text: impl Into<String>) {
        if let Some(tx) = &self.to_bridge {
            tx.send(Ok(text.into())).expect("bridge listening");
        }
    }

    /// Drops the socket without `stop`.
    fn hang_up_socket(&mut self) {
        self.to_bridge = None;
    }

    async fn next(&mut self) -> Option<Value> {
        within(self.from_bridge.recv())
            .await
            .map(|text| serde_json::from_str(&text).expect("the bridge sends JSON to Twilio"))
    }
}

fn twilio_pair() -> (FakeTwilio, Caller) {
    let (to_bridge, incoming) = mpsc::unbounded_channel();
    let (outgoing, from_bridge) = mpsc::unbounded_channel();
    (
        FakeTwilio {
            incoming,
            outgoing: Some(outgoing),
        },
        Caller {
            to_bridge: Some(to_bridge),
            from_bridge,
        },
    )
}

const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
const STOP: &str = r#"{"event":"stop","sequenceNumber":"99","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;

fn start(parameters: Value) -> String {
    json!({
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": parameters,
        },
        "streamSid": "MZ1",
    })
    .to_string()
}

fn media(payload: &str) -> String {
    json!({"event": "media", "sequenceNumber": "2", "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload}, "streamSid": "MZ1"}).to_string()
}

// ---- agent side -----------------------------------------------------------------------

enum ToBridge {
    Text(String),
    Fail(String),
}

struct FakeConnection {
    to_peer: Option<mpsc::UnboundedSender<String>>,
    from_peer: mpsc::UnboundedReceiver<ToBridge>,
    closed: Arc<AtomicBool>,
    rehomed: Arc<AtomicBool>,
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
        match self.from_peer.recv().await? {
            ToBridge::Text(text) => Some(Ok(text)),
            ToBridge::Fail(error) => Some(Err(VoiceAgentError::Closed(error))),
        }
    }

    async fn close(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        self.to_peer = None;
    }

    fn rehome(&mut self) {
        self.rehomed.store(true, Ordering::Relaxed);
    }
}

/// The test's end of one agent conversation: plays ElevenLabs.
struct AgentPeer {
    agent_id: AgentId,
    to_bridge: Option<mpsc::UnboundedSender<ToBridge>>,
    from_bridge: mpsc::UnboundedReceiver<String>,
    closed: Arc<AtomicBool>,
    /// The bridge moved the connection to the task that claimed it.
    rehomed: Arc<AtomicBool>,
    next_ping: u64,
}

impl AgentPeer {
    fn say(&self, text: impl Into<String>) {
        if let Some(tx) = &self.to_bridge {
            // The bridge may be gone already when a test races it on purpose.
            let _ = tx.send(ToBridge::Text(text.into()));
        }
    }

    fn fail(&self, error: &str) {
        if let Some(tx) = &self.to_bridge {
            let _ = tx.send(ToBridge::Fail(error.into()));
        }
    }

    /// Ends the conversation normally.
    fn end(&mut self) {
        self.to_bridge = None;
    }

    async fn next(&mut self) -> Option<Value> {
        within(self.from_bridge.recv())
            .await
            .map(|text| serde_json::from_str(&text).expect("the bridge sends JSON to the agent"))
    }

    /// Returns once the bridge handled everything said before (the pong follows it).
    async fn sync(&mut self) {
        self.next_ping += 1;
        let id = 1_000_000 + self.next_ping;
        self.say(json!({"type": "ping", "ping_event": {"event_id": id}}).to_string());
        loop {
            let message = self.next().await.expect("bridge still connected");
            if message == json!({"type": "pong", "event_id": id}) {
                return;
            }
        }
    }

    fn ready(&self, conversation_id: &str) {
        self.say(
            json!({
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": conversation_id,
                    "agent_output_audio_format": "ulaw_8000",
                    "user_input_audio_format": "ulaw_8000",
                },
            })
            .to_string(),
        );
    }
}

fn agent_audio(payload: &str, event_id: u64) -> String {
    json!({"type": "audio", "audio_event": {"audio_base_64": payload, "event_id": event_id}})
        .to_string()
}

struct FakeAgent {
    peers: mpsc::UnboundedSender<AgentPeer>,
    connects: Arc<AtomicUsize>,
    refuse: bool,
}

#[async_trait]
impl VoiceAgent for FakeAgent {
    async fn connect(&self, agent: &AgentId) -> Result<Box<dyn AgentConnection>, VoiceAgentError> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        if self.refuse {
            return Err(VoiceAgentError::Rejected("unknown agent".into()));
        }
        let (to_peer, from_bridge) = mpsc::unbounded_channel();
        let (to_bridge, from_peer) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let rehomed = Arc::new(AtomicBool::new(false));
        let _ = self.peers.send(AgentPeer {
            agent_id: agent.clone(),
            to_bridge: Some(to_bridge),
            from_bridge,
            closed: closed.clone(),
            rehomed: rehomed.clone(),
            next_ping: 0,
        });
        Ok(Box::new(FakeConnection {
            to_peer: Some(to_peer),
            from_peer,
            closed,
            rehomed,
        }))
    }

    async fn fetch_report(
        &self,
        _: &ConversationId,
    ) -> Result<Option<PostCallReport>, VoiceAgentError> {
        Ok(None)
    }
}

// ---- the call and the bridge ----------------------------------------------------------

type Store = Arc<Mutex<Option<Call>>>;

fn live_call() -> Store {
    let mut call = call_fixture("c1", "call_1", CallStatus::InProgress);
    call.data.agent_id = AgentId::parse("agent_1").ok();
    call.data.call_sid = CallSid::parse("CA0123456789abcdef0123456789abcdef").ok();
    call.data.first_message = BoundedText::parse("Hi, this is Acme", 1000).ok();
    Arc::new(Mutex::new(Some(call)))
}

fn stored(store: &Store) -> Call {
    store
        .lock()
        .expect("lock")
        .clone()
        .expect("the call exists")
}

fn telephony(hang_ups: usize) -> MockTelephony {
    let mut telephony = MockTelephony::new();
    telephony
        .expect_end_call()
        .times(hang_ups)
        .returning(|_| Ok(()));
    telephony
}

struct Harness {
    bridge: MediaBridge,
    store: Store,
    peers: mpsc::UnboundedReceiver<AgentPeer>,
    connects: Arc<AtomicUsize>,
}

fn harness_with(
    store: Store,
    telephony: MockTelephony,
    refuse: bool,
    config: BridgeConfig,
) -> Harness {
    let mut clients = MockClientRepository::new();
    clients
        .expect_find()
        .returning(|id| Ok(Some(client_fixture(id.as_str()))));
    let mut clock = MockClock::new();
    clock.expect_now().return_const(fixed_now());
    let live = LiveCalls::new(
        Arc::new(stored_calls(store.clone())),
        Arc::new(clients),
        Arc::new(telephony),
        Arc::new(clock),
    );
    let (peers_tx, peers) = mpsc::unbounded_channel();
    let connects = Arc::new(AtomicUsize::new(0));
    let agent = FakeAgent {
        peers: peers_tx,
        connects: connects.clone(),
        refuse,
    };
    Harness {
        bridge: MediaBridge::new(live, Arc::new(agent), config),
        store,
        peers,
        connects,
    }
}

fn harness(hang_ups: usize) -> Harness {
    harness_with(
        live_call(),
        telephony(hang_ups),
        false,
        BridgeConfig::default(),
    )
}

impl Harness {
    /// Starts a stream for `call_1` and returns both peers with the client data consumed.
    async fn connected_call(&mut self) -> (tokio::task::JoinHandle<()>, Caller, AgentPeer, Value) {
        let (twilio, caller) = twilio_pair();
        let bridge = self.bridge.clone();
        let run = tokio::spawn(async move { bridge.run(twilio).await });
        caller.send(CONNECTED);
        caller.send(start(json!({"callId": "call_1"})));
        let mut peer = within(self.peers.recv())
            .await
            .expect("the agent is connected");
        let client_data = peer.next().await.expect("client data first");
        (run, caller, peer, client_data)
    }
}

/// Fails a test that would otherwise hang (paused-time tests reach this instantly).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the bridge answered in time")
}

/// Lets the bridge's own work (storage writes happen beside the relay) catch up.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

// ---- tests ----------------------------------------------------------------------------

#[tokio::test]
async fn frames_cross_unchanged_and_in_order_both_ways_and_the_call_records_what_it_learned() {
    let mut h = harness(0);
    let (run, mut caller, mut peer, client_data) = h.connected_call().await;
    assert_eq!(peer.agent_id.as_str(), "agent_1");
    assert_eq!(client_data["type"], "conversation_initiation_client_data");
    assert_eq!(
        client_data["dynamic_variables"]["outcall_call_id"],
        "call_1"
    );
    assert_eq!(
        client_data["conversation_config_override"]["agent"]["first_message"],
        "Hi, this is Acme"
    );

    caller.send(media("early+/=="));
    caller.send("not json");
    peer.say("{");
    peer.ready("conv_42");
    let inbound: Vec<String> = (0..200).map(|i| format!("in{i}/+AbC==")).collect();
    let outbound: Vec<String> = (0..200).map(|i| format!("out{i}+/xyz=")).collect();
    for (i, o) in inbound.iter().zip(&outbound) {
        caller.send(media(i));
        peer.say(agent_audio(o, 1));
    }

    let mut to_agent = Vec::new();
    while to_agent.len() < 201 {
        let message = peer.next().await.expect("connected");
        let payload = message["user_audio_chunk"].as_str().expect("only audio");
        to_agent.push(payload.to_owned());
    }
    let mut expected = vec!["early+/==".to_owned()];
    expected.extend(inbound);
    assert_eq!(to_agent, expected);

    let mut to_twilio = Vec::new();
    while to_twilio.len() < 200 {
        let message = caller.next().await.expect("connected");
        assert_eq!(message["event"], "media");
        assert_eq!(message["streamSid"], "MZ1");
        to_twilio.push(
            message["media"]["payload"]
                .as_str()
                .expect("payload")
                .to_owned(),
        );
    }
    assert_eq!(to_twilio, outbound);

    peer.say(r#"{"type":"agent_response","agent_response_event":{"agent_response":"Hello!"}}"#);
    peer.say(r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"Who is this?"}}"#);
    peer.sync().await;
    caller.send(STOP);
    within(run).await.expect("the bridge ends cleanly");

    assert!(
        peer.closed.load(Ordering::Relaxed),
        "the agent socket was closed"
    );
    assert_eq!(caller.next().await, None, "the Twilio socket was closed");
    let call = stored(&h.store);
    assert_eq!(
        call.data
            .conversation_id
            .as_ref()
            .map(ConversationId::as_str),
        Some("conv_42")
    );
    assert_eq!(
        call.details.transcript.as_ref().map(BoundedText::as_str),
        Some("Agent: Hello!\nUser: Who is this?"),
        "the transcript held back by the debounce is written at the end"
    );
    assert_eq!(
        call.data.end_reason.as_ref().map(BoundedText::as_str),
        Some("the Twilio media stream stopped")
    );
    let stats = h.bridge.stats().snapshot();
    assert_eq!(stats.frames_to_agent, 201);
    assert_eq!(stats.frames_to_twilio, 200);
    assert_eq!(stats.malformed_messages, 2);
    assert_eq!(stats.live_sessions, 0);
}

#[tokio::test]
async fn an_agent_failure_mid_call_closes_twilio_hangs_up_and_records_why() {
    let mut h = harness(1);
    let (run, mut caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    peer.fail("connection reset by peer");
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(caller.next().await, None, "the Twilio socket was closed");
    let call = stored(&h.store);
    assert_eq!(
        call.data.end_reason.as_ref().map(BoundedText::as_str),
        Some("the agent connection failed: the connection closed unexpectedly")
    );
    // `h` drops here: mockall checks that end_call ran exactly once.
}

#[tokio::test]
async fn an_agent_that_ends_the_conversation_hangs_up_the_call() {
    let mut h = harness(1);
    let (run, mut caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    peer.end();
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(caller.next().await, None);
    assert_eq!(
        stored(&h.store)
            .data
            .end_reason
            .as_ref()
            .map(BoundedText::as_str),
        Some("the agent ended the conversation")
    );
}

#[tokio::test]
async fn a_twilio_socket_dropped_without_stop_closes_the_agent_without_hanging_up() {
    let mut h = harness(0);
    let (run, mut caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    caller.hang_up_socket();
    within(run).await.expect("the bridge ends cleanly");
    assert!(peer.closed.load(Ordering::Relaxed));
    assert_eq!(peer.next().await, None, "the agent connection is gone");
    assert_eq!(
        stored(&h.store)
            .data
            .end_reason
            .as_ref()
            .map(BoundedText::as_str),
        Some("the Twilio media stream closed without stopping")
    );
}

#[tokio::test]
async fn an_agent_speaking_the_wrong_format_fails_the_call() {
    let mut h = harness(1);
    let (run, mut caller, peer, _) = h.connected_call().await;
    caller.send(media("AAAA"));
    peer.say(r#"{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"conv_7","agent_output_audio_format":"pcm_16000","user_input_audio_format":"pcm_16000"}}"#);
    peer.say(agent_audio("noise", 1));
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(caller.next().await, None, "no noise reached the caller");
    let call = stored(&h.store);
    assert_eq!(call.data.status(), CallStatus::Failed);
    assert!(
        call.data
            .end_reason
            .as_ref()
            .is_some_and(|r| r.as_str().contains("pcm_16000")),
        "{:?}",
        call.data.end_reason
    );
    assert_eq!(
        call.data
            .conversation_id
            .as_ref()
            .map(ConversationId::as_str),
        Some("conv_7")
    );
}

#[tokio::test]
async fn an_agent_that_cannot_be_connected_fails_the_call() {
    let mut h = harness_with(live_call(), telephony(1), true, BridgeConfig::default());
    let (twilio, mut caller) = twilio_pair();
    caller.send(start(json!({"callId": "call_1"})));
    within(h.bridge.run(twilio)).await;
    assert_eq!(caller.next().await, None);
    assert!(h.peers.try_recv().is_err());
    let call = stored(&h.store);
    assert_eq!(call.data.status(), CallStatus::Failed);
    assert_eq!(
        call.data.end_reason.as_ref().map(BoundedText::as_str),
        Some("could not connect the agent: the provider refused the conversation")
    );
}

#[tokio::test]
async fn a_refused_stream_is_closed_and_never_connects_the_agent() {
    let ended = live_call();
    if let Some(call) = ended.lock().expect("lock").as_mut() {
        call.apply_status(CallStatus::Completed, fixed_now());
    }
    let cases = [
        (ended, json!({"callId": "call_1"})),
        (
            live_call(),
            json!({"callId": "call_1", "agentId": "someone_elses_agent"}),
        ),
        (live_call(), json!({"callId": "not a valid id!"})),
        (live_call(), json!({})),
    ];
    for (store, parameters) in cases {
        let h = harness_with(store, telephony(0), false, BridgeConfig::default());
        let (twilio, mut caller) = twilio_pair();
        caller.send(CONNECTED);
        caller.send(start(parameters.clone()));
        caller.send(media("AAAA"));
        within(h.bridge.run(twilio)).await;
        assert_eq!(caller.next().await, None, "{parameters}: closed");
        assert_eq!(h.connects.load(Ordering::Relaxed), 0, "{parameters}");
        assert_eq!(stored(&h.store).data.end_reason, None, "{parameters}");
        assert_eq!(
            h.bridge.stats().snapshot().streams_refused,
            1,
            "{parameters}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_twilio_stream_is_ended_and_hung_up_after_the_idle_timeout() {
    let mut h = harness(1);
    let began = Instant::now();
    let (run, _caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    within(run).await.expect("the bridge ends cleanly");
    assert!(began.elapsed() >= Duration::from_secs(30));
    assert!(began.elapsed() < Duration::from_secs(31));
    assert_eq!(
        stored(&h.store)
            .data
            .end_reason
            .as_ref()
            .map(BoundedText::as_str),
        Some("no message from the Twilio media stream for 30 s")
    );
}

#[tokio::test(start_paused = true)]
async fn the_live_transcript_is_stored_at_most_every_interval() {
    let mut h = harness(0);
    let (run, caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.say(r#"{"type":"agent_response","agent_response_event":{"agent_response":"One."}}"#);
    peer.sync().await;
    let transcript = |store: &Store| {
        stored(store)
            .details
            .transcript
            .map(BoundedText::into_string)
    };
    eventually("the first line is stored at once", || {
        transcript(&h.store).as_deref() == Some("Agent: One.")
    })
    .await;
    peer.say(r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"Two."}}"#);
    peer.sync().await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        transcript(&h.store).as_deref(),
        Some("Agent: One."),
        "held back within the interval"
    );
    // Nothing else happens: the bridge's own timer must write the held line.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    eventually("the held line is stored after the interval", || {
        transcript(&h.store).as_deref() == Some("Agent: One.\nUser: Two.")
    })
    .await;
    caller.send(STOP);
    within(run).await.expect("the bridge ends cleanly");
}

#[tokio::test]
async fn a_prepared_agent_connection_is_used_by_its_stream() {
    let mut h = harness(0);
    let call_id = CallId::parse("call_1").expect("valid");
    h.bridge.prepare(&call_id);
    h.bridge.prepare(&call_id);
    let mut peer = h
        .peers
        .recv()
        .await
        .expect("connected before the stream starts");
    assert_eq!(h.connects.load(Ordering::Relaxed), 1, "prepared once");

    let (twilio, mut caller) = twilio_pair();
    let bridge = h.bridge.clone();
    let run = tokio::spawn(async move { bridge.run(twilio).await });
    caller.send(start(json!({"callId": "call_1"})));
    assert!(!peer.rehomed.load(Ordering::Relaxed), "not claimed yet");
    let client_data = peer.next().await.expect("client data");
    assert_eq!(client_data["type"], "conversation_initiation_client_data");
    assert!(
        peer.rehomed.load(Ordering::Relaxed),
        "the claiming task took the prepared connection over before using it"
    );
    peer.ready("conv_1");
    peer.say(agent_audio("hello", 1));
    assert_eq!(
        caller.next().await.expect("audio")["media"]["payload"],
        "hello"
    );
    caller.send(STOP);
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(
        h.connects.load(Ordering::Relaxed),
        1,
        "no second connection"
    );
    eventually("the preparing task ended", || {
        h.bridge.stats().snapshot().prepared_sessions == 0
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_unclaimed_prepared_connection_is_closed_after_its_timeout() {
    let mut h = harness(0);
    h.bridge.prepare(&CallId::parse("call_1").expect("valid"));
    let mut peer = within(h.peers.recv()).await.expect("connected");
    let began = Instant::now();
    assert_eq!(peer.next().await, None, "closed without a word");
    assert!(peer.closed.load(Ordering::Relaxed));
    assert!(began.elapsed() >= Duration::from_secs(7));
    eventually("nothing is left", || {
        h.bridge.stats().snapshot().prepared_sessions == 0 && h.bridge.shared.prepared().is_empty()
    })
    .await;

    // A stream landing afterwards connects normally.
    let (twilio, caller) = twilio_pair();
    let bridge = h.bridge.clone();
    let run = tokio::spawn(async move { bridge.run(twilio).await });
    caller.send(start(json!({"callId": "call_1"})));
    let mut fresh = within(h.peers.recv()).await.expect("connected again");
    assert_eq!(
        fresh.next().await.expect("client data")["type"],
        "conversation_initiation_client_data"
    );
    caller.send(STOP);
    within(run).await.expect("the bridge ends cleanly");
}

#[tokio::test(start_paused = true)]
async fn draining_lets_live_calls_finish_then_cuts_and_hangs_up_the_rest() {
    let mut h = harness(1);
    let (run, caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    // Keep the stream alive past the drain timeout so it must be cut.
    let feeder = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            caller.send(media("AAAA"));
        }
        caller
    });
    let began = Instant::now();
    assert_eq!(h.bridge.drain(Duration::from_secs(5)).await, 1);
    assert!(began.elapsed() >= Duration::from_secs(5));
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(
        stored(&h.store)
            .data
            .end_reason
            .as_ref()
            .map(BoundedText::as_str),
        Some("outcall shut down during the call")
    );
    feeder.abort();

    let (twilio, mut late) = twilio_pair();
    late.send(start(json!({"callId": "call_1"})));
    within(h.bridge.run(twilio)).await;
    assert_eq!(late.next().await, None, "no new stream while draining");
    assert_eq!(h.connects.load(Ordering::Relaxed), 1);
    assert_eq!(h.bridge.drain(Duration::from_secs(5)).await, 0);
}

#[tokio::test(start_paused = true)]
async fn draining_waits_for_a_call_that_finishes_in_time() {
    let mut h = harness(0);
    let (run, caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    let began = Instant::now();
    let finisher = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        caller.send(STOP);
    };
    let (cut, ()) = tokio::join!(h.bridge.drain(Duration::from_secs(10)), finisher);
    assert_eq!(cut, 0);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "returned once the call ended"
    );
    within(run).await.expect("the bridge ends cleanly");
    assert_eq!(
        stored(&h.store)
            .data
            .end_reason
            .as_ref()
            .map(BoundedText::as_str),
        Some("the Twilio media stream stopped")
    );
}

#[test]
fn the_bridge_future_is_send_for_a_send_transport() {
    fn assert_send<T: Send>(_: &T) {}
    let h = harness(0);
    let (twilio, _caller) = twilio_pair();
    let run = h.bridge.run(twilio);
    assert_send(&run);
}

#[tokio::test]
async fn a_thousand_short_calls_leave_no_session_task_or_prepared_connection_behind() {
    let mut h = harness(0);
    let call_id = CallId::parse("call_1").expect("valid");
    for i in 0..1000 {
        if i % 2 == 0 {
            h.bridge.prepare(&call_id);
        }
        let (twilio, mut caller) = twilio_pair();
        let peers = &mut h.peers;
        let script = async {
            caller.send(CONNECTED);
            caller.send(start(json!({"callId": "call_1"})));
            let mut peer = within(peers.recv()).await.expect("connected");
            peer.next().await.expect("client data");
            caller.send(media("in"));
            peer.ready("conv_1");
            peer.say(agent_audio("out", 1));
            assert_eq!(peer.next().await.expect("audio")["user_audio_chunk"], "in");
            assert_eq!(
                caller.next().await.expect("audio")["media"]["payload"],
                "out"
            );
            caller.send(STOP);
            assert_eq!(peer.next().await, None, "agent closed");
        };
        tokio::join!(h.bridge.run(twilio), script);
    }
    eventually("every preparing task ended", || {
        h.bridge.stats().snapshot().prepared_sessions == 0
    })
    .await;
    let stats = h.bridge.stats().snapshot();
    assert_eq!(stats.live_sessions, 0);
    assert_eq!(stats.sessions_total, 1000);
    assert_eq!(stats.frames_to_agent, 1000);
    assert_eq!(stats.frames_to_twilio, 1000);
    assert!(h.bridge.shared.prepared().is_empty());
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(tasks, 0, "no task outlives its call");
}

#[tokio::test]
async fn relayed_frames_are_timed_per_direction_and_pongs_are_not() {
    // A recorder of this test's own: the test and the bridge run on this one thread.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let mut h = harness(0);
    let (run, mut caller, mut peer, _) = h.connected_call().await;
    peer.ready("conv_1");
    peer.sync().await;
    for i in 0..3 {
        caller.send(media(&format!("in{i}")));
        peer.say(agent_audio(&format!("out{i}"), 1));
    }
    for _ in 0..3 {
        assert!(peer.next().await.expect("connected")["user_audio_chunk"].is_string());
        assert_eq!(caller.next().await.expect("connected")["event"], "media");
    }
    peer.sync().await;
    caller.send(STOP);
    within(run).await.expect("the bridge ends cleanly");

    let text = metrics.render();
    for line in [
        r#"bridge_relay_latency_seconds_count{direction="caller_to_agent"} 3"#,
        r#"bridge_relay_latency_seconds_count{direction="agent_to_caller"} 3"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
