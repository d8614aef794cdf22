//! outcall, the binary's library half: settings, telemetry, the composition root and the
//! command line. Integration tests drive [`startup::Application`] directly.

mod call_metrics;
pub mod cli;
pub mod demo;
pub mod emulate;
pub mod providers;
pub mod settings;
pub mod startup;
pub mod store;
pub mod system;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
