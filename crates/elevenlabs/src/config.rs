//! Settings of the ElevenLabs REST and WebSocket client.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use secrecy::{ExposeSecret as _, SecretString};

/// ElevenLabs' production REST API.
pub const DEFAULT_API_BASE: &str = "https://api.elevenlabs.io";

/// How long one REST request may take, connecting included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take: the TCP connection of a REST request, and the whole opening
/// of the conversation WebSocket (TCP, TLS and the upgrade).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the client needs to talk to ElevenLabs. `Debug` shows the API key redacted.
#[derive(Debug, Clone)]
pub struct ElevenLabsConfig {
    /// Sent as `xi-api-key`.
    pub api_key: SecretString,
    /// `https://api.elevenlabs.io` in production, an emulator's address in tests. A trailing
    /// `/` is ignored.
    pub api_base: String,
    /// Limit for one REST request, including connecting.
    pub request_timeout: Duration,
    /// Limit for connecting: a REST request's TCP connection, and opening the conversation
    /// WebSocket from start to finished upgrade.
    pub connect_timeout: Duration,
}

impl ElevenLabsConfig {
    /// Settings with the defaults: production API base, 10 s request timeout, 5 s connect
    /// timeout.
    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            api_base: DEFAULT_API_BASE.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Checks every field and returns the API base without a trailing `/`.
    pub(crate) fn validate(&self) -> anyhow::Result<String> {
        ensure!(
            !self.api_key.expose_secret().trim().is_empty(),
            "elevenlabs api_key must not be empty"
        );
        ensure!(
            !self.request_timeout.is_zero(),
            "elevenlabs request_timeout must be greater than zero"
        );
        ensure!(
            !self.connect_timeout.is_zero(),
            "elevenlabs connect_timeout must be greater than zero"
        );
        let base = self.api_base.trim_end_matches('/');
        let parsed = url::Url::parse(base).context("elevenlabs api_base is not a URL")?;
        ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
            "elevenlabs api_base must be an absolute http(s) URL"
        );
        ensure!(
            parsed.query().is_none() && parsed.fragment().is_none(),
            "elevenlabs api_base must not have a query or fragment"
        );
        Ok(base.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ElevenLabsConfig {
        ElevenLabsConfig::new(SecretString::from("xi-key-123"))
    }

    #[test]
    fn the_defaults_point_at_production_with_the_documented_timeouts() {
        let config = config();
        assert_eq!(config.api_base, "https://api.elevenlabs.io");
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(
            config.validate().expect("valid"),
            "https://api.elevenlabs.io"
        );
    }

    #[test]
    fn a_trailing_slash_on_the_api_base_is_ignored() {
        let config = ElevenLabsConfig {
            api_base: "http://127.0.0.1:9000/".into(),
            ..config()
        };
        assert_eq!(config.validate().expect("valid"), "http://127.0.0.1:9000");
    }

    #[test]
    fn invalid_settings_are_refused_with_the_key_they_concern() {
        let cases = [
            ElevenLabsConfig {
                api_key: SecretString::from("  "),
                ..config()
            },
            ElevenLabsConfig {
                api_base: "ftp://example.com".into(),
                ..config()
            },
            ElevenLabsConfig {
                api_base: "not a url".into(),
                ..config()
            },
            ElevenLabsConfig {
                request_timeout: Duration::ZERO,
                ..config()
            },
            ElevenLabsConfig {
                connect_timeout: Duration::ZERO,
                ..config()
            },
        ];
        for case in cases {
            let error = case.validate().expect_err("invalid").to_string();
            assert!(error.starts_with("elevenlabs "), "{error}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("xi-key-123"), "{shown}");
    }
}
