//! Typed, layered settings: built-in defaults -> optional `--config FILE` ->
//! `OUTCALL__SECTION__KEY` environment variables. Validation turns every bad or missing value
//! into one line naming the environment variable and the problem.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use outcall_domain::{AdminPassword, AdminUsername};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Longest token lifetime accepted (the signer refuses more).
const MAX_TOKEN_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// A setting that stops start-up: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub key: String,
    pub problem: String,
}

impl SettingsError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: env_name(key),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for SettingsError {}

/// `auth.jwt_secret` -> `OUTCALL__AUTH__JWT_SECRET`.
pub fn env_name(key: &str) -> String {
    format!("OUTCALL__{}", key.replace('.', "__").to_uppercase())
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub twilio: TwilioSettings,
    pub elevenlabs: ElevenLabsSettings,
    pub analysis: AnalysisSettings,
    pub sandbox: SandboxSettings,
    pub http: HttpLimits,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    /// 0 binds any free port.
    pub port: u16,
    pub public_url: String,
    pub drain_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub data_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub token_ttl_secs: u64,
    pub issuer: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub api_base: String,
    pub request_timeout_secs: u64,
    pub ring_timeout_secs: u32,
    pub time_limit_secs: u32,
    pub machine_detection: String,
    pub record: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ElevenLabsSettings {
    pub api_key: SecretString,
    pub api_base: String,
    pub webhook_secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AnalysisSettings {
    pub outcome_id: String,
    pub sentiment_id: String,
    pub next_action_id: String,
    pub next_action_date_id: String,
    pub agent_notes_id: String,
    pub fetch_missed_after_minutes: u64,
    pub fetch_interval_secs: u64,
    /// Calls that ended longer ago than this are no longer fetched.
    pub fetch_missed_within_hours: u64,
    /// The most fetches per call; each fruitless one doubles the wait before the next.
    pub fetch_missed_max_attempts: u32,
    /// The longest wait between two fetches of one call.
    pub fetch_missed_max_backoff_minutes: u64,
    /// The most calls fetched per round.
    pub fetch_missed_batch: u32,
}

impl AnalysisSettings {
    pub fn mapping(&self) -> outcall_domain::analysis::AnalysisMapping {
        outcall_domain::analysis::AnalysisMapping {
            outcome: self.outcome_id.clone(),
            sentiment: self.sentiment_id.clone(),
            next_action: self.next_action_id.clone(),
            next_action_date: self.next_action_date_id.clone(),
            agent_notes: self.agent_notes_id.clone(),
        }
    }

    /// How the fallback for missed webhooks works, `None` when it is off
    /// (`fetch_missed_after_minutes` is 0).
    pub fn missed_report_policy(&self) -> Option<outcall_domain::services::MissedReportPolicy> {
        if self.fetch_missed_after_minutes == 0 {
            return None;
        }
        let minutes = |m: u64| {
            chrono::Duration::minutes(
                i64::try_from(m)
                    .unwrap_or(i64::MAX / 60_000)
                    .min(i64::MAX / 60_000),
            )
        };
        Some(outcall_domain::services::MissedReportPolicy {
            grace: minutes(self.fetch_missed_after_minutes),
            window: minutes(self.fetch_missed_within_hours.saturating_mul(60)),
            max_attempts: self.fetch_missed_max_attempts,
            max_backoff: minutes(self.fetch_missed_max_backoff_minutes),
            batch: self.fetch_missed_batch,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    pub enabled: Option<bool>,
    pub ring_ms: u64,
    pub talk_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpLimits {
    pub json_limit_bytes: usize,
    pub call_json_limit_bytes: usize,
    pub agent_webhook_limit_bytes: usize,
    pub login_per_account_per_minute: u32,
    pub login_per_address_per_minute: u32,
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub level: String,
}

/// Where the data lives, decided from `database.url` and `storage.data_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite { url: String, data_dir: PathBuf },
    Postgres { url: String },
}

impl DatabaseTarget {
    /// The URL with any password replaced, for log lines.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { url, .. } => url.clone(),
            Self::Postgres { url } => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    // Query parameters may carry credentials too (`?password=`).
                    parsed.set_query(None);
                    parsed.to_string()
                }
                Err(_) => "postgres://<unparseable>".to_owned(),
            },
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment, and validates the result.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the first bad or missing value.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, Environment::default())
    }

    /// As [`Settings::load`] with an explicit environment (tests pass a fixed map).
    ///
    /// # Errors
    /// A [`SettingsError`] naming the first bad or missing value.
    pub fn load_from(file: Option<&Path>, env: Environment) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError {
                    key: "--config".into(),
                    problem: format!("{} is not a readable file", path.display()),
                });
            }
            builder = builder.add_source(File::from(path).required(true));
        }
        let env = env
            .prefix("OUTCALL")
            .prefix_separator("__")
            .separator("__")
            // Values stay strings (a password "0123..." keeps its leading zero); typed fields
            // such as the port are still converted from the string.
            .try_parsing(false);
        let settings: Settings = builder
            .add_source(env)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(config_error)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Sandbox mode: explicitly chosen, else on exactly when no Twilio account is configured.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox
            .enabled
            .unwrap_or(self.twilio.account_sid.is_empty())
    }

    /// The base URL the outside world reaches this service on (no trailing slash).
    pub fn public_url(&self, bound_port: u16) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}:{}", self.server.host, bound_port)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The data directory, created by whoever opens the database.
    pub fn data_dir(&self) -> PathBuf {
        if !self.storage.data_dir.is_empty() {
            return PathBuf::from(&self.storage.data_dir);
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("outcall");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(".local/share/outcall");
        }
        PathBuf::from("outcall-data")
    }

    pub fn database(&self) -> DatabaseTarget {
        let url = self.database.url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return DatabaseTarget::Postgres {
                url: url.to_owned(),
            };
        }
        let data_dir = self.data_dir();
        if url.is_empty() {
            let file = data_dir.join("outcall.sqlite");
            return DatabaseTarget::Sqlite {
                url: format!("sqlite://{}", file.display()),
                data_dir,
            };
        }
        DatabaseTarget::Sqlite {
            url: url.to_owned(),
            data_dir,
        }
    }

    /// Admin credentials to create or update at start-up, if configured.
    pub fn admin_credentials(&self) -> Option<(AdminUsername, AdminPassword)> {
        let username = AdminUsername::parse(&self.admin.username).ok()?;
        let password = AdminPassword::parse(self.admin.password.expose_secret()).ok()?;
        Some((username, password))
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.server.host.trim().is_empty() {
            return Err(SettingsError::new("server.host", "must not be empty"));
        }
        if !self.server.public_url.is_empty() {
            check_http_url("server.public_url", &self.server.public_url)?;
        }
        let url = self.database.url.trim();
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if !url.is_empty() && !known_scheme {
            return Err(SettingsError::new(
                "database.url",
                "must start with sqlite:// or postgres:// (or be empty for the embedded SQLite default)",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(SettingsError::new(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        self.validate_auth()?;
        self.validate_admin()?;
        self.validate_providers()?;
        self.validate_http()?;
        self.validate_analysis()
    }

    fn validate_analysis(&self) -> Result<(), SettingsError> {
        let analysis = &self.analysis;
        if analysis.fetch_missed_after_minutes == 0 {
            return Ok(());
        }
        let at_least_one = [
            ("analysis.fetch_interval_secs", analysis.fetch_interval_secs),
            (
                "analysis.fetch_missed_max_attempts",
                u64::from(analysis.fetch_missed_max_attempts),
            ),
            (
                "analysis.fetch_missed_max_backoff_minutes",
                analysis.fetch_missed_max_backoff_minutes,
            ),
            (
                "analysis.fetch_missed_batch",
                u64::from(analysis.fetch_missed_batch),
            ),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(SettingsError::new(
                    key,
                    "must be at least 1 when the fallback is on",
                ));
            }
        }
        // Far beyond any use, and far inside what date arithmetic (and PostgreSQL's
        // timestamps) can hold.
        const TEN_YEARS_IN_MINUTES: u64 = 10 * 366 * 24 * 60;
        let durations = [
            (
                "analysis.fetch_missed_after_minutes",
                analysis.fetch_missed_after_minutes,
            ),
            (
                "analysis.fetch_missed_within_hours",
                analysis.fetch_missed_within_hours.saturating_mul(60),
            ),
            (
                "analysis.fetch_missed_max_backoff_minutes",
                analysis.fetch_missed_max_backoff_minutes,
            ),
        ];
        for (key, minutes) in durations {
            if minutes > TEN_YEARS_IN_MINUTES {
                return Err(SettingsError::new(key, "must be at most ten years"));
            }
        }
        if analysis.fetch_missed_within_hours.saturating_mul(60)
            <= analysis.fetch_missed_after_minutes
        {
            return Err(SettingsError::new(
                "analysis.fetch_missed_within_hours",
                "must be longer than analysis.fetch_missed_after_minutes when the fallback is on",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let secret = self.auth.jwt_secret.expose_secret();
        if secret.is_empty() {
            if matches!(self.database(), DatabaseTarget::Postgres { .. }) {
                return Err(SettingsError::new(
                    "auth.jwt_secret",
                    "is required with PostgreSQL (every replica must share it); use at least 32 random bytes",
                ));
            }
        } else if secret.len() < 32 {
            return Err(SettingsError::new(
                "auth.jwt_secret",
                "must be at least 32 bytes",
            ));
        }
        if self.auth.token_ttl_secs > MAX_TOKEN_TTL_SECS {
            return Err(SettingsError::new(
                "auth.token_ttl_secs",
                "must be at most 100 years (0 = never expires)",
            ));
        }
        if self.auth.issuer.trim().is_empty() {
            return Err(SettingsError::new("auth.issuer", "must not be empty"));
        }
        Ok(())
    }

    fn validate_admin(&self) -> Result<(), SettingsError> {
        let username = self.admin.username.as_str();
        let password = self.admin.password.expose_secret();
        match (username.is_empty(), password.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => Err(SettingsError::new(
                "admin.password",
                "is required when admin.username is set",
            )),
            (true, false) => Err(SettingsError::new(
                "admin.username",
                "is required when admin.password is set",
            )),
            (false, false) => {
                AdminUsername::parse(username)
                    .map_err(|e| SettingsError::new("admin.username", e.to_string()))?;
                AdminPassword::parse(password)
                    .map_err(|e| SettingsError::new("admin.password", e.to_string()))?;
                Ok(())
            }
        }
    }

    fn validate_providers(&self) -> Result<(), SettingsError> {
        check_http_url("twilio.api_base", &self.twilio.api_base)?;
        check_http_url("elevenlabs.api_base", &self.elevenlabs.api_base)?;
        let sid = self.twilio.account_sid.as_str();
        let sid_ok = sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !sid.is_empty() && !sid_ok {
            return Err(SettingsError::new(
                "twilio.account_sid",
                "must be 'AC' followed by 32 hex digits",
            ));
        }
        if !(1..=120).contains(&self.twilio.request_timeout_secs) {
            return Err(SettingsError::new(
                "twilio.request_timeout_secs",
                "must be between 1 and 120",
            ));
        }
        let ring = self.twilio.ring_timeout_secs;
        if ring != 0 && !(5..=600).contains(&ring) {
            return Err(SettingsError::new(
                "twilio.ring_timeout_secs",
                "must be 0 (Twilio's default) or 5 to 600",
            ));
        }
        if !matches!(
            self.twilio.machine_detection.as_str(),
            "" | "Enable" | "DetectMessageEnd"
        ) {
            return Err(SettingsError::new(
                "twilio.machine_detection",
                "must be empty, \"Enable\" or \"DetectMessageEnd\"",
            ));
        }
        if self.sandbox_enabled() {
            return Ok(());
        }
        // Real providers: everything a call needs must be present before the first call.
        let required: [(&str, bool); 5] = [
            ("twilio.account_sid", sid.is_empty()),
            (
                "twilio.auth_token",
                self.twilio.auth_token.expose_secret().is_empty(),
            ),
            (
                "elevenlabs.api_key",
                self.elevenlabs.api_key.expose_secret().is_empty(),
            ),
            (
                "elevenlabs.webhook_secret",
                self.elevenlabs.webhook_secret.expose_secret().is_empty(),
            ),
            ("server.public_url", self.server.public_url.is_empty()),
        ];
        match required.iter().find(|(_, missing)| *missing) {
            Some((key, _)) => Err(SettingsError::new(
                key,
                "is required when sandbox mode is off (real Twilio and ElevenLabs)",
            )),
            None => Ok(()),
        }
    }

    fn validate_http(&self) -> Result<(), SettingsError> {
        let positive: [(&str, u64); 4] = [
            ("http.json_limit_bytes", self.http.json_limit_bytes as u64),
            (
                "http.call_json_limit_bytes",
                self.http.call_json_limit_bytes as u64,
            ),
            (
                "http.login_per_account_per_minute",
                u64::from(self.http.login_per_account_per_minute),
            ),
            (
                "http.login_per_address_per_minute",
                u64::from(self.http.login_per_address_per_minute),
            ),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(SettingsError::new(key, "must be greater than 0")),
            None => Ok(()),
        }
    }
}

fn check_http_url(key: &str, value: &str) -> Result<(), SettingsError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(SettingsError::new(
            key,
            format!("must be an http(s) URL, got {value:?}"),
        )),
    }
}

/// Turns the config crate's error into one line naming the variable.
fn config_error(err: config::ConfigError) -> SettingsError {
    let text = err.to_string();
    // The config crate reports "... for key `server.port` ..." or "missing field `x`".
    let key = text
        .split("key `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    match key {
        Some(key) => SettingsError {
            key: env_name(&key),
            problem: text,
        },
        None => SettingsError {
            key: "settings".into(),
            problem: text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(None, Environment::default().source(Some(map)))
    }

    #[test]
    fn defaults_alone_give_a_runnable_sandbox_on_sqlite() {
        let settings = load(&[]).expect("defaults are valid");
        assert_eq!(settings.server.port, 3000);
        assert!(settings.sandbox_enabled());
        assert!(matches!(settings.database(), DatabaseTarget::Sqlite { .. }));
        assert_eq!(settings.auth.token_ttl_secs, 86400);
        assert_eq!(settings.telemetry.format, LogFormat::Human);
    }

    #[test]
    fn environment_variables_map_onto_nested_keys() {
        let settings = load(&[
            ("OUTCALL__SERVER__PORT", "0"),
            ("OUTCALL__SERVER__HOST", "0.0.0.0"),
            ("OUTCALL__SERVER__PUBLIC_URL", "https://calls.example.com/"),
            ("OUTCALL__DATABASE__URL", "postgres://u:pw@db:5432/outcall"),
            (
                "OUTCALL__AUTH__JWT_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("OUTCALL__AUTH__TOKEN_TTL_SECS", "0"),
            ("OUTCALL__ADMIN__USERNAME", "admin"),
            ("OUTCALL__ADMIN__PASSWORD", "correct horse battery"),
            ("OUTCALL__TWILIO__API_BASE", "http://127.0.0.1:9999"),
            ("OUTCALL__ELEVENLABS__API_BASE", "http://127.0.0.1:9998"),
            ("OUTCALL__SANDBOX__ENABLED", "true"),
            ("OUTCALL__TELEMETRY__FORMAT", "json"),
        ])
        .expect("valid");
        assert_eq!(settings.server.port, 0);
        assert_eq!(settings.server.host, "0.0.0.0");
        assert_eq!(settings.public_url(1234), "https://calls.example.com");
        assert_eq!(settings.auth.token_ttl_secs, 0);
        assert_eq!(settings.twilio.api_base, "http://127.0.0.1:9999");
        assert_eq!(settings.telemetry.format, LogFormat::Json);
        assert_eq!(settings.sandbox.enabled, Some(true));
        assert!(settings.admin_credentials().is_some());
        let db = settings.database();
        assert_eq!(
            db,
            DatabaseTarget::Postgres {
                url: "postgres://u:pw@db:5432/outcall".into()
            }
        );
        assert!(!db.redacted().contains("pw"), "{}", db.redacted());
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = load(&[("OUTCALL__SERVER__PORT", "seventy")]).expect_err("invalid port");
        assert_eq!(err.key, "OUTCALL__SERVER__PORT", "{err}");
        let err = load(&[("OUTCALL__DATABASE__URL", "mysql://x")]).expect_err("bad scheme");
        assert_eq!(err.key, "OUTCALL__DATABASE__URL");
        let err = load(&[("OUTCALL__AUTH__JWT_SECRET", "short")]).expect_err("short secret");
        assert_eq!(
            err.to_string(),
            "OUTCALL__AUTH__JWT_SECRET: must be at least 32 bytes"
        );
    }

    #[test]
    fn the_missed_report_fetch_backs_off_within_a_window_by_default_and_checks_its_settings() {
        let settings = load(&[]).expect("defaults are valid");
        let policy = settings
            .analysis
            .missed_report_policy()
            .expect("on by default");
        assert_eq!(policy.grace, chrono::Duration::minutes(15));
        assert_eq!(policy.window, chrono::Duration::hours(72));
        assert_eq!(policy.max_attempts, 8);
        assert_eq!(policy.max_backoff, chrono::Duration::hours(24));
        assert_eq!(policy.batch, 50);
        let off = load(&[
            ("OUTCALL__ANALYSIS__FETCH_MISSED_AFTER_MINUTES", "0"),
            ("OUTCALL__ANALYSIS__FETCH_MISSED_MAX_ATTEMPTS", "0"),
        ])
        .expect("nothing else is checked when the fallback is off");
        assert_eq!(off.analysis.missed_report_policy(), None);
        for (key, value) in [
            ("OUTCALL__ANALYSIS__FETCH_MISSED_MAX_ATTEMPTS", "0"),
            ("OUTCALL__ANALYSIS__FETCH_MISSED_BATCH", "0"),
            ("OUTCALL__ANALYSIS__FETCH_MISSED_MAX_BACKOFF_MINUTES", "0"),
            ("OUTCALL__ANALYSIS__FETCH_MISSED_WITHIN_HOURS", "0"),
            (
                "OUTCALL__ANALYSIS__FETCH_MISSED_WITHIN_HOURS",
                "18446744073709551615",
            ),
            ("OUTCALL__ANALYSIS__FETCH_MISSED_AFTER_MINUTES", "5270401"),
            (
                "OUTCALL__ANALYSIS__FETCH_MISSED_MAX_BACKOFF_MINUTES",
                "99999999",
            ),
        ] {
            let err = load(&[(key, value)]).expect_err("refused");
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn postgres_requires_a_shared_jwt_secret() {
        let err =
            load(&[("OUTCALL__DATABASE__URL", "postgres://db/outcall")]).expect_err("no secret");
        assert_eq!(err.key, "OUTCALL__AUTH__JWT_SECRET");
    }

    #[test]
    fn admin_username_and_password_come_together() {
        let err = load(&[("OUTCALL__ADMIN__USERNAME", "admin")]).expect_err("no password");
        assert_eq!(err.key, "OUTCALL__ADMIN__PASSWORD");
        let err = load(&[
            ("OUTCALL__ADMIN__USERNAME", "admin"),
            ("OUTCALL__ADMIN__PASSWORD", "short"),
        ])
        .expect_err("short password");
        assert_eq!(err.key, "OUTCALL__ADMIN__PASSWORD");
    }

    #[test]
    fn real_provider_mode_fails_fast_naming_what_is_missing() {
        let sid = "AC0123456789abcdef0123456789abcdef";
        let err = load(&[("OUTCALL__TWILIO__ACCOUNT_SID", sid)]).expect_err("incomplete");
        assert_eq!(err.key, "OUTCALL__TWILIO__AUTH_TOKEN");
        let err = load(&[
            ("OUTCALL__TWILIO__ACCOUNT_SID", sid),
            ("OUTCALL__TWILIO__AUTH_TOKEN", "token"),
            ("OUTCALL__ELEVENLABS__API_KEY", "key"),
        ])
        .expect_err("incomplete");
        assert_eq!(err.key, "OUTCALL__ELEVENLABS__WEBHOOK_SECRET");
        let err = load(&[("OUTCALL__TWILIO__ACCOUNT_SID", "ACnope")]).expect_err("bad sid");
        assert_eq!(err.key, "OUTCALL__TWILIO__ACCOUNT_SID");
    }

    #[test]
    fn numeric_looking_secrets_keep_their_exact_text() {
        let settings = load(&[
            ("OUTCALL__ADMIN__USERNAME", "admin"),
            ("OUTCALL__ADMIN__PASSWORD", "0123456789012"),
            (
                "OUTCALL__AUTH__JWT_SECRET",
                "00000000000000000000000000000000000001",
            ),
            ("OUTCALL__SERVER__PORT", "8080"),
            ("OUTCALL__SANDBOX__ENABLED", "true"),
        ])
        .expect("valid");
        assert_eq!(settings.admin.password.expose_secret(), "0123456789012");
        assert_eq!(
            settings.auth.jwt_secret.expose_secret(),
            "00000000000000000000000000000000000001"
        );
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.sandbox.enabled, Some(true));
    }

    #[test]
    fn token_lifetimes_beyond_a_century_are_refused_by_name() {
        let err = load(&[("OUTCALL__AUTH__TOKEN_TTL_SECS", "99999999999")]).expect_err("too long");
        assert_eq!(err.key, "OUTCALL__AUTH__TOKEN_TTL_SECS");
    }

    #[test]
    fn the_redacted_database_url_hides_password_and_query() {
        let target = DatabaseTarget::Postgres {
            url: "postgres://u:pw@db/x?password=pw2&sslmode=require".into(),
        };
        let shown = target.redacted();
        assert!(!shown.contains("pw") && !shown.contains("pw2"), "{shown}");
    }

    #[test]
    fn twilio_call_options_are_checked_by_name() {
        let err = load(&[("OUTCALL__TWILIO__MACHINE_DETECTION", "yes")]).expect_err("bad value");
        assert_eq!(err.key, "OUTCALL__TWILIO__MACHINE_DETECTION");
        let err = load(&[("OUTCALL__TWILIO__RING_TIMEOUT_SECS", "3")]).expect_err("too short");
        assert_eq!(err.key, "OUTCALL__TWILIO__RING_TIMEOUT_SECS");
        let ok = load(&[
            ("OUTCALL__TWILIO__MACHINE_DETECTION", "Enable"),
            ("OUTCALL__TWILIO__RECORD", "true"),
        ])
        .expect("valid");
        assert!(ok.twilio.record);
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let settings = load(&[(
            "OUTCALL__AUTH__JWT_SECRET",
            "0123456789abcdef0123456789abcdef-XYZ",
        )])
        .expect("valid");
        assert!(!format!("{settings:?}").contains("XYZ"));
    }

    #[test]
    fn a_config_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("outcall.toml");
        std::fs::write(&file, "[server]\nport = 4000\nhost = \"10.0.0.1\"\n").expect("write");
        let map: HashMap<String, String> =
            [("OUTCALL__SERVER__PORT".to_owned(), "5000".to_owned())].into();
        let settings = Settings::load_from(Some(&file), Environment::default().source(Some(map)))
            .expect("valid");
        assert_eq!(settings.server.host, "10.0.0.1");
        assert_eq!(settings.server.port, 5000);
        let missing =
            Settings::load_from(Some(&dir.path().join("nope.toml")), Environment::default());
        assert_eq!(missing.expect_err("missing file").key, "--config");
    }
}
