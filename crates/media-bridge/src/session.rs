//! The sans-IO core of one bridged call: fed Twilio messages, agent messages and the current
//! time, it queues what to send where and what to record. It owns no socket, task or clock,
//! so every rule is tested with scripted inputs and made-up instants.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use outcall_domain::call::limits;

use crate::protocol::{
    self, AgentEvent, StreamStart, TwilioEvent, TwilioWriter, parse_agent, parse_twilio,
};

/// The audio format both directions must use: Twilio's μ-law at 8 kHz, passed through as is.
pub const REQUIRED_AUDIO_FORMAT: &str = "ulaw_8000";

/// Timing and buffering rules of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The call ends when Twilio sends nothing for this long (it streams 50 frames/s).
    pub twilio_idle_timeout: Duration,
    /// The call ends when the agent sends nothing (not even a ping) for this long, counted
    /// from the stream's start, so a connection that never comes up ends the call too.
    pub agent_idle_timeout: Duration,
    /// Caller audio held while the agent is not ready; beyond it the oldest frame is dropped.
    pub early_audio_frames: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            twilio_idle_timeout: Duration::from_secs(30),
            agent_idle_timeout: Duration::from_secs(60),
            // 2 s of 20 ms frames.
            early_audio_frames: 100,
        }
    }
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this text frame to Twilio.
    ToTwilio(String),
    /// Send this text message to the agent.
    ToAgent(String),
    /// Twilio's `start` arrived: claim the call and connect the agent.
    Started(StreamStart),
    /// The agent's conversation id, to record on the call.
    ConversationId(String),
    /// The transcript changed (see [`Session::transcript`]).
    TranscriptChanged,
    /// The session is over: close both sides and act on the reason. Always the last output.
    End(EndReason),
}

/// Why a bridged call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Twilio sent `stop`.
    TwilioStopped,
    /// The Twilio socket closed or failed without `stop`.
    TwilioClosed,
    TwilioIdle(Duration),
    /// The agent closed the conversation normally (for example its end-call tool).
    AgentClosed,
    /// The agent connection failed mid-call.
    AgentFailed(String),
    AgentIdle(Duration),
    /// The agent could not be connected at all.
    AgentUnavailable(String),
    /// The agent does not speak μ-law 8 kHz both ways: relaying would only send noise.
    UnsupportedAudioFormat {
        output: Option<String>,
        input: Option<String>,
    },
    /// outcall stopped before the call ended on its own.
    ShuttingDown,
}

/// What must happen to the phone call once the bridge is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Record the reason only: Twilio's side is already ending the call.
    Record,
    /// Record the reason and end the call at the provider so the line never stays open.
    HangUp,
    /// Mark the call failed (reason recorded, ended at the provider).
    Fail,
}

impl EndReason {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::TwilioStopped | Self::TwilioClosed => Disposition::Record,
            Self::TwilioIdle(_)
            | Self::AgentClosed
            | Self::AgentFailed(_)
            | Self::AgentIdle(_)
            | Self::ShuttingDown => Disposition::HangUp,
            Self::AgentUnavailable(_) | Self::UnsupportedAudioFormat { .. } => Disposition::Fail,
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TwilioStopped => f.write_str("the Twilio media stream stopped"),
            Self::TwilioClosed => f.write_str("the Twilio media stream closed without stopping"),
            Self::TwilioIdle(after) => write!(
                f,
                "no message from the Twilio media stream for {} s",
                after.as_secs()
            ),
            Self::AgentClosed => f.write_str("the agent ended the conversation"),
            Self::AgentFailed(error) => write!(f, "the agent connection failed: {error}"),
            Self::AgentIdle(after) => {
                write!(f, "no message from the agent for {} s", after.as_secs())
            }
            Self::AgentUnavailable(error) => write!(f, "could not connect the agent: {error}"),
            Self::UnsupportedAudioFormat { output, input } => write!(
                f,
                "the agent's audio formats must be {REQUIRED_AUDIO_FORMAT} both ways \
                 (output: {}, input: {})",
                output.as_deref().unwrap_or("not stated"),
                input.as_deref().unwrap_or("not stated"),
            ),
            Self::ShuttingDown => f.write_str("outcall shut down during the call"),
        }
    }
}

