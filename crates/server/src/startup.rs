//! The composition root: builds adapters from settings, wires them into services, binds the
//! one public port.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outcall_auth::{Argon2Hasher, JwtSettings, JwtTokens, RandomIds};
use outcall_domain::ports::{Clock, IdGenerator, SecretHasher, TokenService};
use outcall_domain::services::{
    Authentication, CallHistory, CallPlacement, ClientAccounts, LiveCalls, MissedReportRound,
    PostCallAnalysis,
};
use outcall_domain::webhooks::PublicUrls;
use outcall_domain::{AdminPassword, AdminUsername};
use outcall_http::{Api, ApiState, HttpSettings, LoginLimits, Readiness, ServerOptions};
use outcall_media_bridge::{BridgeConfig, MediaBridge};
use secrecy::{ExposeSecret, SecretString};

use crate::providers::{self, Providers};
use crate::settings::{DatabaseTarget, Settings};
use crate::store::{self, Repositories};
use crate::system::SystemClock;

/// The domain services, wired to real adapters.
#[derive(Clone)]
pub struct Services {
    pub accounts: ClientAccounts,
    pub auth: Authentication,
    pub calls: CallHistory,
    pub repositories: Repositories,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

impl Services {
    /// Opens the database (migrating it when the settings say so) and builds every service.
    ///
    /// # Errors
    /// When the database or a signing key cannot be set up.
    pub async fn build(settings: &Settings, migrate: bool) -> anyhow::Result<Self> {
        // Secrets and ids come from the OS random source: refuse to start without it.
        RandomIds::check().context("checking the OS random source")?;
        let repositories = store::open(settings, migrate).await?;
        let hasher: Arc<dyn SecretHasher> = Arc::new(Argon2Hasher::default());
        let jwt = JwtSettings {
            secret: jwt_secret(settings)?,
            issuer: settings.auth.issuer.clone(),
            ttl: (settings.auth.token_ttl_secs > 0)
                .then(|| Duration::from_secs(settings.auth.token_ttl_secs)),
        };
        let tokens: Arc<dyn TokenService> =
            Arc::new(JwtTokens::new(jwt).context("setting up token signing")?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn IdGenerator> = Arc::new(RandomIds);
        let r = &repositories;
        Ok(Self {
            accounts: ClientAccounts::new(
                r.clients.clone(),
                hasher.clone(),
                clock.clone(),
                ids.clone(),
            ),
            auth: Authentication::new(
                r.clients.clone(),
                r.admins.clone(),
                hasher,
                tokens,
                clock.clone(),
            ),
            calls: CallHistory::new(
                r.calls.clone(),
                r.clients.clone(),
                clock.clone(),
                ids.clone(),
            ),
            repositories,
            clock,
            ids,
        })
    }
}

/// A bound, ready-to-run outcall server.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Sandbox emulators live as long as the server.
    providers: Providers,
    /// Periodic tasks, stopped when the server stops.
    background: Vec<tokio::task::JoinHandle<()>>,
    bridge: MediaBridge,
    /// Turned to draining first thing on SIGTERM/SIGINT (`/readyz` 503, new calls 503).
    readiness: Readiness,
    drain_timeout: Duration,
}

impl Application {
    /// Builds everything and binds `server.host:server.port` (port 0 picks a free port).
    ///
    /// # Errors
    /// When the database, the admin account, a provider or the listening socket cannot be set
    /// up.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Bind first: with port 0 the public URL (callbacks, stream URL) depends on the port.
        let address = (settings.server.host.as_str(), settings.server.port);
        let listener = TcpListener::bind(address).with_context(|| {
            format!("binding {}:{}", settings.server.host, settings.server.port)
        })?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let public_url = settings.public_url(port);

        let services = Services::build(&settings, settings.database.migrate_on_start).await?;
        ensure_configured_admin(&settings, &services, &public_url).await?;
        let providers = providers::build(&settings, &public_url).await?;
        let urls = PublicUrls::new(&public_url)
            .map_err(|e| anyhow::anyhow!("OUTCALL__SERVER__PUBLIC_URL: {e}"))?;
        let r = &services.repositories;
        let placement = CallPlacement::new(
            r.clients.clone(),
            r.calls.clone(),
            providers.telephony.clone(),
            services.clock.clone(),
            services.ids.clone(),
            urls,
        );

        let analysis = PostCallAnalysis::new(
            r.calls.clone(),
            providers.voice_agent.clone(),
            services.clock.clone(),
            settings.analysis.mapping(),
        );
        let fallback = spawn_missed_report_fetcher(&settings, analysis.clone());
        let live = LiveCalls::new(
            r.calls.clone(),
            r.clients.clone(),
            providers.telephony.clone(),
            services.clock.clone(),
        );
        let bridge = MediaBridge::new(live, providers.voice_agent.clone(), BridgeConfig::default());

