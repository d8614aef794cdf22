//! ElevenLabs' side of a conversation WebSocket (protocols 6): the signed upgrade, initiation,
//! metadata, the scripted agent, pings, barge-in, and the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use super::front::Prefixed;
use super::ids::random_id;
use super::report::{self, error_chain};
use super::state::{Shared, after};
use super::{
    AgentMessage, ClientMessageRecord, ConversationEnd, ConversationRecord, ConversationStatus,
    PongRecord, SentMessage, TranscriptEntry, TranscriptRole,
};

/// How long the client has to send `conversation_initiation_client_data`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that stops reading must not hold a conversation forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Client messages are small (audio chunks, pongs, an initiation with a prompt override).
const MAX_CLIENT_MESSAGE: usize = 128 * 1024;
const MAX_RECORDED_SENT: usize = 4096;
const MAX_RECORDED_OTHER: usize = 256;
const MAX_RECORDED_OTHER_TEXT: usize = 1024;
const MAX_RECORDED_PONGS: usize = 1024;
/// Pings awaiting a pong; older ones are forgotten (and a late pong for them is unmatched).
const MAX_OUTSTANDING_PINGS: usize = 64;

type Socket = WebSocketStream<Prefixed>;
type Sink = SplitSink<Socket, Message>;
type Incoming = SplitStream<Socket>;

#[derive(Serialize)]
struct AudioOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    audio_event: AudioEvent<'a>,
}

#[derive(Serialize)]
struct AudioEvent<'a> {
    audio_base_64: &'a str,
    event_id: u64,
}

/// Just enough of a client message to dispatch it.
#[derive(Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    user_audio_chunk: Option<String>,
    event_id: Option<Value>,
}

pub(crate) async fn serve(shared: Arc<Shared>, stream: Prefixed) {
    let mut agent: Option<String> = None;
    // The callback's types are tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| match authorize(&shared, request) {
        Ok(agent_id) => {
            agent = Some(agent_id);
            Ok(response)
        }
        Err(reason) => Err(forbidden(reason)),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let accepted =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await;
    let (Ok(socket), Some(agent_id)) = (accepted, agent) else {
        // Refused (403 written) or not a usable handshake.
        return;
    };

    let id = random_id("conv_", 16);
    let kill = shared.insert_conversation(new_record(&id, agent_id));
    let (mut sink, mut incoming) = socket.split();
    let mut session = Session {
        shared: &shared,
        id: id.clone(),
        opened: Instant::now(),
        started: None,
        next_event_id: 0,
        next_ping_id: 0,
        outstanding_pings: VecDeque::new(),
        last_round_trip_ms: None,
        audio_index: 0,
        speech: None,
        next_turn: 0,
        heard_bytes: 0,
        decoded: Vec::new(),
    };
    let end = session.run(&mut sink, &mut incoming, &kill).await;
    match &end {
        // Dropped without a close frame, as a crashed server would.
        ConversationEnd::Killed | ConversationEnd::Dropped { .. } => {}
        // tungstenite queued the close reply; send it.
        ConversationEnd::ClientClosed { .. } => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
        }
        ConversationEnd::AgentEnded => {
            close(
                &mut sink,
                &mut incoming,
                CloseCode::Normal,
                "conversation ended",
            )
            .await;
        }
        ConversationEnd::NoInitiation => {
            let reason = "no conversation_initiation_client_data received";
            close(&mut sink, &mut incoming, CloseCode::Policy, reason).await;
        }
    }
    drop((sink, incoming));

    let initiated = session.started.is_some();
    let webhook = shared.config.webhook.clone().filter(|_| initiated);
    shared.update(&id, |record| {
        record.status = if initiated {
            ConversationStatus::Done
        } else {
            ConversationStatus::Failed
        };
        record.duration = session.started.map(|s| s.elapsed());
        record.end = Some(end);
        record.finished = webhook.is_none();
    });
    if let Some(target) = webhook {
        let task = report::deliver_webhook(shared.clone(), id.clone(), target);
        if !shared.tasks.spawn(task) {
            shared.update(&id, |record| record.finished = true);
        }
    }
}