/// Running totals of one session, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Caller audio frames sent to the agent.
    pub frames_to_agent: u64,
    /// Agent audio frames sent to Twilio.
    pub frames_to_twilio: u64,
    /// Frames not relayed: early-buffer overflow, stale after an interruption, or arriving
    /// when they cannot be relayed.
    pub frames_dropped: u64,
    /// Messages from either side that could not be parsed.
    pub malformed_messages: u64,
    /// Agent messages of a type this bridge does not know.
    pub unknown_messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentState {
    NotConnected,
    /// Connected, waiting for `conversation_initiation_metadata` to confirm the formats.
    Connected,
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaker {
    User,
    Agent,
}

/// The live transcript, one line per turn.
#[derive(Debug, Default)]
struct Transcript {
    lines: Vec<(Speaker, String)>,
    bytes: usize,
    revision: u64,
}

// A bound on what one call may hold in memory; the store keeps at most `limits::TRANSCRIPT`
// characters anyway.
const TRANSCRIPT_MAX_BYTES: usize = limits::TRANSCRIPT * 2;

impl Transcript {
    fn push(&mut self, speaker: Speaker, text: String) -> bool {
        let text = text.trim();
        if text.is_empty() || self.bytes + text.len() > TRANSCRIPT_MAX_BYTES {
            return false;
        }
        self.bytes += text.len();
        self.lines.push((speaker, text.to_owned()));
        self.revision += 1;
        true
    }

    fn correct_last_agent_line(&mut self, corrected: String) -> bool {
        let corrected = corrected.trim();
        let Some((_, line)) = self
            .lines
            .iter_mut()
            .rev()
            .find(|(speaker, _)| *speaker == Speaker::Agent)
        else {
            return false;
        };
        if line == corrected {
            return false;
        }
        self.bytes = self.bytes - line.len() + corrected.len();
        corrected.clone_into(line);
        self.revision += 1;
        true
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(self.bytes + self.lines.len() * 8);
        for (i, (speaker, text)) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(match speaker {
                Speaker::User => "User: ",
                Speaker::Agent => "Agent: ",
            });
            out.push_str(text);
        }
        out
    }
}

/// One bridged call's state machine.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Set by Twilio's `start`.
    twilio: Option<TwilioWriter>,
    agent: AgentState,
    ended: bool,
    /// Caller audio (already as `user_audio_chunk` messages) waiting for the agent.
    early: VecDeque<String>,
    /// Agent audio with an `event_id` at or below this belongs to an interrupted response.
    interrupted_up_to: Option<u64>,
    last_audio_event: Option<u64>,
    last_twilio: Instant,
    /// Last sign of life from the agent; set when the stream starts.
    last_agent: Option<Instant>,
    transcript: Transcript,
    outputs: VecDeque<Output>,
    counters: Counters,
}