        let state = ApiState {
            accounts: services.accounts.clone(),
            auth: services.auth.clone(),
            calls: services.calls.clone(),
            placement,
            analysis,
            agent_webhooks: providers.agent_webhooks.clone(),
            bridge: bridge.clone(),
            clock: services.clock.clone(),
            health: services.repositories.health.clone(),
        };
        let readiness = Readiness::new();
        let metrics = prometheus_handle();
        let upkeep = metrics.clone().map(spawn_metrics_upkeep);
        let http = HttpSettings {
            json_limit_bytes: settings.http.json_limit_bytes,
            call_json_limit_bytes: settings.http.call_json_limit_bytes,
            login_limits: LoginLimits {
                per_account_per_minute: settings.http.login_per_account_per_minute,
                per_address_per_minute: settings.http.login_per_address_per_minute,
            },
            trust_forwarded_for: settings.http.trust_forwarded_for,
            webhook_form_limit_bytes: settings.http.json_limit_bytes,
            agent_webhook_limit_bytes: settings.http.agent_webhook_limit_bytes,
            readiness: readiness.clone(),
            metrics: metrics.clone(),
        };
        let api = Api::new(state, http);
        // outcall handles SIGTERM/SIGINT itself: live calls drain before HTTP stops.
        let server = outcall_http::serve(
            api,
            listener,
            ServerOptions {
                shutdown_timeout_secs: settings.server.drain_timeout_secs,
            },
        )
        .context("listening")?;

        let local = format!("{}:{}", settings.server.host, port);
        tracing::info!(
            address = %local,
            public_url = %public_url,
            database = %settings.database().redacted(),
            sandbox = settings.sandbox_enabled(),
            "outcall listening on http://{local}"
        );
        if settings.sandbox_enabled() {
            let data = match settings.database() {
                DatabaseTarget::Sqlite { url, .. } => url,
                other => other.redacted(),
            };
            tracing::warn!(database = %data, "SANDBOX MODE: no real phone rings");
            eprintln!(
                "\n  outcall is in SANDBOX MODE: calls go to built-in Twilio and ElevenLabs emulators,\n  \
                 no real phone rings. Data: {data}\n  \
                 To use real providers set OUTCALL__TWILIO__ACCOUNT_SID, OUTCALL__TWILIO__AUTH_TOKEN,\n  \
                 OUTCALL__ELEVENLABS__API_KEY, OUTCALL__ELEVENLABS__WEBHOOK_SECRET and\n  \
                 OUTCALL__SERVER__PUBLIC_URL (see README.md).\n"
            );
        }
        Ok(Self {
            port,
            server,
            providers,
            background: fallback.into_iter().chain(upkeep).collect(),
            bridge,
            readiness,
            drain_timeout: Duration::from_secs(settings.server.drain_timeout_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then drains: live bridged calls may finish for up to
    /// `server.drain_timeout_secs`, their final status callbacks get [`FINAL_CALLBACK_GRACE`]
    /// (within the same budget), in-flight HTTP requests complete, and the process exits.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let bridge = self.bridge.clone();
        let drain_timeout = self.drain_timeout;
        let readiness = self.readiness.clone();
        let on_signal = tokio::spawn(async move {
            wait_for_shutdown_signal().await;
            // First: the load balancer stops sending traffic, and new calls are refused.
            readiness.start_draining();
            tracing::info!(
                drain_timeout_secs = drain_timeout.as_secs(),
                "shutting down: letting live calls finish"
            );
            let draining_since = std::time::Instant::now();
            // Calls bridged now, and calls whose TwiML was just served (their stream is
            // refused from now on, so Twilio ends them): both have callbacks to come.
            let at_signal = bridge.stats().snapshot();
            let live = at_signal.live_sessions + at_signal.prepared_sessions;
            let cut = bridge.drain(drain_timeout).await;
            if cut > 0 {
                tracing::warn!(cut, "live calls were cut at the drain timeout");
            }
            if live > 0 {
                // Twilio's final status callback follows a hang-up by a moment; without
                // another replica to take it the call would stay in progress.
                let grace = FINAL_CALLBACK_GRACE
                    .min(drain_timeout.saturating_sub(draining_since.elapsed()));
                tokio::time::sleep(grace).await;
            }
            handle.stop(true).await;
        });
        let served = self.server.await.context("serving HTTP");
        on_signal.abort();
        for task in self.background {
            task.abort();
        }
        if let Some(emulators) = self.providers.emulators {
            emulators.shutdown().await;
        }
        served
    }
}

/// The process's Prometheus recorder, installed on first use (several servers may run in one
/// test process; they share it). `None`, and `/metrics` is 404, when another recorder was
/// installed first.
fn prometheus_handle() -> Option<outcall_http::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<outcall_http::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| match outcall_http::prometheus_builder().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(error = %error, "cannot install the metrics recorder; /metrics is off");
                None
            }
        })
        .clone()
}

/// How often histogram samples are folded into their buckets between scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples (one per relayed audio frame, among others) into their
/// buckets every few seconds, so that memory stays bounded when nothing scrapes `/metrics`.
fn spawn_metrics_upkeep(handle: outcall_http::PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(METRICS_UPKEEP_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            handle.run_upkeep();
        }
    })
}

