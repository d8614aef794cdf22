//! ElevenLabs adapter of outcall.
//!
//! - [`ElevenLabsClient`] implements the domain's
//!   [`VoiceAgent`](outcall_domain::ports::VoiceAgent) port: it opens agent conversations
//!   (`get-signed-url`, then a WebSocket to the signed URL, Nagle off, buffers sized for
//!   20 ms audio frames) and fetches post-call reports (`GET /v1/convai/conversations/{id}`).
//! - [`ElevenLabsWebhooks`] implements [`AgentWebhooks`](outcall_domain::ports::AgentWebhooks):
//!   the `ElevenLabs-Signature` check, streamed over the raw body, and the event parser.
//! - [`sign`] computes the signature header on its own, for emulators and tests.
//!
//! Neither the API key nor a signed URL (it carries a credential) is ever logged or put in an
//! error.

mod client;
mod config;
mod connection;
mod payload;
mod rehome;
mod webhook;

pub use client::ElevenLabsClient;
pub use config::{
    DEFAULT_API_BASE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, ElevenLabsConfig,
};
pub use payload::CALL_ID_VARIABLE;
pub use webhook::{DEFAULT_TOLERANCE, ElevenLabsWebhooks, SIGNATURE_HEADER, sign};
