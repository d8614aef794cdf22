//! Twilio adapter (work in progress).
