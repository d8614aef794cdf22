//! `outcall sandbox twilio|elevenlabs`: one provider emulator on a fixed address, for manual
//! runs of a real-provider `outcall serve` (or any other client) against the sandbox's
//! scripted numbers and conversation. Runs until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use outcall_domain::webhooks::paths;
use outcall_sandbox::{ElevenLabsEmulator, TwilioEmulator, WebhookTarget};

use crate::providers::{
    SANDBOX_BUSY_NUMBER, SANDBOX_FAILED_NUMBER, SANDBOX_INVALID_NUMBER, SANDBOX_NO_ANSWER_NUMBER,
    random_hex, sandbox_agent_config, sandbox_twilio_config,
};

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Twilio's REST API for calls, signed status callbacks and Media Streams.
    Twilio {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3100")]
        listen: SocketAddr,
        /// The Account SID the API accepts. Default: a random one.
        #[arg(long)]
        account_sid: Option<String>,
        /// The auth token (Basic auth password and signing key). Default: a random one.
        #[arg(
            long,
            env = "OUTCALL_SANDBOX_TWILIO_AUTH_TOKEN",
            hide_env_values = true
        )]
        auth_token: Option<String>,
        /// How long a call rings before its scripted outcome, in ms.
        #[arg(long, default_value_t = 2000)]
        ring_ms: u64,
        /// How long an answered call lasts unless ended first, in ms.
        #[arg(long, default_value_t = 60_000)]
        talk_ms: u64,
    },
    /// ElevenLabs' signed-URL endpoint, conversation WebSocket and post-call webhook.
    Elevenlabs {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3200")]
        listen: SocketAddr,
        /// The `xi-api-key` accepted. Default: a random one.
        #[arg(
            long,
            env = "OUTCALL_SANDBOX_ELEVENLABS_API_KEY",
            hide_env_values = true
        )]
        api_key: Option<String>,
        /// Base URL of the outcall that receives post-call webhooks (the path is added);
        /// none are sent without it.
        #[arg(long)]
        webhook_to: Option<String>,
        /// HMAC key of the post-call webhooks. Default: a random one.
        #[arg(
            long,
            env = "OUTCALL_SANDBOX_ELEVENLABS_WEBHOOK_SECRET",
            hide_env_values = true
        )]
        webhook_secret: Option<String>,
    },
}

/// Starts the emulator, prints how to point outcall at it, and serves until a stop signal.
///
/// # Errors
/// A credential of the wrong shape, or the address cannot be bound.
pub async fn run(command: EmulatorCommand) -> anyhow::Result<()> {
    match command {
        EmulatorCommand::Twilio {
            listen,
            account_sid,
            auth_token,
            ring_ms,
            talk_ms,
        } => {
            let account_sid = match account_sid {
                Some(sid) => sid,
                None => format!("AC{}", random_hex(16)?),
            };
            if !is_account_sid(&account_sid) {
                anyhow::bail!("--account-sid: AC followed by 32 hexadecimal digits");
            }
            let (auth_token, shown_token) = credential(auth_token, "--auth-token")?;
            let emulator = TwilioEmulator::start_on(
                sandbox_twilio_config(
                    account_sid.clone(),
                    auth_token.clone(),
                    Duration::from_millis(ring_ms),
                    Duration::from_millis(talk_ms),
                ),
                listen,
            )
            .await
            .context("starting the Twilio emulator")?;
            println!("Twilio emulator listening on {}", emulator.base_url());
            println!("Point a real-provider outcall at it with:");
            println!("  OUTCALL__SANDBOX__ENABLED=false");
            println!("  OUTCALL__TWILIO__API_BASE={}", emulator.base_url());
            println!("  OUTCALL__TWILIO__ACCOUNT_SID={account_sid}");
            println!("  OUTCALL__TWILIO__AUTH_TOKEN={shown_token}");
            println!(
                "Scripted numbers: {SANDBOX_BUSY_NUMBER} busy, {SANDBOX_NO_ANSWER_NUMBER} no answer, \
                 {SANDBOX_FAILED_NUMBER} failed, {SANDBOX_INVALID_NUMBER} refused (21211); \
                 any other number answers."
            );
            crate::startup::wait_for_shutdown_signal().await;
            emulator.shutdown().await;
        }
        EmulatorCommand::Elevenlabs {
            listen,
            api_key,
            webhook_to,
            webhook_secret,
        } => {
            let (api_key, shown_key) = credential(api_key, "--api-key")?;
            let (webhook_secret, shown_secret) = credential(webhook_secret, "--webhook-secret")?;
            let webhook = webhook_to.as_deref().map(|base| WebhookTarget {
                url: format!(
                    "{}{}",
                    base.trim_end_matches('/'),
                    paths::ELEVENLABS_POST_CALL
                ),
                secret: webhook_secret.clone(),
                delay: Duration::from_millis(500),
            });
            let emulator =
                ElevenLabsEmulator::start_on(sandbox_agent_config(api_key, webhook), listen)
                    .await
                    .context("starting the ElevenLabs emulator")?;
            println!("ElevenLabs emulator listening on {}", emulator.base_url());
            println!("Point a real-provider outcall at it with:");
            println!("  OUTCALL__ELEVENLABS__API_BASE={}", emulator.base_url());
            println!("  OUTCALL__ELEVENLABS__API_KEY={shown_key}");
            println!("  OUTCALL__ELEVENLABS__WEBHOOK_SECRET={shown_secret}");
            match webhook_to {
                Some(base) => println!("Post-call webhooks go to {base}"),
                None => println!("No post-call webhooks (start with --webhook-to URL for them)."),
            }
            crate::startup::wait_for_shutdown_signal().await;
            emulator.shutdown().await;
        }
    }
    Ok(())
}

/// The given value (checked for shape) or a random one, and what to print for it: a
/// generated value in full, a given one (the caller knows it) never.
fn credential(given: Option<String>, flag: &str) -> anyhow::Result<(String, String)> {
    match given {
        None => {
            let value = random_hex(16)?;
            Ok((value.clone(), value))
        }
        Some(value) if value.len() >= 8 && value.chars().all(|c| c.is_ascii_graphic()) => {
            Ok((value, format!("<the value of {flag}>")))
        }
        Some(_) => anyhow::bail!("{flag}: at least 8 visible ASCII characters"),
    }
}

fn is_account_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_sids_and_credentials_are_checked_for_shape() {
        assert!(is_account_sid("AC0123456789abcdef0123456789abcdef"));
        assert!(!is_account_sid("AC0123"));
        assert!(!is_account_sid("XX0123456789abcdef0123456789abcdef"));
        assert!(!is_account_sid("AC0123456789abcdef0123456789abcdeg"));
        let (given, shown) = credential(Some("abcdefgh".into()), "--k").unwrap();
        assert_eq!(given, "abcdefgh");
        assert!(
            !shown.contains("abcdefgh"),
            "a given secret is not echoed: {shown}"
        );
        assert!(credential(Some("short".into()), "--k").is_err());
        assert!(credential(Some("has space in".into()), "--k").is_err());
        let (generated, shown) = credential(None, "--k").unwrap();
        assert_eq!(generated.len(), 32);
        assert_eq!(shown, generated);
    }
}