/// Checks the signed URL's single-use signature; returns the agent it was issued for.
fn authorize(shared: &Shared, request: &Request) -> Result<String, &'static str> {
    let query = request.uri().query().unwrap_or_default();
    let mut agent_id = None;
    let mut signature = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "agent_id" => agent_id = Some(value.into_owned()),
            "conversation_signature" => signature = Some(value.into_owned()),
            _ => {}
        }
    }
    let signature = signature.ok_or("the conversation_signature is missing")?;
    let granted = shared
        .take_grant(&signature)
        .ok_or("the conversation_signature is unknown, expired or already used")?;
    match agent_id {
        Some(agent_id) if agent_id != granted => {
            Err("the conversation_signature was issued for another agent")
        }
        _ => Ok(granted),
    }
}

fn forbidden(reason: &str) -> ErrorResponse {
    let body = json!({"detail": {"status": "invalid_signature", "message": reason}}).to_string();
    let length = HeaderValue::from(body.len());
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, length);
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn new_record(id: &str, agent_id: String) -> ConversationRecord {
    ConversationRecord {
        conversation_id: id.to_owned(),
        agent_id,
        status: ConversationStatus::Initiated,
        started_at: Utc::now(),
        initiation_client_data: None,
        dynamic_variables: Map::new(),
        first_message_override: None,
        first_message: String::new(),
        user_audio_chunks: 0,
        user_audio_bytes: 0,
        user_audio_invalid: 0,
        pings_sent: 0,
        pongs: Vec::new(),
        unmatched_pongs: 0,
        audio_chunks_sent: 0,
        sent: Vec::new(),
        sent_dropped: 0,
        other_client_messages: Vec::new(),
        other_client_messages_dropped: 0,
        transcript: Vec::new(),
        end: None,
        duration: None,
        webhook: None,
        finished: false,
    }
}