/// How long HTTP keeps serving after the last live call of a drain ended, for the status
/// callbacks of those calls.
pub const FINAL_CALLBACK_GRACE: Duration = Duration::from_secs(3);

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn wait_for_shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM; only SIGINT stops outcall");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Starts the fallback that fetches post-call reports the webhook never delivered (off when
/// `analysis.fetch_missed_after_minutes` is 0).
fn spawn_missed_report_fetcher(
    settings: &Settings,
    analysis: PostCallAnalysis,
) -> Option<tokio::task::JoinHandle<()>> {
    let policy = settings.analysis.missed_report_policy()?;
    let every = Duration::from_secs(settings.analysis.fetch_interval_secs);
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match analysis.fetch_missed_reports(&policy).await {
                Ok(round) if round == MissedReportRound::default() => {}
                Ok(round) => tracing::info!(
                    completed = round.completed,
                    deferred = round.deferred,
                    given_up = round.given_up,
                    refused = round.refused,
                    "fetched missed post-call reports"
                ),
                Err(error) => {
                    tracing::warn!(error = %error, "fetching missed post-call reports failed")
                }
            }
        }
    }))
}

/// Creates or updates the admin named by `OUTCALL__ADMIN__USERNAME`/`PASSWORD`, and warns when
/// no admin exists at all.
async fn ensure_configured_admin(
    settings: &Settings,
    services: &Services,
    public_url: &str,
) -> anyhow::Result<()> {
    if let Some((username, password)) = settings.admin_credentials() {
        services
            .auth
            .ensure_admin(&username, &password)
            .await
            .context("creating the configured admin")?;
        tracing::info!(admin = %username, "admin account configured");
        return Ok(());
    }
    if services
        .auth
        .has_admin()
        .await
        .context("looking for admins")?
    {
        return Ok(());
    }
    if !settings.sandbox_enabled() {
        tracing::warn!(
            "no admin account exists: set OUTCALL__ADMIN__USERNAME and OUTCALL__ADMIN__PASSWORD, \
             or run `outcall admin create --username NAME` (password on stdin)"
        );
        return Ok(());
    }
    // Sandbox first run: make the product usable at once, with a password nobody else knows.
    let username = AdminUsername::parse(FIRST_RUN_ADMIN).context("first-run admin name")?;
    let generated = first_run_password()?;
    let password = AdminPassword::parse(&generated).context("first-run admin password")?;
    services
        .auth
        .ensure_admin(&username, &password)
        .await
        .context("creating the first-run admin")?;
    tracing::warn!(
        admin = FIRST_RUN_ADMIN,
        "created an admin for this first run; its password is printed once on stderr"
    );
    // Printed, not logged: log pipelines keep what they see.
    eprintln!(
        "\n  outcall: first run, so an admin account was created.\n    username: {FIRST_RUN_ADMIN}\n    password: {generated}\n  \
         Log in with:\n    curl -s {public_url}/auth/admin/login -H 'Content-Type: application/json' \\\n      \
         -d '{{\"username\":\"{FIRST_RUN_ADMIN}\",\"password\":\"{generated}\"}}'\n  \
         It is stored only as a hash and will not be shown again.\n"
    );
    Ok(())
}

/// The name of the admin created on a sandbox first run.
pub const FIRST_RUN_ADMIN: &str = "admin";

/// The configured signing key, or, for the embedded SQLite set-up only, one generated on first
/// run and kept (mode 0600) in the data directory so tokens survive restarts.
fn jwt_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    let configured = settings.auth.jwt_secret.expose_secret();
    if !configured.is_empty() {
        return Ok(SecretString::from(configured.to_owned()));
    }
    match settings.database() {
        DatabaseTarget::Sqlite { data_dir, .. } => load_or_create_key(&data_dir.join("jwt-secret")),
        DatabaseTarget::Postgres { .. } => {
            anyhow::bail!("OUTCALL__AUTH__JWT_SECRET: is required with PostgreSQL")
        }
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SecretString> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    let fresh = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a token signing key");
            Ok(SecretString::from(fresh))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let key = key.trim().to_owned();
            anyhow::ensure!(
                key.len() >= 32,
                "{} holds a key shorter than 32 bytes",
                path.display()
            );
            Ok(SecretString::from(key))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// 144 random bits, URL-safe base64, never starting with `-`: a password that begins like an
/// option is misread when passed on a command line (`outcall demo --password -x...`; it
/// happened to a test, one run in 64).
fn first_run_password() -> anyhow::Result<String> {
    loop {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
        let generated =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        if !generated.starts_with('-') {
            return Ok(generated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_passwords_are_long_distinct_and_never_start_like_an_option() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let password = first_run_password().expect("OS randomness");
            assert_eq!(password.len(), 24);
            assert!(!password.starts_with('-'), "{password}");
            assert!(seen.insert(password));
        }
    }

    #[test]
    fn a_generated_signing_key_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/jwt-secret");
        let first = load_or_create_key(&path).expect("created");
        let second = load_or_create_key(&path).expect("read back");
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert!(first.expose_secret().len() >= 32);
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
