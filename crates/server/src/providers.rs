//! The telephony (and later voice-agent) providers: the real ones from settings, or in sandbox
//! mode the in-process emulators with the real adapters pointed at them, so that sandbox calls
//! take the production code paths (REST, signed callbacks, signed stream upgrade).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outcall_domain::ports::{AgentWebhooks, Telephony, VoiceAgent};
use outcall_domain::webhooks::paths;
use outcall_elevenlabs::{ElevenLabsClient, ElevenLabsConfig, ElevenLabsWebhooks};
use outcall_sandbox::{
    CallOutcomeScript, ConversationScript, ElevenLabsEmulator, ElevenLabsEmulatorConfig,
    MediaScript, ScriptTurn, ScriptedAnalysis, TwilioEmulator, TwilioEmulatorConfig, WebhookTarget,
};
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
    pub voice_agent: Arc<dyn VoiceAgent>,
    pub agent_webhooks: Arc<dyn AgentWebhooks>,
    pub emulators: Option<Emulators>,
}

/// The in-process provider emulators of sandbox mode.
pub struct Emulators {
    pub twilio: TwilioEmulator,
    pub elevenlabs: ElevenLabsEmulator,
}

impl Emulators {
    pub async fn shutdown(self) {
        self.twilio.shutdown().await;
        self.elevenlabs.shutdown().await;
    }
}

/// Builds the providers the settings ask for. `public_url` is where the providers reach this
/// service (the sandbox's agent emulator posts its webhook there).
///
/// # Errors
/// When an adapter refuses its settings or an emulator cannot start.
pub async fn build(settings: &Settings, public_url: &str) -> anyhow::Result<Providers> {
    if settings.sandbox_enabled() {
        return sandbox(settings, public_url).await;
    }
    let twilio = twilio_config(
        settings,
        settings.twilio.account_sid.clone(),
        SecretString::from(settings.twilio.auth_token.expose_secret().to_owned()),
        settings.twilio.api_base.clone(),
    )?;
    let telephony = TwilioClient::new(twilio).context("setting up the Twilio adapter")?;
    let (voice_agent, agent_webhooks) = elevenlabs(
        SecretString::from(settings.elevenlabs.api_key.expose_secret().to_owned()),
        settings.elevenlabs.api_base.clone(),
        settings.elevenlabs.webhook_secret.expose_secret(),
    )?;
    Ok(Providers {
        telephony: Arc::new(telephony),
        voice_agent,
        agent_webhooks,
        emulators: None,
    })
}

fn elevenlabs(
    api_key: SecretString,
    api_base: String,
    webhook_secret: &str,
) -> anyhow::Result<(Arc<dyn VoiceAgent>, Arc<dyn AgentWebhooks>)> {
    let mut config = ElevenLabsConfig::new(api_key);
    config.api_base = api_base;
    let client = ElevenLabsClient::new(config).context("setting up the ElevenLabs adapter")?;
    let webhooks = ElevenLabsWebhooks::new(SecretString::from(webhook_secret.to_owned()))
        .context("OUTCALL__ELEVENLABS__WEBHOOK_SECRET")?;
    Ok((Arc::new(client), Arc::new(webhooks)))
}

/// The scripted conversation of sandbox calls: a few turns, then a post-call report.
fn sandbox_script() -> ConversationScript {
    let turn = |user: &str, agent: &str| ScriptTurn {
        user: user.to_owned(),
        // The callee "speaks" for a second and a half before each line is transcribed.
        user_audio_ms: 1500,
        agent: agent.to_owned(),
    };
    ConversationScript {
        first_message: "Hi, this is Ava from the sandbox. Do you have a minute?".to_owned(),
        turns: vec![
            turn(
                "Sure, what is it about?",
                "We help businesses answer every call. Would a demo next week suit you?",
            ),
            turn(
                "Yes, Tuesday morning works.",
                "Great, I have booked Tuesday at 10. Thanks for your time!",
            ),
        ],
        barge_in_on_turn: None,
        end_after_turns: true,
        ping_interval: Duration::from_secs(2),
        analysis: ScriptedAnalysis {
            summary: "The callee agreed to a product demo on Tuesday at 10.".to_owned(),
            call_successful: "success".to_owned(),
            data_collection: vec![
                ("call_outcome".to_owned(), serde_json::json!("interested")),
                ("call_sentiment".to_owned(), serde_json::json!("positive")),
                ("next_action".to_owned(), serde_json::json!("demo")),
                (
                    "agent_notes".to_owned(),
                    serde_json::json!("Prefers mornings"),
                ),
            ],
        },
    }
}

/// The Twilio emulator of sandbox mode (and `outcall sandbox twilio`): calls to the
/// `SANDBOX_*_NUMBER`s meet their fate, every other number answers.
pub fn sandbox_twilio_config(
    account_sid: String,
    auth_token: String,
    ring_time: Duration,
    talk_time: Duration,
) -> TwilioEmulatorConfig {
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
    TwilioEmulatorConfig {
        account_sid,
        auth_token,
        ring_time,
        talk_time,
        media: MediaScript::Silence,
        default_outcome: CallOutcomeScript::Answered,
        scripts,
    }
}

/// The ElevenLabs emulator of sandbox mode (and `outcall sandbox elevenlabs`): any agent,
/// the sandbox conversation at real-time pace in `ulaw_8000`.
pub fn sandbox_agent_config(
    api_key: String,
    webhook: Option<WebhookTarget>,
) -> ElevenLabsEmulatorConfig {
    ElevenLabsEmulatorConfig {
        api_key,
        agents: Vec::new(),
        script: sandbox_script(),
        audio_chunk_ms: 100,
        audio_realtime: true,
        webhook,
        agent_output_format: "ulaw_8000".to_owned(),
        user_input_format: "ulaw_8000".to_owned(),
    }
}

async fn sandbox(settings: &Settings, public_url: &str) -> anyhow::Result<Providers> {
    let account_sid = format!("AC{}", random_hex(16)?);
    let auth_token = random_hex(16)?;
    let twilio_emulator = TwilioEmulator::start(sandbox_twilio_config(
        account_sid.clone(),
        auth_token.clone(),
        Duration::from_millis(settings.sandbox.ring_ms),
        Duration::from_millis(settings.sandbox.talk_ms),
    ))
    .await
    .context("starting the sandbox Twilio emulator")?;
    let twilio = twilio_config(
        settings,
        account_sid,
        SecretString::from(auth_token),
        twilio_emulator.base_url(),
    )?;
    let telephony = TwilioClient::new(twilio).context("setting up the Twilio adapter")?;

    let api_key = random_hex(16)?;
    let webhook_secret = random_hex(16)?;
    let agent_emulator = ElevenLabsEmulator::start(sandbox_agent_config(
        api_key.clone(),
        Some(WebhookTarget {
            url: format!("{public_url}{}", paths::ELEVENLABS_POST_CALL),
            secret: webhook_secret.clone(),
            delay: Duration::from_millis(500),
        }),
    ))
    .await
    .context("starting the sandbox ElevenLabs emulator")?;
    let (voice_agent, agent_webhooks) = elevenlabs(
        SecretString::from(api_key),
        agent_emulator.base_url(),
        &webhook_secret,
    )?;
    tracing::info!(
        twilio = %twilio_emulator.base_url(),
        elevenlabs = %agent_emulator.base_url(),
        "sandbox provider emulators running"
    );
    Ok(Providers {
        telephony: Arc::new(telephony),
        voice_agent,
        agent_webhooks,
        emulators: Some(Emulators {
            twilio: twilio_emulator,
            elevenlabs: agent_emulator,
        }),
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

pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
