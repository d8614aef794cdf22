//! Provider emulators (work in progress).
