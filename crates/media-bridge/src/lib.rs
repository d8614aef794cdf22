//! Bridges a Twilio Media Streams WebSocket and a voice-agent conversation.
//!
//! [`session::Session`] is the sans-IO core: fed parsed messages of both sides and the time,
//! it queues what to send where and what to record. [`MediaBridge`] is the tokio shell that
//! moves text frames between a Twilio socket (any `Stream` + `Sink` of text) and the domain's
//! [`AgentConnection`](outcall_domain::ports::AgentConnection), and records the call's
//! conversation id, transcript and end through [`LiveCalls`](outcall_domain::services::LiveCalls).
//! Audio stays base64 text from one side to the other: it is never decoded.

mod bridge;
pub mod protocol;
pub mod session;

pub use bridge::{BridgeConfig, BridgeStats, Duplex, MediaBridge, StatsSnapshot};
pub use session::{Disposition, EndReason, SessionConfig};
