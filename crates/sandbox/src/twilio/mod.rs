//! Twilio emulator: the Calls REST API, call progress with signed status callbacks, the TwiML
//! fetch, and the Media Streams WebSocket client side, all per `protocols.md` sections 1–5.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use outcall_sandbox::{EmulatedCallStatus, TwilioEmulator, TwilioEmulatorConfig};
//!
//! let twilio = TwilioEmulator::start(TwilioEmulatorConfig::default()).await?;
//! // point the adapter's API base at twilio.base_url(), place a call, then:
//! # let sid = String::new();
//! let call = twilio
//!     .wait_for_status(&sid, EmulatedCallStatus::Completed, Duration::from_secs(10))
//!     .await?;
//! assert!(call.callbacks.iter().all(|c| c.http_status.is_some_and(|s| s < 300)));
//! twilio.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # How a call plays
//! * Create answers 201 `queued`; a task then fires `initiated`, `ringing`, and after the ring
//!   time (or `Timeout`, if shorter: then `no-answer`) the scripted outcome: `busy` (486),
//!   `no-answer` (487), or `in-progress`. `Failed` goes `initiated` -> `failed` (404).
//! * Answered: the `Url` is requested (signed, `Method` honoured, 64 KiB max) or inline `Twiml`
//!   used. `<Connect><Stream>` opens the WebSocket; TwiML without a stream keeps the call up for
//!   its talk time; `<Hangup/>`, unusable TwiML or a failed fetch end it at once (Twilio's
//!   "application error").
//! * The call completes after the talk time (`TimeLimit` if shorter), on REST
//!   `Status=completed`, or when the server closes the stream. `CallDuration` is whole seconds
//!   from answer, rounded up; `Duration` is minutes, rounded up.
//! * Status callbacks go only for requested `StatusCallbackEvent`s (none requested: only the
//!   terminal one), in firing order, one at a time, `SequenceNumber` counting the callbacks
//!   sent from 0. They do not hold up the call's timeline; failures are recorded, not retried.
//!   Signatures cover the URL exactly as configured (port and query kept; `#fragment` and
//!   `user:pass@` dropped, the latter sent as Basic auth).
//! * Media: `connected`, `start` (sequence 1), then one 160-byte μ-law `media` frame every
//!   20 ms. The interval uses `MissedTickBehavior::Burst`: the callee's audio is produced in
//!   real time, so frames missed while the task was late go out at once and `timestamp` keeps
//!   matching wall-clock time since the stream started, as from a real phone leg.
//! * Server `media` is "played" at 8000 bytes/s: a `mark` is echoed when the audio sent before
//!   it has played (at once if none is buffered); `clear` drops the buffer and echoes every
//!   pending mark at once. Messages whose `streamSid` is not the stream's are recorded as
//!   [`StreamMessage::Other`] and otherwise ignored.
//! * If the WebSocket cannot be opened the call still completes after its talk time.
//! * `Status=canceled` (or `completed`) on a queued/ringing call cancels it (no callback if it
//!   was still queued); `canceled` on an answered call changes nothing.

pub(crate) mod audio;
mod call;
mod rest;
mod sid;
mod signature;
mod state;
mod stream;
mod twiml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use chrono::{DateTime, Utc};

pub use signature::twilio_signature;

use state::Shared;

/// How the emulator behaves. `Default` gives a fixed sandbox account, 1 s of ringing, 30 s of
/// talk, silence, and answered calls.
#[derive(Debug, Clone)]
pub struct TwilioEmulatorConfig {
    /// The only Account SID the REST API accepts (Basic auth user and path segment).
    pub account_sid: String,
    /// Basic auth password, and the key every request the emulator sends is signed with.
    pub auth_token: String,
    /// How long a call rings before its scripted outcome (shortened by a smaller `Timeout`).
    pub ring_time: Duration,
    /// How long an answered call lasts if nothing ends it first (shortened by `TimeLimit`).
    pub talk_time: Duration,
    /// The callee's audio sent on the media stream.
    pub media: MediaScript,
    /// Outcome of calls whose `To` has no entry in `scripts`.
    pub default_outcome: CallOutcomeScript,
    /// Outcome per `To` number, exactly as sent in the create request.
    pub scripts: HashMap<String, CallOutcomeScript>,
}