impl Session {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self {
            config,
            twilio: None,
            agent: AgentState::NotConnected,
            ended: false,
            early: VecDeque::new(),
            interrupted_up_to: None,
            last_audio_event: None,
            last_twilio: now,
            last_agent: None,
            transcript: Transcript::default(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The next thing to do, in order; `None` when nothing is pending.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next. Deadlines only ever move later
    /// while the session is healthy, so a shell may keep an earlier timer armed: a wake-up
    /// before the real deadline does nothing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let twilio = self.last_twilio + self.config.twilio_idle_timeout;
        let agent = self
            .last_agent
            .map(|last| last + self.config.agent_idle_timeout);
        Some(agent.map_or(twilio, |agent| agent.min(twilio)))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if now >= self.last_twilio + self.config.twilio_idle_timeout {
            self.end(EndReason::TwilioIdle(self.config.twilio_idle_timeout));
        } else if self
            .last_agent
            .is_some_and(|last| now >= last + self.config.agent_idle_timeout)
        {
            self.end(EndReason::AgentIdle(self.config.agent_idle_timeout));
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Increases whenever the transcript changes.
    pub fn transcript_revision(&self) -> u64 {
        self.transcript.revision
    }

    /// The transcript so far: `User: ...` and `Agent: ...` lines.
    pub fn transcript(&self) -> String {
        self.transcript.render()
    }

    /// Ends the session (the first reason wins).
    pub fn end(&mut self, reason: EndReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.counters.frames_dropped += self.early.len() as u64;
        self.early = VecDeque::new();
        self.outputs.push_back(Output::End(reason));
    }

    /// One text frame from Twilio; malformed ones are counted and skipped.
    pub fn handle_twilio_text(&mut self, text: &str, now: Instant) {
        match parse_twilio(text) {
            Ok(event) => self.handle_twilio(event, now),
            Err(_) => {
                self.last_twilio = now;
                self.counters.malformed_messages += 1;
            }
        }
    }

    pub fn handle_twilio(&mut self, event: TwilioEvent<'_>, now: Instant) {
        if self.ended {
            return;
        }
        self.last_twilio = now;
        match event {
            TwilioEvent::Media(payload) => self.caller_audio(&payload),
            TwilioEvent::Start(start) => {
                // Twilio sends exactly one `start`; a repeat must not restart anything.
                if self.twilio.is_none() {
                    self.twilio = Some(TwilioWriter::new(&start.stream_sid));
                    self.last_agent = Some(now);
                    self.outputs.push_back(Output::Started(start));
                }
            }
            TwilioEvent::Stop => self.end(EndReason::TwilioStopped),
            TwilioEvent::Connected | TwilioEvent::Other => {}
        }
    }

    fn caller_audio(&mut self, payload: &str) {
        if self.twilio.is_none() {
            // Media before `start` belongs to no known stream.
            self.counters.frames_dropped += 1;
            return;
        }
        let message = protocol::user_audio_chunk(payload);
        if self.agent == AgentState::Ready {
            self.counters.frames_to_agent += 1;
            self.outputs.push_back(Output::ToAgent(message));
            return;
        }
        if self.config.early_audio_frames == 0 {
            self.counters.frames_dropped += 1;
            return;
        }
        if self.early.len() >= self.config.early_audio_frames {
            self.early.pop_front();
            self.counters.frames_dropped += 1;
        }
        self.early.push_back(message);
    }

    /// The Twilio socket closed or failed.
    pub fn twilio_closed(&mut self) {
        self.end(EndReason::TwilioClosed);
    }

    /// The agent connection is open and its client data was sent.
    pub fn agent_opened(&mut self, now: Instant) {
        if self.ended || self.agent != AgentState::NotConnected {
            return;
        }
        self.agent = AgentState::Connected;
        self.last_agent = Some(now);
    }

    /// The agent connection ended: `error` is `None` for a normal close.
    pub fn agent_closed(&mut self, error: Option<String>) {
        self.end(match error {
            None => EndReason::AgentClosed,
            Some(error) => EndReason::AgentFailed(error),
        });
    }

    /// One text message from the agent; malformed ones are counted and skipped.
    pub fn handle_agent_text(&mut self, text: &str, now: Instant) {
        match parse_agent(text) {
            Ok(event) => self.handle_agent(event, now),
            Err(_) => {
                self.last_agent = Some(now);
                self.counters.malformed_messages += 1;
            }
        }
    }

    pub fn handle_agent(&mut self, event: AgentEvent<'_>, now: Instant) {
        if self.ended {
            return;
        }
        self.last_agent = Some(now);
        match event {
            AgentEvent::Audio { payload, event_id } => self.agent_audio(&payload, event_id),
            AgentEvent::Ping { event_id } => {
                self.outputs
                    .push_back(Output::ToAgent(protocol::pong(&event_id)));
            }
            AgentEvent::Interruption { event_id } => self.interruption(event_id),
            AgentEvent::Metadata {
                conversation_id,
                output_format,
                input_format,
            } => self.metadata(conversation_id, output_format, input_format),
            AgentEvent::AgentResponse(text) => {
                if self.transcript.push(Speaker::Agent, text) {
                    self.outputs.push_back(Output::TranscriptChanged);
                }
            }
            AgentEvent::AgentResponseCorrection(text) => {
                if self.transcript.correct_last_agent_line(text) {
                    self.outputs.push_back(Output::TranscriptChanged);
                }
            }
            AgentEvent::UserTranscript(text) => {
                if self.transcript.push(Speaker::User, text) {
                    self.outputs.push_back(Output::TranscriptChanged);
                }
            }
            AgentEvent::ClientToolCall { tool_call_id } => {
                self.outputs
                    .push_back(Output::ToAgent(protocol::client_tool_refusal(
                        &tool_call_id,
                    )));
            }
            AgentEvent::Ignored => {}
            AgentEvent::Unknown => self.counters.unknown_messages += 1,
        }
    }

    fn agent_audio(&mut self, payload: &str, event_id: Option<u64>) {
        if let Some(id) = event_id {
            self.last_audio_event = Some(self.last_audio_event.map_or(id, |last| last.max(id)));
        }
        let stale = matches!(
            (event_id, self.interrupted_up_to),
            (Some(id), Some(cut)) if id <= cut
        );
        // Before the metadata confirmed μ-law, the audio could be noise to the caller.
        let writer = match &self.twilio {
            Some(writer) if self.agent == AgentState::Ready && !stale => writer,
            _ => {
                self.counters.frames_dropped += 1;
                return;
            }
        };
        let message = writer.media(payload);
        self.counters.frames_to_twilio += 1;
        self.outputs.push_back(Output::ToTwilio(message));
    }

    fn interruption(&mut self, event_id: Option<u64>) {
        // Without an id, everything heard so far belongs to the interrupted response.
        if let Some(cut) = event_id.or(self.last_audio_event) {
            self.interrupted_up_to = Some(self.interrupted_up_to.map_or(cut, |c| c.max(cut)));
        }
        if let Some(writer) = &self.twilio {
            self.outputs.push_back(Output::ToTwilio(writer.clear()));
        }
    }

    fn metadata(
        &mut self,
        conversation_id: Option<String>,
        output: Option<String>,
        input: Option<String>,
    ) {
        if let Some(id) = conversation_id.filter(|id| !id.is_empty()) {
            self.outputs.push_back(Output::ConversationId(id));
        }
        if self.agent == AgentState::Ready {
            return;
        }
        if output.as_deref() != Some(REQUIRED_AUDIO_FORMAT)
            || input.as_deref() != Some(REQUIRED_AUDIO_FORMAT)
        {
            self.end(EndReason::UnsupportedAudioFormat { output, input });
            return;
        }
        self.agent = AgentState::Ready;
        let early = std::mem::take(&mut self.early);
        self.counters.frames_to_agent += early.len() as u64;
        self.outputs.extend(early.into_iter().map(Output::ToAgent));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callId":"call_1"}},"streamSid":"MZ1"}"#;
    const METADATA_OK: &str = r#"{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"conv_1","agent_output_audio_format":"ulaw_8000","user_input_audio_format":"ulaw_8000"}}"#;

    fn media(payload: &str) -> String {
        json!({"event": "media", "sequenceNumber": "2", "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload}, "streamSid": "MZ1"}).to_string()
    }

    fn agent_audio(payload: &str, event_id: u64) -> String {
        json!({"type": "audio", "audio_event": {"audio_base_64": payload, "event_id": event_id}})
            .to_string()
    }

    fn drain(session: &mut Session) -> Vec<Output> {
        std::iter::from_fn(|| session.poll_output()).collect()
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("outputs are JSON")
    }

    /// A session whose stream started and whose agent is connected and ready.
    fn ready(t0: Instant) -> Session {
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
            t0,
        );
        session.handle_twilio_text(START, t0);
        session.agent_opened(t0);
        session.handle_agent_text(METADATA_OK, t0);
        drain(&mut session);
        session
    }

    #[test]
    fn start_announces_the_call_and_its_parameters() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        assert_eq!(
            drain(&mut session),
            vec![Output::Started(StreamStart {
                stream_sid: "MZ1".into(),
                call_id: Some("call_1".into()),
                agent_id: None,
            })]
        );
        session.handle_twilio_text(START, t0);
        assert!(drain(&mut session).is_empty(), "a second start is ignored");
    }

    #[test]
    fn caller_audio_reaches_the_agent_with_the_same_payload_in_order() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        let payloads = ["no+JhoaJjpzS/w==", "AAEC", "//79"];
        for p in payloads {
            session.handle_twilio_text(&media(p), t0);
        }
        let sent: Vec<Value> = drain(&mut session)
            .into_iter()
            .map(|o| match o {
                Output::ToAgent(text) => parsed(&text),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<Value> = payloads
            .iter()
            .map(|p| json!({"user_audio_chunk": p}))
            .collect();
        assert_eq!(sent, expected);
        assert_eq!(session.counters().frames_to_agent, 3);
    }

    #[test]
    fn agent_audio_reaches_twilio_with_the_stream_sid_and_the_same_payload() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(&agent_audio("a+b/c==", 1), t0);
        session.handle_agent_text(&agent_audio("ZZZZ", 1), t0);
        let sent: Vec<Value> = drain(&mut session)
            .into_iter()
            .map(|o| match o {
                Output::ToTwilio(text) => parsed(&text),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            sent,
            vec![
                json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "a+b/c=="}}),
                json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "ZZZZ"}}),
            ]
        );
        assert_eq!(session.counters().frames_to_twilio, 2);
    }

    #[test]
    fn early_caller_audio_is_held_until_the_agent_is_ready_and_the_101st_frame_drops_the_oldest() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        for i in 0..101 {
            session.handle_twilio_text(&media(&format!("frame{i}")), t0);
        }
        session.agent_opened(t0);
        let before_ready = drain(&mut session);
        assert!(
            before_ready.iter().all(|o| matches!(o, Output::Started(_))),
            "nothing reaches the agent before its formats are known: {before_ready:?}"
        );
        assert_eq!(session.counters().frames_dropped, 1);

        session.handle_agent_text(METADATA_OK, t0);
        let outputs = drain(&mut session);
        assert_eq!(outputs[0], Output::ConversationId("conv_1".into()));
        let flushed: Vec<Value> = outputs[1..]
            .iter()
            .map(|o| match o {
                Output::ToAgent(text) => parsed(text),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<Value> = (1..101)
            .map(|i| json!({"user_audio_chunk": format!("frame{i}")}))
            .collect();
        assert_eq!(
            flushed, expected,
            "frame0 was dropped, the rest kept in order"
        );
        assert_eq!(session.counters().frames_to_agent, 100);

        session.handle_twilio_text(&media("live"), t0);
        assert_eq!(
            drain(&mut session),
            vec![Output::ToAgent(r#"{"user_audio_chunk":"live"}"#.into())]
        );
    }

    #[test]
    fn caller_audio_before_start_is_dropped() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(&media("AAAA"), t0);
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.counters().frames_dropped, 1);
    }

    #[test]
    fn a_ping_is_answered_at_once_with_the_same_event_id() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        session.agent_opened(t0);
        drain(&mut session);
        // Even before the metadata: pings keep the conversation alive.
        session.handle_agent_text(
            r#"{"type":"ping","ping_event":{"event_id":12345,"ping_ms":50}}"#,
            t0,
        );
        match drain(&mut session).as_slice() {
            [Output::ToAgent(text)] => {
                assert_eq!(parsed(text), json!({"type": "pong", "event_id": 12345}));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_interruption_clears_twilio_and_drops_audio_of_the_interrupted_response() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(&agent_audio("old1", 6), t0);
        session.handle_agent_text(&agent_audio("old2", 7), t0);
        drain(&mut session);
        session.handle_agent_text(
            r#"{"type":"interruption","interruption_event":{"event_id":7}}"#,
            t0,
        );
        session.handle_agent_text(&agent_audio("late7", 7), t0);
        session.handle_agent_text(&agent_audio("late6", 6), t0);
        session.handle_agent_text(&agent_audio("new8", 8), t0);
        let sent: Vec<Value> = drain(&mut session)
            .into_iter()
            .map(|o| match o {
                Output::ToTwilio(text) => parsed(&text),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            sent,
            vec![
                json!({"event": "clear", "streamSid": "MZ1"}),
                json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "new8"}}),
            ]
        );
        assert_eq!(session.counters().frames_dropped, 2);
    }

    #[test]
    fn an_interruption_without_an_id_cuts_the_audio_heard_so_far() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(&agent_audio("a", 3), t0);
        session.handle_agent_text(r#"{"type":"interruption","interruption_event":{}}"#, t0);
        session.handle_agent_text(&agent_audio("b", 3), t0);
        session.handle_agent_text(&agent_audio("c", 4), t0);
        let payloads: Vec<Value> = drain(&mut session)
            .into_iter()
            .filter_map(|o| match o {
                Output::ToTwilio(text) => {
                    parsed(&text)["media"]["payload"].as_str().map(Value::from)
                }
                _ => None,
            })
            .collect();
        assert_eq!(payloads, vec![json!("a"), json!("c")]);
    }

    #[test]
    fn agent_audio_before_the_formats_are_confirmed_is_dropped() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        session.agent_opened(t0);
        drain(&mut session);
        session.handle_agent_text(&agent_audio("AAAA", 1), t0);
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.counters().frames_dropped, 1);
    }

    #[test]
    fn an_agent_that_does_not_speak_ulaw_ends_the_call_as_failed_without_relaying_audio() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        session.handle_twilio_text(&media("early"), t0);
        session.agent_opened(t0);
        drain(&mut session);
        session.handle_agent_text(
            r#"{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"conv_9","agent_output_audio_format":"pcm_16000","user_input_audio_format":"ulaw_8000"}}"#,
            t0,
        );
        let outputs = drain(&mut session);
        let reason = EndReason::UnsupportedAudioFormat {
            output: Some("pcm_16000".into()),
            input: Some("ulaw_8000".into()),
        };
        assert_eq!(
            outputs,
            vec![
                Output::ConversationId("conv_9".into()),
                Output::End(reason.clone())
            ]
        );
        assert_eq!(reason.disposition(), Disposition::Fail);
        assert!(reason.to_string().contains("pcm_16000"));
        assert_eq!(session.counters().frames_to_agent, 0);
        assert_eq!(
            session.counters().frames_dropped,
            1,
            "the held frame is released"
        );
        session.handle_twilio_text(&media("after"), t0);
        session.handle_agent_text(&agent_audio("after", 1), t0);
        assert!(drain(&mut session).is_empty(), "nothing after the end");
    }

    #[test]
    fn metadata_that_states_no_formats_also_ends_the_call() {
        let t0 = Instant::now();
        let mut session = Session::new(SessionConfig::default(), t0);
        session.handle_twilio_text(START, t0);
        session.agent_opened(t0);
        drain(&mut session);
        session.handle_agent_text(
            r#"{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"conv_9"}}"#,
            t0,
        );
        assert!(matches!(
            drain(&mut session).last(),
            Some(Output::End(EndReason::UnsupportedAudioFormat {
                output: None,
                input: None
            }))
        ));
    }

    #[test]
    fn twilio_stop_or_close_ends_the_session_without_hanging_up() {
        let t0 = Instant::now();
        let mut stopped = ready(t0);
        stopped.handle_twilio_text(
            r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#,
            t0,
        );
        assert_eq!(
            drain(&mut stopped),
            vec![Output::End(EndReason::TwilioStopped)]
        );
        assert!(stopped.is_ended());
        assert_eq!(stopped.poll_timeout(), None);

        let mut closed = ready(t0);
        closed.twilio_closed();
        closed.twilio_closed();
        assert_eq!(
            drain(&mut closed),
            vec![Output::End(EndReason::TwilioClosed)]
        );
        assert_eq!(EndReason::TwilioClosed.disposition(), Disposition::Record);
    }

    #[test]
    fn agent_close_or_failure_ends_the_session_and_hangs_up() {
        let t0 = Instant::now();
        let mut closed = ready(t0);
        closed.agent_closed(None);
        assert_eq!(
            drain(&mut closed),
            vec![Output::End(EndReason::AgentClosed)]
        );

        let mut failed = ready(t0);
        failed.agent_closed(Some("reset by peer".into()));
        failed.agent_closed(None);
        let outputs = drain(&mut failed);
        assert_eq!(
            outputs,
            vec![Output::End(EndReason::AgentFailed("reset by peer".into()))]
        );
        assert_eq!(
            EndReason::AgentFailed(String::new()).disposition(),
            Disposition::HangUp
        );
        assert_eq!(EndReason::AgentClosed.disposition(), Disposition::HangUp);
    }

    #[test]
    fn silence_from_twilio_ends_the_session_after_the_idle_timeout() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        let t1 = t0 + Duration::from_secs(10);
        session.handle_twilio_text(&media("x"), t1);
        session.handle_agent_text(
            r#"{"type":"ping","ping_event":{"event_id":1}}"#,
            t1 + Duration::from_secs(35),
        );
        drain(&mut session);
        assert_eq!(session.poll_timeout(), Some(t1 + Duration::from_secs(30)));
        session.handle_timeout(t1 + Duration::from_secs(29));
        assert!(!session.is_ended(), "not yet");
        session.handle_timeout(t1 + Duration::from_secs(30));
        assert_eq!(
            drain(&mut session),
            vec![Output::End(EndReason::TwilioIdle(Duration::from_secs(30)))]
        );
    }

    #[test]
    fn silence_from_the_agent_ends_the_session_after_its_idle_timeout() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        // Twilio keeps streaming; the agent says nothing after t0.
        for s in 1..=60 {
            session.handle_twilio_text(&media("x"), t0 + Duration::from_secs(s));
        }
        drain(&mut session);
        assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        session.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(
            drain(&mut session),
            vec![Output::End(EndReason::AgentIdle(Duration::from_secs(60)))]
        );
    }

    #[test]
    fn an_agent_that_never_connects_ends_the_session_after_the_agent_timeout() {
        let t0 = Instant::now();
        let config = SessionConfig {
            agent_idle_timeout: Duration::from_secs(5),
            ..SessionConfig::default()
        };
        let mut session = Session::new(config, t0);
        assert_eq!(
            session.poll_timeout(),
            Some(t0 + Duration::from_secs(30)),
            "before start only Twilio is expected"
        );
        session.handle_twilio_text(START, t0);
        assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        session.handle_twilio_text(&media("x"), t0 + Duration::from_secs(5));
        session.handle_timeout(t0 + Duration::from_secs(5));
        assert!(matches!(
            drain(&mut session).last(),
            Some(Output::End(EndReason::AgentIdle(_)))
        ));
    }

    #[test]
    fn malformed_and_unknown_messages_are_counted_and_skipped() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        for text in ["", "{", "null", r#"{"event":"media"}"#, "\u{0}\u{ff}"] {
            session.handle_twilio_text(text, t0);
        }
        for text in [
            "[1,2]",
            r#"{"type":"audio"}"#,
            r#"{"type":"ping","ping_event":{}}"#,
        ] {
            session.handle_agent_text(text, t0);
        }
        session.handle_agent_text(r#"{"type":"something_new","x":1}"#, t0);
        session.handle_agent_text(
            r#"{"type":"vad_score","vad_score_event":{"vad_score":0.5}}"#,
            t0,
        );
        session.handle_twilio_text(r#"{"event":"mark","mark":{"name":"m"}}"#, t0);
        assert!(drain(&mut session).is_empty());
        assert!(!session.is_ended());
        let counters = session.counters();
        assert_eq!(counters.malformed_messages, 8);
        assert_eq!(counters.unknown_messages, 1);
        session.handle_twilio_text(&media("still"), t0);
        assert_eq!(drain(&mut session).len(), 1, "the relay goes on");
    }

    #[test]
    fn the_transcript_is_built_from_turns_and_corrected_after_an_interruption() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        let turns = [
            r#"{"type":"agent_response","agent_response_event":{"agent_response":"Hello, this is Acme."}}"#,
            r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"Hi, who?"}}"#,
            r#"{"type":"agent_response","agent_response_event":{"agent_response":"Let me tell you about the complete history of our company"}}"#,
            r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"Stop."}}"#,
            r#"{"type":"agent_response_correction","agent_response_correction_event":{"original_agent_response":"Let me tell you about the complete history of our company","corrected_agent_response":"Let me tell you about"}}"#,
            r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"   "}}"#,
        ];
        for turn in turns {
            session.handle_agent_text(turn, t0);
        }
        let changes = drain(&mut session)
            .iter()
            .filter(|o| **o == Output::TranscriptChanged)
            .count();
        assert_eq!(changes, 5, "an empty turn changes nothing");
        assert_eq!(session.transcript_revision(), 5);
        assert_eq!(
            session.transcript(),
            "Agent: Hello, this is Acme.\nUser: Hi, who?\nAgent: Let me tell you about\nUser: Stop."
        );
    }

    #[test]
    fn a_correction_before_any_agent_line_changes_nothing() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(
            r#"{"type":"agent_response_correction","agent_response_correction_event":{"corrected_agent_response":"x"}}"#,
            t0,
        );
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.transcript(), "");
    }

    #[test]
    fn a_client_tool_call_is_refused_so_the_agent_does_not_wait() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(
            r#"{"type":"client_tool_call","client_tool_call":{"tool_name":"x","tool_call_id":"tc1","parameters":{}}}"#,
            t0,
        );
        match drain(&mut session).as_slice() {
            [Output::ToAgent(text)] => {
                let v = parsed(text);
                assert_eq!(v["type"], "client_tool_result");
                assert_eq!(v["tool_call_id"], "tc1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_first_end_reason_wins_and_is_the_last_output() {
        let t0 = Instant::now();
        let mut session = ready(t0);
        session.handle_agent_text(r#"{"type":"ping","ping_event":{"event_id":1}}"#, t0);
        session.end(EndReason::ShuttingDown);
        session.agent_closed(None);
        session.handle_timeout(t0 + Duration::from_secs(3600));
        let outputs = drain(&mut session);
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[1], Output::End(EndReason::ShuttingDown));
    }
}