/// Sends a close frame and waits (briefly) for the client's reply.
async fn close(sink: &mut Sink, incoming: &mut Incoming, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if sink.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// A response being spoken.
struct Speech {
    event_id: u64,
    text: String,
    chunks: u32,
    sent: u32,
    started: Instant,
    /// Barge-in: the user interrupts after this many chunks.
    interrupt_after: Option<u32>,
    /// The response's entry in the transcript.
    transcript_index: usize,
}

/// What a client message asks of the session.
enum Received {
    Nothing,
    Initiation(Value),
}

struct Session<'a> {
    shared: &'a Shared,
    id: String,
    opened: Instant,
    /// When the metadata was sent: the conversation's time zero.
    started: Option<Instant>,
    /// Last response `event_id` used.
    next_event_id: u64,
    /// Last ping `event_id` used.
    next_ping_id: u64,
    outstanding_pings: VecDeque<(u64, Instant)>,
    last_round_trip_ms: Option<u64>,
    /// Last audio chunk index used.
    audio_index: u32,
    speech: Option<Speech>,
    /// Next scripted turn.
    next_turn: usize,
    /// User audio received since the agent stopped speaking.
    heard_bytes: u64,
    /// Reused buffer for decoding user audio.
    decoded: Vec<u8>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        sink: &mut Sink,
        incoming: &mut Incoming,
        kill: &Notify,
    ) -> ConversationEnd {
        match self.play(sink, incoming, kill).await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    /// Plays the conversation; only ever returns how it ended.
    async fn play(
        &mut self,
        sink: &mut Sink,
        incoming: &mut Incoming,
        kill: &Notify,
    ) -> Result<std::convert::Infallible, ConversationEnd> {
        let deadline = after(self.opened, INIT_TIMEOUT);
        let initiation = loop {
            tokio::select! {
                biased;
                () = kill.notified() => return Err(ConversationEnd::Killed),
                () = tokio::time::sleep_until(deadline) => return Err(ConversationEnd::NoInitiation),
                message = incoming.next() => {
                    if let Received::Initiation(value) = self.on_message(message)? {
                        break value;
                    }
                }
            }
        };
        self.initiate(sink, initiation).await?;

        let script = &self.shared.config.script;
        let ping_interval = script.ping_interval;
        let mut next_ping =
            (!ping_interval.is_zero()).then(|| after(Instant::now(), ping_interval));
        loop {
            self.progress(sink).await?;
            let speech_due = self.speech_due();
            tokio::select! {
                biased;
                () = kill.notified() => return Err(ConversationEnd::Killed),
                () = tokio::time::sleep_until(next_ping.unwrap_or(deadline)), if next_ping.is_some() => {
                    self.ping(sink).await?;
                    next_ping = Some(after(Instant::now(), ping_interval));
                }
                () = tokio::time::sleep_until(speech_due.unwrap_or(deadline)), if speech_due.is_some() => {
                    self.speak(sink).await?;
                }
                message = incoming.next() => {
                    // A repeated initiation is recorded as an other message by `on_message`.
                    self.on_message(message)?;
                }
            }
        }
    }

    fn elapsed(&self) -> Duration {
        self.opened.elapsed()
    }

    fn time_in_call_secs(&self) -> u64 {
        self.started.map_or(0, |s| s.elapsed().as_secs())
    }

    /// Handles one client message; `Err` when the socket is done.
    fn on_message(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Received, ConversationEnd> {
        let text = match message {
            None => {
                return Err(ConversationEnd::Dropped {
                    error: "the socket ended without a close frame".to_owned(),
                });
            }
            Some(Err(error)) => {
                return Err(ConversationEnd::Dropped {
                    error: error_chain(&error),
                });
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ConversationEnd::ClientClosed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => {
                self.remember_other("<binary>", &format!("<{} bytes>", bytes.len()));
                return Ok(Received::Nothing);
            }
            // WebSocket pings are answered by tungstenite itself.
            Some(Ok(_)) => return Ok(Received::Nothing),
        };
        let Ok(frame) = serde_json::from_str::<ClientFrame>(text.as_str()) else {
            self.remember_other("<invalid json>", text.as_str());
            return Ok(Received::Nothing);
        };
        match (frame.kind.as_deref(), frame.user_audio_chunk) {
            (None, Some(audio)) => self.on_user_audio(&audio),
            (Some("pong"), _) => self.on_pong(frame.event_id.as_ref().and_then(Value::as_u64)),
            (Some("conversation_initiation_client_data"), _) if self.started.is_none() => {
                match serde_json::from_str::<Value>(text.as_str()) {
                    Ok(value) if value.is_object() => return Ok(Received::Initiation(value)),
                    _ => self.remember_other("<invalid json>", text.as_str()),
                }
            }
            (Some(kind), _) => self.remember_other(kind, text.as_str()),
            (None, None) => self.remember_other("<no type>", text.as_str()),
        }
        Ok(Received::Nothing)
    }

    fn on_user_audio(&mut self, payload: &str) {
        self.decoded.clear();
        let valid = base64::engine::general_purpose::STANDARD
            .decode_vec(payload, &mut self.decoded)
            .is_ok();
        let bytes = self.decoded.len() as u64;
        if valid && self.started.is_some() && self.speech.is_none() {
            self.heard_bytes = self.heard_bytes.saturating_add(bytes);
        }
        self.shared.update_quietly(&self.id, |record| {
            if valid {
                record.user_audio_chunks += 1;
                record.user_audio_bytes += bytes;
            } else {
                record.user_audio_invalid += 1;
            }
        });
    }

    fn on_pong(&mut self, event_id: Option<u64>) {
        let position = event_id.and_then(|id| {
            self.outstanding_pings
                .iter()
                .position(|(ping, _)| *ping == id)
        });
        let matched = position.and_then(|p| self.outstanding_pings.remove(p));
        if let Some((_, sent)) = matched {
            self.last_round_trip_ms = Some(sent.elapsed().as_millis() as u64);
        }
        self.shared.update(&self.id, |record| match matched {
            Some((event_id, sent)) => {
                if record.pongs.len() < MAX_RECORDED_PONGS {
                    record.pongs.push(PongRecord {
                        event_id,
                        latency: sent.elapsed(),
                    });
                }
            }
            None => record.unmatched_pongs += 1,
        });
    }

    fn remember_other(&self, kind: &str, text: &str) {
        let mut cut = text.len().min(MAX_RECORDED_OTHER_TEXT);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let message = ClientMessageRecord {
            at: self.elapsed(),
            kind: kind.to_owned(),
            text: text[..cut].to_owned(),
        };
        self.shared.update(&self.id, |record| {
            if record.other_client_messages.len() < MAX_RECORDED_OTHER {
                record.other_client_messages.push(message);
            } else {
                record.other_client_messages_dropped += 1;
            }
        });
    }

    /// Sends one message and records it.
    async fn send(
        &mut self,
        sink: &mut Sink,
        text: String,
        message: AgentMessage,
    ) -> Result<(), ConversationEnd> {
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(ConversationEnd::Dropped {
                    error: error_chain(&error),
                });
            }
            Err(_) => {
                return Err(ConversationEnd::Dropped {
                    error: format!("the client did not take a message within {SEND_TIMEOUT:?}"),
                });
            }
        }
        let is_audio = matches!(message, AgentMessage::Audio { .. });
        let sent = SentMessage {
            at: self.elapsed(),
            message,
        };
        let remember = |record: &mut ConversationRecord| {
            if let AgentMessage::Audio { .. } = sent.message {
                record.audio_chunks_sent += 1;
            }
            if let AgentMessage::Ping { .. } = sent.message {
                record.pings_sent += 1;
            }
            if record.sent.len() < MAX_RECORDED_SENT {
                record.sent.push(sent);
            } else {
                record.sent_dropped += 1;
            }
        };
        if is_audio {
            self.shared.update_quietly(&self.id, remember);
        } else {
            self.shared.update(&self.id, remember);
        }
        Ok(())
    }

    async fn send_json(
        &mut self,
        sink: &mut Sink,
        value: &Value,
        message: AgentMessage,
    ) -> Result<(), ConversationEnd> {
        self.send(sink, value.to_string(), message).await
    }

    /// Records the initiation, sends the metadata and starts the first message.
    async fn initiate(
        &mut self,
        sink: &mut Sink,
        initiation: Value,
    ) -> Result<(), ConversationEnd> {
        let config = &self.shared.config;
        let dynamic_variables = initiation
            .get("dynamic_variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let first_message_override = initiation
            .pointer("/conversation_config_override/agent/first_message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let first_message = first_message_override
            .clone()
            .unwrap_or_else(|| config.script.first_message.clone());
        self.shared.update(&self.id, |record| {
            record.status = ConversationStatus::InProgress;
            record.initiation_client_data = Some(initiation);
            record.dynamic_variables = dynamic_variables;
            record.first_message_override = first_message_override;
            record.first_message = first_message.clone();
        });
        let metadata = json!({
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": self.id,
                "agent_output_audio_format": config.agent_output_format,
                "user_input_audio_format": config.user_input_format,
            },
        });
        let record = AgentMessage::Metadata {
            conversation_id: self.id.clone(),
            agent_output_audio_format: config.agent_output_format.clone(),
            user_input_audio_format: config.user_input_format.clone(),
        };
        self.send_json(sink, &metadata, record).await?;
        self.started = Some(Instant::now());
        if !first_message.is_empty() {
            self.start_speech(sink, first_message, false).await?;
        }
        Ok(())
    }

    /// While listening: the next turn once enough user audio has arrived, or the agent's
    /// goodbye after the last one.
    async fn progress(&mut self, sink: &mut Sink) -> Result<(), ConversationEnd> {
        if self.speech.is_some() {
            return Ok(());
        }
        let script = &self.shared.config.script;
        let Some(turn) = script.turns.get(self.next_turn) else {
            return if script.end_after_turns {
                Err(ConversationEnd::AgentEnded)
            } else {
                Ok(())
            };
        };
        let needed = self
            .shared
            .input_format
            .bytes_for_ms(u64::from(turn.user_audio_ms));
        if self.heard_bytes < needed {
            return Ok(());
        }
        let barge_in = script.barge_in_on_turn == Some(self.next_turn);
        let (user, agent) = (turn.user.clone(), turn.agent.clone());
        self.next_turn += 1;
        let transcript = json!({
            "type": "user_transcript",
            "user_transcription_event": {"user_transcript": user},
        });
        let record = AgentMessage::UserTranscript { text: user.clone() };
        self.send_json(sink, &transcript, record).await?;
        let entry = TranscriptEntry {
            role: TranscriptRole::User,
            message: user,
            time_in_call_secs: self.time_in_call_secs(),
            interrupted: false,
            original_message: None,
        };
        self.shared
            .update(&self.id, |record| record.transcript.push(entry));
        self.start_speech(sink, agent, barge_in).await
    }

    /// Sends `agent_response` and schedules the response's audio.
    async fn start_speech(
        &mut self,
        sink: &mut Sink,
        text: String,
        barge_in: bool,
    ) -> Result<(), ConversationEnd> {
        self.next_event_id += 1;
        let mut chunks = self.shared.voice.chunks_for(&text);
        let interrupt_after = barge_in.then(|| {
            // Enough audio that "mid-reply" exists.
            chunks = chunks.max(2);
            (chunks / 2).max(1)
        });
        let response = json!({
            "type": "agent_response",
            "agent_response_event": {"agent_response": text},
        });
        let record = AgentMessage::AgentResponse { text: text.clone() };
        self.send_json(sink, &response, record).await?;
        let entry = TranscriptEntry {
            role: TranscriptRole::Agent,
            message: text.clone(),
            time_in_call_secs: self.time_in_call_secs(),
            interrupted: false,
            original_message: None,
        };
        let transcript_index = self
            .shared
            .update(&self.id, |record| {
                record.transcript.push(entry);
                record.transcript.len() - 1
            })
            .unwrap_or_default();
        self.speech = Some(Speech {
            event_id: self.next_event_id,
            text,
            chunks,
            sent: 0,
            started: Instant::now(),
            interrupt_after,
            transcript_index,
        });
        Ok(())
    }

    /// When the speech's next step is due: the next chunk, or (all sent) the end of playback.
    fn speech_due(&self) -> Option<Instant> {
        let speech = self.speech.as_ref()?;
        if !self.shared.config.audio_realtime {
            return Some(Instant::now());
        }
        let chunk_ms = u64::from(self.shared.voice.chunk_ms());
        let offset = Duration::from_millis(chunk_ms * u64::from(speech.sent));
        Some(after(speech.started, offset))
    }

    async fn send_audio(
        &mut self,
        sink: &mut Sink,
        event_id: u64,
        stale: bool,
    ) -> Result<(), ConversationEnd> {
        self.audio_index = self.audio_index.wrapping_add(1);
        let index = self.audio_index;
        let payload = self.shared.voice.chunk_payload(index);
        let audio = AudioOut {
            kind: "audio",
            audio_event: AudioEvent {
                audio_base_64: &payload,
                event_id,
            },
        };
        let text = serde_json::to_string(&audio).unwrap_or_default();
        let record = AgentMessage::Audio {
            event_id,
            index,
            bytes: self.shared.voice.chunk_bytes(),
            stale,
        };
        self.send(sink, text, record).await
    }

    /// The speech's next step: one chunk (and the barge-in after it), or the end of speaking.
    async fn speak(&mut self, sink: &mut Sink) -> Result<(), ConversationEnd> {
        let Some(mut speech) = self.speech.take() else {
            return Ok(());
        };
        if speech.sent >= speech.chunks {
            // Played out: the agent listens again.
            self.heard_bytes = 0;
            return Ok(());
        }
        self.send_audio(sink, speech.event_id, false).await?;
        speech.sent += 1;
        if speech.interrupt_after == Some(speech.sent) {
            return self.barge_in(sink, speech).await;
        }
        self.speech = Some(speech);
        Ok(())
    }

    /// The user talks over the agent: `interruption`, one stale chunk of the interrupted
    /// response (on purpose), and the correction of what was actually said.
    async fn barge_in(&mut self, sink: &mut Sink, speech: Speech) -> Result<(), ConversationEnd> {
        let interruption = json!({
            "type": "interruption",
            "interruption_event": {"event_id": speech.event_id},
        });
        let record = AgentMessage::Interruption {
            event_id: speech.event_id,
        };
        self.send_json(sink, &interruption, record).await?;
        self.send_audio(sink, speech.event_id, true).await?;
        let corrected = cut_text(&speech.text, speech.sent, speech.chunks);
        let correction = json!({
            "type": "agent_response_correction",
            "agent_response_correction_event": {
                "original_agent_response": speech.text,
                "corrected_agent_response": corrected,
            },
        });
        let record = AgentMessage::AgentResponseCorrection {
            original: speech.text.clone(),
            corrected: corrected.clone(),
        };
        self.send_json(sink, &correction, record).await?;
        self.shared.update(&self.id, |record| {
            if let Some(entry) = record.transcript.get_mut(speech.transcript_index) {
                entry.message = corrected;
                entry.interrupted = true;
                entry.original_message = Some(speech.text);
            }
        });
        self.heard_bytes = 0;
        Ok(())
    }

    async fn ping(&mut self, sink: &mut Sink) -> Result<(), ConversationEnd> {
        self.next_ping_id += 1;
        let event_id = self.next_ping_id;
        let ping = json!({
            "type": "ping",
            "ping_event": {"event_id": event_id, "ping_ms": self.last_round_trip_ms},
        });
        self.send_json(sink, &ping, AgentMessage::Ping { event_id })
            .await?;
        if self.outstanding_pings.len() >= MAX_OUTSTANDING_PINGS {
            self.outstanding_pings.pop_front();
        }
        self.outstanding_pings.push_back((event_id, Instant::now()));
        Ok(())
    }
}

/// The part of `text` spoken in `sent` of `chunks` chunks, cut at a word boundary, with "...".
fn cut_text(text: &str, sent: u32, chunks: u32) -> String {
    let total = text.chars().count() as u64;
    let keep = (total * u64::from(sent))
        .div_ceil(u64::from(chunks.max(1)))
        .min(total);
    let end = text
        .char_indices()
        .nth(keep as usize)
        .map_or(text.len(), |(index, _)| index);
    let mut spoken = &text[..end];
    if end < text.len()
        && let Some(space) = spoken.rfind(char::is_whitespace)
    {
        spoken = &spoken[..space];
    }
    let spoken = spoken.trim_end_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation());
    format!("{spoken}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_text_is_cut_at_a_word_boundary_in_proportion() {
        let text = "Let me tell you about the complete history of our company.";
        assert_eq!(cut_text(text, 1, 2), "Let me tell you about the...");
        assert_eq!(
            cut_text(text, 2, 2),
            "Let me tell you about the complete history of our company..."
        );
        assert_eq!(cut_text(text, 0, 2), "...");
        assert_eq!(cut_text("", 1, 2), "...");
        assert_eq!(cut_text("héllo wörld ünïcode", 1, 2), "héllo...");
        assert_eq!(cut_text("héllo wörld ünïcode", 2, 3), "héllo wörld...");
        assert_eq!(cut_text("abc", 5, 0), "abc...");
    }
}
