//! ElevenLabs Conversational AI emulator: the signed-URL endpoint, the conversation WebSocket
//! played from a script, the conversation GET, and signed post-call webhooks, per
//! `protocols.md` sections 6 and 7.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use outcall_sandbox::{ConversationStatus, ElevenLabsEmulator, ElevenLabsEmulatorConfig};
//!
//! let elevenlabs = ElevenLabsEmulator::start(ElevenLabsEmulatorConfig::default()).await?;
//! // point the adapter's API base at elevenlabs.base_url(), bridge a call, then:
//! # let id = String::new();
//! let conversation = elevenlabs.wait_for_end(&id, Duration::from_secs(10)).await?;
//! assert_eq!(conversation.status, ConversationStatus::Done);
//! elevenlabs.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # How a conversation plays
//! * `GET /v1/convai/conversation/get-signed-url?agent_id=..` (also the deprecated
//!   `get_signed_url`) needs `xi-api-key` (401 `invalid_api_key`), an `agent_id` (422) that is
//!   known when `agents` is not empty (404), and answers with a `ws://` URL carrying a random
//!   single-use `conversation_signature`, valid for 15 minutes. The WebSocket upgrade is
//!   refused with HTTP 403 when the signature is missing, unknown, expired, already used, or
//!   was issued for another agent.
//! * The emulator waits (10 s at most, then closes 1008) for
//!   `conversation_initiation_client_data`, records it, and answers
//!   `conversation_initiation_metadata` with a `conv_` id and the configured formats. Messages
//!   before it are recorded and otherwise ignored (user audio is counted).
//! * The agent speaks the first message (`conversation_config_override.agent.first_message`
//!   wins; an empty one means the agent waits for the user): `agent_response`, then its audio
//!   in `audio_chunk_ms` chunks, 60 ms of speech per character, all chunks of one response
//!   sharing one `event_id` (1, 2, 3, ... per response). Every chunk is a 1 kHz tone whose first
//!   four bytes carry the chunk's index in the conversation (big-endian, from 1), so a receiver
//!   can check order and loss. With `audio_realtime` chunks are paced at real time and a
//!   response ends when its audio has played; otherwise they go out at once.
//! * Each scripted turn waits until `user_audio_ms` of user audio (measured in the user input
//!   format) has arrived since the agent stopped speaking, then sends `user_transcript` and the
//!   agent's reply. On `barge_in_on_turn` the reply is cut after half its chunks: `interruption`
//!   with the reply's `event_id`, then deliberately one more (stale) `audio` chunk of that
//!   reply, then `agent_response_correction` with the text cut where the audio stopped.
//! * With `end_after_turns` the agent closes the socket with 1000 once the last reply has been
//!   spoken. `ping` goes every `ping_interval` (zero: never) with its own `event_id` counter and
//!   `ping_ms` set to the last measured round trip; pongs are matched by id.
//! * Unknown, malformed or binary client messages are recorded (bounded) and ignored.
//! * After a conversation that got past initiation ends, and `webhook` is set, a
//!   `post_call_transcription` is POSTed after `delay`, signed `ElevenLabs-Signature:
//!   t=..,v0=..` over the exact bytes sent; once, no retries. `GET
//!   /v1/convai/conversations/{id}` returns the same `data`, with `status: "in-progress"` and
//!   `analysis: null` until the conversation has ended.
//!
//! HTTP and WebSocket share one port: the emulator reads each connection's request head and
//! hands conversation upgrades to tokio-tungstenite and everything else to an internal actix-web
//! server. A connection is routed by its first request only.

mod audio;
mod conversation;
mod front;
mod ids;
mod report;
mod rest;
mod signature;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use signature::elevenlabs_signature;

use state::Shared;

