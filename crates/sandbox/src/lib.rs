//! Emulators of the providers outcall talks to, speaking their real wire protocols, for tests,
//! benchmarks and sandbox mode. They depend on no other workspace crate on purpose: they play
//! the provider's side and must not share the adapters' understanding of the protocols.

pub mod elevenlabs;
mod tasks;
pub mod twilio;

pub use elevenlabs::{
    AgentMessage, ClientMessageRecord, ConversationEnd, ConversationRecord, ConversationScript,
    ConversationStatus, ElevenLabsEmulator, ElevenLabsEmulatorConfig, PongRecord, ScriptTurn,
    ScriptedAnalysis, SentMessage, TranscriptEntry, TranscriptRole, WebhookDelivery, WebhookTarget,
    elevenlabs_signature,
};
pub use twilio::{
    CallOutcomeScript, CallbackRecord, EmulatedCallRecord, EmulatedCallStatus,
    EmulatedStreamRecord, MediaScript, ReceivedStreamMessage, StatusChange, StreamEnd,
    StreamMessage, TwilioEmulator, TwilioEmulatorConfig, TwimlFetchRecord, twilio_signature,
};
