//! Validated value types. Each has private fields, a fallible constructor and its own error.

mod contact;
mod dynamic;
pub mod dynamic_json;
mod ids;
mod secret;
mod status;
mod text;

pub use contact::{Email, EmailError, PhoneNumber, PhoneNumberError};
pub use dynamic::{DynamicValue, DynamicVariables, DynamicVariablesError};
pub use ids::{
    AgentId, AgentIdError, CallId, CallIdError, CallSid, CallSidError, ClientId, ClientIdError,
    ConversationId, ConversationIdError,
};
pub use secret::{ClientSecret, ClientSecretError, SecretHash};
pub use status::{ClientStatus, ClientStatusError};
pub use text::{BoundedText, TextError};
