//! The telephony (and later voice-agent) providers: the real ones from settings, or in sandbox
//! mode the in-process emulators with the real adapters pointed at them, so that sandbox calls
//! take the production code paths (REST, signed callbacks, signed stream upgrade).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outcall_domain::ports::Telephony;
use outcall_sandbox::{CallOutcomeScript, MediaScript, TwilioEmulator, TwilioEmulatorConfig};
use outcall_twilio::{MachineDetection, TwilioClient, TwilioConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;

/// Destination numbers with a scripted fate in sandbox mode (Twilio's own test numbers live in
/// the same +1 500 555 range): anything else is answered.
pub const SANDBOX_BUSY_NUMBER: &str = "+15005550002";
pub const SANDBOX_NO_ANSWER_NUMBER: &str = "+15005550003";
pub const SANDBOX_FAILED_NUMBER: &str = "+15005550004";
pub const SANDBOX_INVALID_NUMBER: &str = "+15005550001";

/// The providers outcall talks to, and the emulators that stand in for them in sandbox mode
/// (kept here so they live as long as the application).
pub struct Providers {
    pub telephony: Arc<dyn Telephony>,
    pub twilio_emulator: Option<TwilioEmulator>,
}

/// Builds the providers the settings ask for.
///
/// # Errors
/// When an adapter refuses its settings or an emulator cannot start.
pub async fn build(settings: &Settings) -> anyhow::Result<Providers> {
    if settings.sandbox_enabled() {
        return sandbox(settings).await;
    }
    let twilio = twilio_config(
        settings,
        settings.twilio.account_sid.clone(),
        SecretString::from(settings.twilio.auth_token.expose_secret().to_owned()),
        settings.twilio.api_base.clone(),
    )?;
    let telephony = TwilioClient::new(twilio).context("setting up the Twilio adapter")?;
    Ok(Providers {
        telephony: Arc::new(telephony),
        twilio_emulator: None,
    })
}

async fn sandbox(settings: &Settings) -> anyhow::Result<Providers> {
    let account_sid = format!("AC{}", random_hex(16)?);
    let auth_token = random_hex(16)?;
    let scripts: HashMap<String, CallOutcomeScript> = [
        (SANDBOX_BUSY_NUMBER, CallOutcomeScript::Busy),
        (SANDBOX_NO_ANSWER_NUMBER, CallOutcomeScript::NoAnswer),
        (SANDBOX_FAILED_NUMBER, CallOutcomeScript::Failed),
        (
            SANDBOX_INVALID_NUMBER,
            CallOutcomeScript::RejectOnCreate {
                http_status: 400,
                code: 21211,
                message: format!(
                    "The 'To' number {SANDBOX_INVALID_NUMBER} is not a valid phone number."
                ),
            },
        ),
    ]
    .into_iter()
    .map(|(number, script)| (number.to_owned(), script))
    .collect();
    let emulator = TwilioEmulator::start(TwilioEmulatorConfig {
        account_sid: account_sid.clone(),
        auth_token: auth_token.clone(),
        ring_time: Duration::from_millis(settings.sandbox.ring_ms),
        talk_time: Duration::from_millis(settings.sandbox.talk_ms),
        media: MediaScript::Silence,
        default_outcome: CallOutcomeScript::Answered,
        scripts,
    })
    .await
    .context("starting the sandbox Twilio emulator")?;
    let twilio = twilio_config(
        settings,
        account_sid,
        SecretString::from(auth_token),
        emulator.base_url(),
    )?;
    let telephony = TwilioClient::new(twilio).context("setting up the Twilio adapter")?;
    tracing::info!(twilio = %emulator.base_url(), "sandbox Twilio emulator running");
    Ok(Providers {
        telephony: Arc::new(telephony),
        twilio_emulator: Some(emulator),
    })
}

fn twilio_config(
    settings: &Settings,
    account_sid: String,
    auth_token: SecretString,
    api_base: String,
) -> anyhow::Result<TwilioConfig> {
    let t = &settings.twilio;
    let machine_detection = match t.machine_detection.as_str() {
        "" => None,
        "Enable" => Some(MachineDetection::Enable),
        "DetectMessageEnd" => Some(MachineDetection::DetectMessageEnd),
        other => anyhow::bail!("OUTCALL__TWILIO__MACHINE_DETECTION: unknown value {other:?}"),
    };
    Ok(TwilioConfig {
        account_sid,
        auth_token,
        api_base,
        request_timeout: Duration::from_secs(t.request_timeout_secs),
        ring_timeout_secs: (t.ring_timeout_secs > 0).then_some(t.ring_timeout_secs),
        time_limit_secs: (t.time_limit_secs > 0).then_some(t.time_limit_secs),
        machine_detection,
        record: t.record,
    })
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