/// How the emulator behaves. `Default` gives a fixed API key, any agent, the sandbox script
/// (three turns, then the agent hangs up), 100 ms chunks at real-time pace, no webhook, and
/// `ulaw_8000` both ways.
#[derive(Debug, Clone)]
pub struct ElevenLabsEmulatorConfig {
    /// The only `xi-api-key` accepted.
    pub api_key: String,
    /// Known agent ids; empty accepts any agent.
    pub agents: Vec<String>,
    pub script: ConversationScript,
    /// Length of one agent `audio` chunk, clamped to 20..=200 ms.
    pub audio_chunk_ms: u32,
    /// Pace agent audio at real time instead of sending each response's chunks at once.
    pub audio_realtime: bool,
    /// Where post-call webhooks go, if anywhere.
    pub webhook: Option<WebhookTarget>,
    /// `agent_output_audio_format` (`ulaw_8000`, or `pcm_8000` .. `pcm_48000`); the agent's
    /// audio is produced in it.
    pub agent_output_format: String,
    /// `user_input_audio_format`, same choices; user audio is measured in it.
    pub user_input_format: String,
}

impl Default for ElevenLabsEmulatorConfig {
    fn default() -> Self {
        Self {
            api_key: "sandbox_elevenlabs_api_key".to_owned(),
            agents: Vec::new(),
            script: ConversationScript::default(),
            audio_chunk_ms: 100,
            audio_realtime: true,
            webhook: None,
            agent_output_format: "ulaw_8000".to_owned(),
            user_input_format: "ulaw_8000".to_owned(),
        }
    }
}

/// The post-call webhook receiver.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    /// HMAC key of `ElevenLabs-Signature`.
    pub secret: String,
    /// Time between the end of the conversation and the POST.
    pub delay: Duration,
}

/// What the agent says and when.
#[derive(Debug, Clone)]
pub struct ConversationScript {
    /// Spoken first, unless `conversation_config_override.agent.first_message` replaces it.
    /// Empty: the agent waits for the user.
    pub first_message: String,
    pub turns: Vec<ScriptTurn>,
    /// Index into `turns` whose agent reply the user interrupts.
    pub barge_in_on_turn: Option<usize>,
    /// The agent closes the conversation (1000) after the last turn's reply.
    pub end_after_turns: bool,
    /// Time between pings; zero sends none.
    pub ping_interval: Duration,
    pub analysis: ScriptedAnalysis,
}

impl Default for ConversationScript {
    fn default() -> Self {
        let turn = |user: &str, agent: &str| ScriptTurn {
            user: user.to_owned(),
            user_audio_ms: 1500,
            agent: agent.to_owned(),
        };
        Self {
            first_message: "Hello! This is the outcall sandbox agent calling. Do you have a \
                            minute to talk about our premium plan?"
                .to_owned(),
            turns: vec![
                turn(
                    "Sure, what is it about?",
                    "The premium plan gives you priority support and a twenty percent \
                     discount on every order.",
                ),
                turn(
                    "That sounds interesting. Can you call me back next week?",
                    "Of course. I will schedule a follow-up call for next week.",
                ),
                turn("Great, thanks. Bye!", "Thank you for your time. Goodbye!"),
            ],
            barge_in_on_turn: None,
            end_after_turns: true,
            ping_interval: Duration::from_secs(2),
            analysis: ScriptedAnalysis::default(),
        }
    }
}

/// One exchange: the user speaks, then the agent answers.
#[derive(Debug, Clone)]
pub struct ScriptTurn {
    /// Sent as `user_transcript` once `user_audio_ms` of user audio has arrived.
    pub user: String,
    pub user_audio_ms: u32,
    /// Sent as `agent_response` with its audio.
    pub agent: String,
}

/// The post-call analysis reported in the webhook and the conversation GET.
#[derive(Debug, Clone)]
pub struct ScriptedAnalysis {
    /// `transcript_summary`.
    pub summary: String,
    /// `success`, `failure` or `unknown` (sent as given).
    pub call_successful: String,
    /// `data_collection_results`: id and value, in order.
    pub data_collection: Vec<(String, Value)>,
}

impl Default for ScriptedAnalysis {
    fn default() -> Self {
        let item = |id: &str, value: Value| (id.to_owned(), value);
        Self {
            summary: "The customer is interested in the premium plan and asked for a \
                      follow-up call next week."
                .to_owned(),
            call_successful: "success".to_owned(),
            data_collection: vec![
                item("call_outcome", Value::from("interested")),
                item("call_sentiment", Value::from("positive")),
                item("next_action", Value::from("schedule_follow_up")),
                item("next_action_date", Value::from("2025-03-27T12:00:00.000Z")),
                item(
                    "agent_notes",
                    Value::from("Follow up next week about the premium plan."),
                ),
            ],
        }
    }
}

