//! outcall's pure domain.
//!
//! Values that cannot hold invalid data, the `Client` and `Call` aggregates, the call-status
//! rules, the ports every adapter implements, and the use-case services written over those
//! ports. Nothing here performs IO or names a framework: adapters live in their own crates and
//! the `outcall` binary wires them together.

pub mod admin;
pub mod analysis;
pub mod call;
pub mod call_status;
pub mod client;
pub mod ports;
pub mod queries;
pub mod services;
pub mod values;
pub mod webhooks;

/// Every instant in the domain: UTC, millisecond precision by convention of the `Clock`.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

pub use admin::{
    AdminAccount, AdminPassword, AdminPasswordError, AdminUsername, AdminUsernameError,
};
pub use call::{
    Call, CallData, CallDetails, CallOutcome, CallOutcomeError, CallPatch, NewCall, Sentiment,
    SentimentError, StatusEvent, StatusRegression, TRANSPORT_FAILURE_CODE,
};
pub use call_status::{CallStatus, CallStatusError, StatusChange};
pub use client::{
    Client, ClientMeta, ClientMetaError, ClientPatch, MetaPatch, NewClient, ProfilePatch,
};
pub use values::*;

#[cfg(any(test, feature = "mocks"))]
pub mod test_support;
