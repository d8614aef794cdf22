//! The provider emulators (`outcall-sandbox`) run in the test process, with `outcall serve`
//! in real-provider mode (sandbox off) pointed at them through its ordinary settings: the
//! Twilio and ElevenLabs API bases, the account credentials, and a public URL that the
//! emulators call back (Twilio's TwiML fetch, status callbacks and media stream; the agent's
//! post-call webhook).

use std::collections::HashMap;
use std::time::Duration;

use outcall_sandbox::{
    CallOutcomeScript, ConversationScript, ElevenLabsEmulator, ElevenLabsEmulatorConfig,
    MediaScript, ScriptTurn, ScriptedAnalysis, TwilioEmulator, TwilioEmulatorConfig, WebhookTarget,
};

pub const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_AUTH_TOKEN: &str = "e2e-twilio-auth-token-0123456789";
pub const ELEVENLABS_API_KEY: &str = "e2e-elevenlabs-api-key";
pub const ELEVENLABS_WEBHOOK_SECRET: &str = "e2e-elevenlabs-webhook-secret";
/// outcall's post-call webhook path (docs/api.md 2.10).
pub const POST_CALL_PATH: &str = "/webhooks/elevenlabs/post-call";

/// How the emulated call goes.
#[derive(Debug, Clone)]
pub struct CallScript {
    /// Ringing before the callee answers.
    pub ring: Duration,
    /// The longest an answered call lasts (Twilio ends it after this).
    pub talk: Duration,
    /// What the agent says and reports afterwards.
    pub conversation: ConversationScript,
    /// From the end of a conversation to its post-call webhook.
    pub webhook_delay: Duration,
}

/// The summary every scripted conversation reports.
pub const SCRIPTED_SUMMARY: &str = "The callee wants a demo on Tuesday.";

/// A short conversation: the agent's first line (the make-call `firstMessage` replaces it),
/// `turns` exchanges in which the callee speaks for `user_audio_ms`, and the agent hangs up
/// after the last reply. The report says the callee is interested and positive.
pub fn short_conversation(turns: usize, user_audio_ms: u32) -> ConversationScript {
    ConversationScript {
        first_message: "Hello there.".to_owned(),
        turns: (1..=turns)
            .map(|n| ScriptTurn {
                user: format!("Answer {n}."),
                user_audio_ms,
                agent: format!("Reply {n}."),
            })
            .collect(),
        barge_in_on_turn: None,
        end_after_turns: true,
        ping_interval: Duration::from_millis(500),
        analysis: ScriptedAnalysis {
            summary: SCRIPTED_SUMMARY.to_owned(),
            call_successful: "success".to_owned(),
            data_collection: vec![
                ("call_outcome".to_owned(), serde_json::json!("interested")),
                ("call_sentiment".to_owned(), serde_json::json!("positive")),
                ("next_action".to_owned(), serde_json::json!("demo")),
            ],
        },
    }
}

/// A Twilio emulator and an ElevenLabs emulator, both calling back to `public_url`.
pub struct EmulatedProviders {
    pub twilio: TwilioEmulator,
    pub elevenlabs: ElevenLabsEmulator,
    public_url: String,
}

impl EmulatedProviders {
    /// Starts both emulators (inside the current tokio runtime).
    ///
    /// # Errors
    /// When an emulator cannot start.
    pub async fn start(public_url: &str, script: CallScript) -> anyhow::Result<Self> {
        let twilio = TwilioEmulator::start(TwilioEmulatorConfig {
            account_sid: TWILIO_ACCOUNT_SID.to_owned(),
            auth_token: TWILIO_AUTH_TOKEN.to_owned(),
            ring_time: script.ring,
            talk_time: script.talk,
            media: MediaScript::Silence,
            default_outcome: CallOutcomeScript::Answered,
            scripts: HashMap::new(),
        })
        .await?;
        let elevenlabs = ElevenLabsEmulator::start(ElevenLabsEmulatorConfig {
            api_key: ELEVENLABS_API_KEY.to_owned(),
            agents: Vec::new(),
            script: script.conversation,
            audio_chunk_ms: 100,
            audio_realtime: true,
            webhook: Some(WebhookTarget {
                url: format!("{public_url}{POST_CALL_PATH}"),
                secret: ELEVENLABS_WEBHOOK_SECRET.to_owned(),
                delay: script.webhook_delay,
            }),
            agent_output_format: "ulaw_8000".to_owned(),
            user_input_format: "ulaw_8000".to_owned(),
        })
        .await?;
        Ok(Self {
            twilio,
            elevenlabs,
            public_url: public_url.to_owned(),
        })
    }

    /// The `OUTCALL__` settings of a replica in real-provider mode using these emulators.
    pub fn outcall_env(&self) -> Vec<(String, String)> {
        [
            ("OUTCALL__SANDBOX__ENABLED", "false".to_owned()),
            ("OUTCALL__SERVER__PUBLIC_URL", self.public_url.clone()),
            (
                "OUTCALL__TWILIO__ACCOUNT_SID",
                TWILIO_ACCOUNT_SID.to_owned(),
            ),
            ("OUTCALL__TWILIO__AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
            ("OUTCALL__TWILIO__API_BASE", self.twilio.base_url()),
            (
                "OUTCALL__ELEVENLABS__API_KEY",
                ELEVENLABS_API_KEY.to_owned(),
            ),
            ("OUTCALL__ELEVENLABS__API_BASE", self.elevenlabs.base_url()),
            (
                "OUTCALL__ELEVENLABS__WEBHOOK_SECRET",
                ELEVENLABS_WEBHOOK_SECRET.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub async fn shutdown(self) {
        self.twilio.shutdown().await;
        self.elevenlabs.shutdown().await;
    }
}