impl Default for TwilioEmulatorConfig {
    fn default() -> Self {
        Self {
            account_sid: "AC00000000000000000000000000000000".to_owned(),
            auth_token: "sandbox_auth_token_0000000000000".to_owned(),
            ring_time: Duration::from_secs(1),
            talk_time: Duration::from_secs(30),
            media: MediaScript::Silence,
            default_outcome: CallOutcomeScript::Answered,
            scripts: HashMap::new(),
        }
    }
}

/// The callee's audio: 20 ms frames of 160 μ-law bytes at 8 kHz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MediaScript {
    /// μ-law silence (every byte 0xFF).
    Silence,
    /// A continuous sine tone at a quarter of full scale.
    Tone { frequency_hz: u32 },
}

/// What happens to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcomeScript {
    /// A person answers (`AnsweredBy=human` when `MachineDetection` was requested).
    Answered,
    /// A machine answers (`AnsweredBy=machine_start` when `MachineDetection` was requested,
    /// otherwise indistinguishable from `Answered`, as with Twilio).
    AnsweredByMachine,
    /// Busy after ringing (`SipResponseCode=486`).
    Busy,
    /// Nobody answers (`SipResponseCode=487`).
    NoAnswer,
    /// The call cannot be placed (`SipResponseCode=404`), right after `initiated`.
    Failed,
    /// The create request itself is refused with this Twilio error.
    RejectOnCreate {
        http_status: u16,
        code: u32,
        message: String,
    },
}

/// A call's status as the emulator tracks it. `as_str` is the `CallStatus` callback value; the
/// REST resource shows `initiated` as `queued` (it has no `initiated` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmulatedCallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl EmulatedCallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::NoAnswer | Self::Failed | Self::Canceled
        )
    }

    fn rest_str(self) -> &'static str {
        match self {
            Self::Initiated => "queued",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for EmulatedCallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the emulator received and did for one call.
#[derive(Debug, Clone)]
pub struct EmulatedCallRecord {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    /// The create request's form fields in order, repeated fields kept.
    pub form: Vec<(String, String)>,
    /// The outcome that was played.
    pub outcome: CallOutcomeScript,
    pub status: EmulatedCallStatus,
    /// Every status the call went through, whether or not a callback was requested for it.
    pub status_history: Vec<StatusChange>,
    /// `human` / `machine_start` when `MachineDetection` was requested and the call answered.
    pub answered_by: Option<String>,
    /// Whole seconds from answer to end (rounded up); 0 for unanswered calls. Set at the end.
    pub duration_secs: Option<u64>,
    /// Status callbacks in the order they were sent.
    pub callbacks: Vec<CallbackRecord>,
    /// The TwiML request made when the call was answered.
    pub twiml: Option<TwimlFetchRecord>,
    /// The `<Connect><Stream>` media stream, if the TwiML asked for one.
    pub stream: Option<EmulatedStreamRecord>,
    /// Form fields of each update (`POST .../Calls/{sid}.json`) request, in order.
    pub updates: Vec<Vec<(String, String)>>,
    /// True once the emulator is done with the call: terminal status reached, every callback
    /// answered or failed, the stream closed. The record no longer changes after that.
    pub finished: bool,
}

impl EmulatedCallRecord {
    /// `CallStatus` values of the callbacks sent, in sending order.
    pub fn callback_statuses(&self) -> Vec<&str> {
        self.callbacks
            .iter()
            .filter_map(|c| c.param("CallStatus"))
            .collect()
    }

    /// Values of a create form field (repeated fields give several).
    pub fn form_values(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: EmulatedCallStatus,
    pub at: DateTime<Utc>,
    /// Whether a status callback is sent for this change.
    pub callback_requested: bool,
}

/// One signed request the emulator sent (status callback or TwiML fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// The URL as configured (for GET, with the parameters appended).
    pub url: String,
    pub method: String,
    /// Parameters sent (form body for POST, query for GET).
    pub params: Vec<(String, String)>,
    /// The `X-Twilio-Signature` header sent.
    pub signature: String,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Why no answer came (connect error, timeout).
    pub error: Option<String>,
}

impl CallbackRecord {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwimlFetchRecord {
    /// The signed request to `Url`; `None` when the create request carried inline `Twiml`.
    pub request: Option<CallbackRecord>,
    /// The response body (at most 64 KiB are read).
    pub body: Option<String>,
    /// Why the TwiML could not be used (HTTP error, unparsable, bad stream URL); the call then
    /// ends as Twilio ends it after an application error.
    pub error: Option<String>,
}

/// The media stream as the emulator (Twilio's side) saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedStreamRecord {
    /// The URL connected to (relative `<Stream url>` values resolved against the TwiML URL).
    pub url: String,
    pub stream_sid: String,
    /// The `X-Twilio-Signature` sent on the upgrade request (over `url`, no params).
    pub signature: String,
    /// `<Parameter>` name/value pairs, sent as `start.customParameters`.
    pub custom_parameters: BTreeMap<String, String>,
    /// Why the WebSocket could not be opened; the call then goes on for its talk time.
    pub connect_error: Option<String>,
    pub media_frames_sent: u64,
    /// Messages from the server, in arrival order; at most 512 messages and 512 KiB of text are
    /// kept, later ones are only counted.
    pub received: Vec<ReceivedStreamMessage>,
    /// Messages not kept in `received` because the cap was reached.
    pub received_dropped: u64,
    pub media_messages_received: u64,
    /// Decoded μ-law bytes received in `media` messages.
    pub media_bytes_received: u64,
    /// Names of the marks echoed back, in order (at most 512 kept).
    pub marks_echoed: Vec<String>,
    pub end: Option<StreamEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStreamMessage {
    /// Time since the WebSocket opened.
    pub at: Duration,
    pub message: StreamMessage,
}

/// A message the server sent on the media stream (protocols 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    Media {
        payload: String,
    },
    Mark {
        name: String,
    },
    Clear,
    /// Anything else (unknown event, invalid JSON, binary), as text.
    Other {
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server closed the WebSocket; the call then completed (no TwiML after `<Connect>`).
    ServerClosed,
    /// The call ended (talk time, `TimeLimit` or REST hang-up); `stop` was sent, then a close.
    CallEnded,
    /// The socket failed (I/O error, send timeout); the call then completed.
    Failed { error: String },
}

/// A running Twilio emulator, bound to `127.0.0.1` on an ephemeral port unless started with
/// [`TwilioEmulator::start_on`].
pub struct TwilioEmulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: ServerHandle,
}

