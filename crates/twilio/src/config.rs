//! Settings of the Twilio adapter.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use secrecy::{ExposeSecret as _, SecretString};

/// Twilio's production REST API.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// How long one REST request may take, connection included, before it counts as failed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Twilio's upper bound for the `Timeout` (ring time) of a call.
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;

/// Answering-machine detection (Twilio `MachineDetection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum MachineDetection {
    /// Report `AnsweredBy` as soon as a human or machine is recognised.
    Enable,
    /// Wait for the end of the greeting (beep or silence) before reporting.
    DetectMessageEnd,
}

impl MachineDetection {
    /// The value Twilio expects in the form field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "Enable",
            Self::DetectMessageEnd => "DetectMessageEnd",
        }
    }
}

impl fmt::Display for MachineDetection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MachineDetection {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Enable" => Ok(Self::Enable),
            "DetectMessageEnd" => Ok(Self::DetectMessageEnd),
            other => bail!("machine detection must be Enable or DetectMessageEnd, not {other:?}"),
        }
    }
}

/// Everything the adapter needs to talk to Twilio. `Debug` shows the auth token redacted.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `AC` followed by 32 hexadecimal digits.
    pub account_sid: String,
    /// Signs webhooks and authenticates REST calls (HTTP Basic password).
    pub auth_token: SecretString,
    /// `https://api.twilio.com` in production, an emulator's address in tests. A trailing
    /// `/` is ignored.
    pub api_base: String,
    /// Limit for one REST request, including connecting.
    pub request_timeout: Duration,
    /// Twilio `Timeout`: seconds to let the phone ring (Twilio's default is 60).
    pub ring_timeout_secs: Option<u32>,
    /// Twilio `TimeLimit`: the longest a call may last, in seconds.
    pub time_limit_secs: Option<u32>,
    /// Twilio `MachineDetection`; off unless set.
    pub machine_detection: Option<MachineDetection>,
    /// Twilio `Record=true` when set.
    pub record: bool,
}

impl TwilioConfig {
    /// Settings with the defaults: production API base, 10 s request timeout, Twilio's own
    /// ring time and call limit, no machine detection, no recording.
    pub fn new(account_sid: impl Into<String>, auth_token: SecretString) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token,
            api_base: DEFAULT_API_BASE.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ring_timeout_secs: None,
            time_limit_secs: None,
            machine_detection: None,
            record: false,
        }
    }

    /// Checks every field and returns the API base without a trailing `/`.
    pub(crate) fn validate(&self) -> anyhow::Result<String> {
        ensure!(
            is_account_sid(&self.account_sid),
            "twilio account_sid must be 'AC' followed by 32 hexadecimal digits"
        );
        let token = self.auth_token.expose_secret();
        ensure!(
            !token.trim().is_empty(),
            "twilio auth_token must not be empty"
        );
        ensure!(
            !self.request_timeout.is_zero(),
            "twilio request_timeout must be greater than zero"
        );
        if let Some(ring) = self.ring_timeout_secs {
            ensure!(
                (1..=MAX_RING_TIMEOUT_SECS).contains(&ring),
                "twilio ring_timeout_secs must be between 1 and {MAX_RING_TIMEOUT_SECS}"
            );
        }
        if let Some(limit) = self.time_limit_secs {
            ensure!(
                limit > 0,
                "twilio time_limit_secs must be greater than zero"
            );
        }
        let base = self.api_base.trim_end_matches('/');
        let parsed = url::Url::parse(base)
            .with_context(|| format!("twilio api_base {base:?} is not an absolute URL"))?;
        ensure!(
            matches!(parsed.scheme(), "http" | "https")
                && parsed.host_str().is_some_and(|h| !h.is_empty())
                && parsed.query().is_none()
                && parsed.fragment().is_none()
                && parsed.username().is_empty()
                && parsed.password().is_none(),
            "twilio api_base must be http(s)://host[:port][/path] without credentials, query \
             or fragment (got {base:?})"
        );
        Ok(base.to_owned())
    }
}

fn is_account_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789ABCDEF";

    fn config() -> TwilioConfig {
        TwilioConfig::new(SID, SecretString::from("token-value-123"))
    }

    #[test]
    fn the_defaults_are_production_with_every_option_off() {
        let config = config();
        assert_eq!(config.api_base, "https://api.twilio.com");
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.ring_timeout_secs, None);
        assert_eq!(config.time_limit_secs, None);
        assert_eq!(config.machine_detection, None);
        assert!(!config.record);
        assert_eq!(config.validate().expect("valid"), "https://api.twilio.com");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("token-value-123"), "{shown}");
        assert!(shown.contains(SID), "{shown}");
    }

    #[test]
    fn account_sids_must_be_ac_and_32_hex_digits() {
        for bad in [
            "",
            "AC0123456789abcdef0123456789abcde",
            "AC0123456789abcdef0123456789abcdef0",
            "CA0123456789abcdef0123456789abcdef",
            "ac0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdeg",
        ] {
            let config = TwilioConfig {
                account_sid: bad.to_owned(),
                ..config()
            };
            assert!(config.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_or_blank_token_is_refused() {
        for bad in ["", "   "] {
            let config = TwilioConfig {
                auth_token: SecretString::from(bad),
                ..config()
            };
            assert!(config.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_api_base_must_be_a_plain_http_url_and_loses_its_trailing_slash() {
        for bad in [
            "",
            "api.twilio.com",
            "ftp://api.twilio.com",
            "https://api.twilio.com?x=1",
            "https://api.twilio.com#frag",
            "https://user:pass@api.twilio.com",
        ] {
            let config = TwilioConfig {
                api_base: bad.to_owned(),
                ..config()
            };
            assert!(config.validate().is_err(), "{bad:?}");
        }
        let config = TwilioConfig {
            api_base: "http://127.0.0.1:8080/twilio/".to_owned(),
            ..config()
        };
        assert_eq!(
            config.validate().expect("valid"),
            "http://127.0.0.1:8080/twilio"
        );
    }

    #[test]
    fn out_of_range_call_options_are_refused() {
        let cases = [
            TwilioConfig {
                ring_timeout_secs: Some(0),
                ..config()
            },
            TwilioConfig {
                ring_timeout_secs: Some(601),
                ..config()
            },
            TwilioConfig {
                time_limit_secs: Some(0),
                ..config()
            },
            TwilioConfig {
                request_timeout: Duration::ZERO,
                ..config()
            },
        ];
        for config in cases {
            assert!(config.validate().is_err(), "{config:?}");
        }
        let edge = TwilioConfig {
            ring_timeout_secs: Some(600),
            time_limit_secs: Some(1),
            ..config()
        };
        assert!(edge.validate().is_ok());
    }

    #[test]
    fn machine_detection_parses_twilio_spellings_only() {
        assert_eq!(
            "Enable".parse::<MachineDetection>().expect("valid"),
            MachineDetection::Enable
        );
        assert_eq!(
            "DetectMessageEnd"
                .parse::<MachineDetection>()
                .expect("valid"),
            MachineDetection::DetectMessageEnd
        );
        assert!("enable".parse::<MachineDetection>().is_err());
        assert_eq!(
            MachineDetection::DetectMessageEnd.to_string(),
            "DetectMessageEnd"
        );
    }
}