/// `status` as the conversation GET reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    /// The socket is open; no `conversation_initiation_client_data` yet.
    Initiated,
    InProgress,
    /// Ended after initiation.
    Done,
    /// Ended before initiation.
    Failed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::InProgress => "in-progress",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for ConversationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the emulator received and did in one conversation.
#[derive(Debug, Clone)]
pub struct ConversationRecord {
    /// `conv_` + 32 lowercase hex digits; assigned when the socket opens, announced in the
    /// metadata.
    pub conversation_id: String,
    pub agent_id: String,
    pub status: ConversationStatus,
    /// When the WebSocket was accepted.
    pub started_at: DateTime<Utc>,
    /// The `conversation_initiation_client_data` message as received.
    pub initiation_client_data: Option<Value>,
    pub dynamic_variables: Map<String, Value>,
    /// `conversation_config_override.agent.first_message`, when sent as a string.
    pub first_message_override: Option<String>,
    /// What the agent said first (empty: nothing).
    pub first_message: String,
    pub user_audio_chunks: u64,
    /// Decoded bytes of the `user_audio_chunk` messages.
    pub user_audio_bytes: u64,
    /// `user_audio_chunk` messages whose payload was not valid base64 (not counted above).
    pub user_audio_invalid: u64,
    pub pings_sent: u64,
    /// Pongs that matched a ping, in arrival order (the first 1024).
    pub pongs: Vec<PongRecord>,
    /// Pongs with an id no outstanding ping had.
    pub unmatched_pongs: u64,
    pub audio_chunks_sent: u64,
    /// Messages sent, in order (the first 4096; later ones are only counted).
    pub sent: Vec<SentMessage>,
    pub sent_dropped: u64,
    /// Client messages other than user audio, pongs and the initiation (the first 256).
    pub other_client_messages: Vec<ClientMessageRecord>,
    pub other_client_messages_dropped: u64,
    /// The conversation as the post-call data reports it.
    pub transcript: Vec<TranscriptEntry>,
    pub end: Option<ConversationEnd>,
    /// From the metadata to the end.
    pub duration: Option<Duration>,
    pub webhook: Option<WebhookDelivery>,
    /// Ended, and the webhook (if one is due) answered or failed. The record no longer
    /// changes after that.
    pub finished: bool,
}