impl fmt::Debug for TwilioEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioEmulator")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TwilioEmulator {
    /// Binds `127.0.0.1:0` and starts serving. Must be called inside a tokio runtime; call
    /// tasks run on that runtime.
    ///
    /// # Errors
    /// Outside a tokio runtime, or when binding or building the HTTP client fails.
    pub async fn start(config: TwilioEmulatorConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`Self::start`], bound to `address` (a manual run on a fixed port).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn start_on(
        config: TwilioEmulatorConfig,
        address: SocketAddr,
    ) -> anyhow::Result<Self> {
        // Only needed for `wss://` streams; an already installed provider is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Handle::try_current()
            .context("the Twilio emulator must start inside a tokio runtime")?;
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("binding the Twilio emulator to {address}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared::new(config, runtime)?);
        let server = rest::server(shared.clone(), listener)?;
        let handle = server.handle();
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "Twilio emulator HTTP server failed");
            }
        });
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

    /// Records of the calls created so far, oldest first (the latest 10 000 are kept).
    pub fn calls(&self) -> Vec<EmulatedCallRecord> {
        self.shared.records()
    }

    pub fn call(&self, sid: &str) -> Option<EmulatedCallRecord> {
        self.shared.record(sid)
    }

    /// Waits until call `sid` has reached `status` and the status callback for it (if one is
    /// due) has been answered or has failed. For a terminal status it also waits until the call
    /// is `finished`, so the returned record is final.
    ///
    /// # Errors
    /// Unknown sid; the call ended without reaching `status`; `timeout` elapsed.
    pub async fn wait_for_status(
        &self,
        sid: &str,
        status: EmulatedCallStatus,
        timeout: Duration,
    ) -> anyhow::Result<EmulatedCallRecord> {
        self.shared.wait_for_status(sid, status, timeout).await
    }

    /// Stops the HTTP server and every call task (streams are dropped without `stop`, no more
    /// callbacks are sent).
    pub async fn shutdown(self) {
        self.server.stop(false).await;
        self.shared.tasks.shutdown().await;
    }
}

impl Drop for TwilioEmulator {
    fn drop(&mut self) {
        // A dropped emulator must not leave a server or calls behind. `stop` sends its command
        // eagerly; the returned future only waits for completion.
        drop(self.server.stop(false));
        self.shared.tasks.abort_now();
    }
}
