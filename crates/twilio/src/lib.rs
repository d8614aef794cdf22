//! Twilio adapter of outcall.
//!
//! - [`TwilioClient`] implements the domain's [`Telephony`](outcall_domain::ports::Telephony)
//!   port: it places calls (`POST .../Calls.json`) and ends them over Twilio's REST API, never
//!   retrying (a retried create could dial the callee twice), writes the TwiML that connects
//!   an answered call to the media stream, and checks webhook signatures.
//! - [`signature`] and [`verify_signature`] implement Twilio's `X-Twilio-Signature` scheme on
//!   their own, for any code that receives (or, in an emulator, sends) signed requests.
//! - [`stream_twiml`] writes the `<Connect><Stream>` document with every value escaped.

mod client;
mod config;
mod signature;
mod twiml;

pub use client::TwilioClient;
pub use config::{
    DEFAULT_API_BASE, DEFAULT_REQUEST_TIMEOUT, MAX_RING_TIMEOUT_SECS, MachineDetection,
    TwilioConfig,
};
pub use signature::{signature, verify_signature};
pub use twiml::stream_twiml;