impl ConversationRecord {
    /// The sent messages without audio chunks and pings: what was said, in order.
    pub fn sent_without_audio(&self) -> Vec<&AgentMessage> {
        self.sent
            .iter()
            .map(|s| &s.message)
            .filter(|m| !matches!(m, AgentMessage::Audio { .. } | AgentMessage::Ping { .. }))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PongRecord {
    pub event_id: u64,
    /// From sending the ping to receiving the pong.
    pub latency: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Time since the WebSocket opened.
    pub at: Duration,
    pub message: AgentMessage,
}

/// A message the emulator sent (protocols 6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMessage {
    Metadata {
        conversation_id: String,
        agent_output_audio_format: String,
        user_input_audio_format: String,
    },
    Ping {
        event_id: u64,
    },
    AgentResponse {
        text: String,
    },
    Audio {
        event_id: u64,
        /// Index of the chunk in the conversation, from 1 (also its first four bytes).
        index: u32,
        /// Decoded length.
        bytes: usize,
        /// Sent after the response was interrupted.
        stale: bool,
    },
    UserTranscript {
        text: String,
    },
    Interruption {
        event_id: u64,
    },
    AgentResponseCorrection {
        original: String,
        corrected: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessageRecord {
    /// Time since the WebSocket opened.
    pub at: Duration,
    /// The `type` field; `<no type>`, `<invalid json>` or `<binary>` otherwise.
    pub kind: String,
    /// The message text (at most 1 KiB of it).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TranscriptRole {
    Agent,
    User,
}

impl TranscriptRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::User => "user",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    pub role: TranscriptRole,
    /// For an interrupted agent turn, the corrected (cut) text.
    pub message: String,
    /// Whole seconds from the metadata.
    pub time_in_call_secs: u64,
    pub interrupted: bool,
    /// The full text of an interrupted agent turn.
    pub original_message: Option<String>,
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationEnd {
    /// The client sent a close frame (`code` absent when the frame had none).
    ClientClosed { code: Option<u16>, reason: String },
    /// The agent closed it with 1000 after the last scripted turn.
    AgentEnded,
    /// `kill_conversation`: the socket was dropped without a close frame.
    Killed,
    /// The socket ended without a close frame, or failed (read error, send timeout).
    Dropped { error: String },
    /// No `conversation_initiation_client_data` in time; closed with 1008.
    NoInitiation,
}

/// The post-call webhook as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub url: String,
    /// The signed `t`.
    pub timestamp: i64,
    /// The `ElevenLabs-Signature` header.
    pub signature: String,
    pub body_bytes: usize,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
}

/// A running ElevenLabs emulator, bound to `127.0.0.1` on an ephemeral port unless started
/// with [`ElevenLabsEmulator::start_on`].
pub struct ElevenLabsEmulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: ServerHandle,
}

impl fmt::Debug for ElevenLabsEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsEmulator")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl ElevenLabsEmulator {
    /// Binds `127.0.0.1:0` and starts serving. Must be called inside a tokio runtime;
    /// conversations run on that runtime.
    ///
    /// # Errors
    /// Outside a tokio runtime, an unsupported audio format, or when binding fails.
    pub async fn start(config: ElevenLabsEmulatorConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`Self::start`], bound to `address` (a manual run on a fixed port).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn start_on(
        config: ElevenLabsEmulatorConfig,
        address: SocketAddr,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the ElevenLabs emulator must start inside a tokio runtime")?;
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("binding the ElevenLabs emulator to {address}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let listener =
            tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
        let internal = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("binding the ElevenLabs emulator's HTTP server")?;
        let internal_address = internal.local_addr().context("reading the bound address")?;

        let shared = Arc::new(Shared::new(config, runtime, address)?);
        let server = rest::server(shared.clone(), internal)?;
        let handle = server.handle();
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "ElevenLabs emulator HTTP server failed");
            }
        });
        let accepting = front::accept_loop(shared.clone(), listener, internal_address);
        if !shared.tasks.spawn(accepting) {
            handle.stop(false).await;
            anyhow::bail!("the ElevenLabs emulator stopped while starting");
        }
        Ok(Self {
            shared,
            address,
            server: handle,
        })
    }

    /// `http://127.0.0.1:PORT`, the value for the adapter's API base.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Conversations so far, oldest first (finished ones beyond the latest 2000 are forgotten).
    pub fn conversations(&self) -> Vec<ConversationRecord> {
        self.shared.records()
    }

    pub fn conversation(&self, id: &str) -> Option<ConversationRecord> {
        self.shared.record(id)
    }

    /// Waits until conversation `id` has ended.
    ///
    /// # Errors
    /// Unknown id, `timeout` elapsed, or the emulator stopped.
    pub async fn wait_for_end(
        &self,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<ConversationRecord> {
        self.shared
            .wait_for(id, timeout, "end", |r| r.end.is_some())
            .await
    }

    /// Waits until conversation `id` is `finished`: ended and its webhook (if one is due)
    /// answered or failed.
    ///
    /// # Errors
    /// Unknown id, `timeout` elapsed, or the emulator stopped.
    pub async fn wait_for_finish(
        &self,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<ConversationRecord> {
        self.shared
            .wait_for(id, timeout, "finish", |r| r.finished)
            .await
    }

    /// Drops conversation `id`'s socket at once, without a close frame, as a crashed agent
    /// server would. Returns false if the conversation is unknown or already ended.
    pub fn kill_conversation(&self, id: &str) -> bool {
        self.shared.kill(id)
    }

    /// Stops the server, every conversation (sockets dropped) and pending webhook.
    pub async fn shutdown(self) {
        self.server.stop(false).await;
        self.shared.tasks.shutdown().await;
    }
}

impl Drop for ElevenLabsEmulator {
    fn drop(&mut self) {
        drop(self.server.stop(false));
        self.shared.tasks.abort_now();
    }
}
