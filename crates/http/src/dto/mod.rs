//! Request and response bodies.
//!
//! Requests are plain, unvalidated structs (members as [`field::Field`]) that convert with one
//! `TryFrom` into a domain command (`NewClient`, `ClientPatch`, `ProfilePatch`, `NewCall`,
//! `CallPatch`, `CallRequest`, `StatusEvent`, list queries), naming the offending member on
//! failure. Responses borrow domain values and serialise them in the contract's camelCase
//! shapes; [`webhooks::WebhookAck`] answers provider webhooks.

pub mod auth;
pub mod calls;
pub mod clients;
pub mod field;
pub mod placement;
pub mod queries;
pub mod schema;
pub mod webhooks;

use serde::Serialize;

/// `{"message": "..."}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    message: &'static str,
}

impl MessageResponse {
    pub fn new(message: &'static str) -> Self {
        Self { message }
    }
}
