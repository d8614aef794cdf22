//! The command line: `serve`, `migrate`, `admin create`, `check-config`, `demo`, `sandbox`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use outcall_domain::{AdminPassword, AdminUsername};

use crate::settings::Settings;
use crate::startup::{Application, Services};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "outcall",
    version,
    about = "AI outbound calls for agencies: Twilio + ElevenLabs"
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables still win).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the Twilio webhooks and the media stream on one port.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Load and validate the settings, print a summary without secrets, and exit.
    CheckConfig,
    /// Walk through the product against a running server (the sandbox by default): admin
    /// login, a new client, a call followed live, its transcript and summary, the statistics.
    Demo {
        /// Base URL of the running server.
        #[arg(
            long,
            env = "OUTCALL_DEMO_URL",
            default_value = "http://127.0.0.1:3000"
        )]
        url: String,
        #[arg(long, env = "OUTCALL_DEMO_USERNAME", default_value = "admin")]
        username: String,
        /// The admin password (the README's run command sets "change me please").
        #[arg(
            long,
            env = "OUTCALL_DEMO_PASSWORD",
            default_value = "change me please",
            hide_default_value = true
        )]
        password: String,
        #[arg(long, default_value = "+12125550123")]
        phone: String,
        /// Seconds to wait for the call to end and be analysed.
        #[arg(long, default_value_t = 90)]
        timeout_secs: u64,
    },
    /// Run one provider emulator on its own (for a real-provider outcall pointed at it).
    Sandbox {
        #[command(subcommand)]
        emulator: crate::emulate::EmulatorCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin, or set a new password for an existing one. Reads the password from
    /// the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
    },
}

/// Runs the parsed command; settings problems print one line and exit with status 2.
pub fn run(cli: Cli) -> ExitCode {
    // The demo is a client of a running server: it needs no settings of its own.
    if let Command::Demo {
        url,
        username,
        password,
        phone,
        timeout_secs,
    } = &cli.command
    {
        let options = crate::demo::DemoOptions {
            url: url.clone(),
            username: username.clone(),
            password: password.clone(),
            phone: phone.clone(),
            timeout: std::time::Duration::from_secs(*timeout_secs),
        };
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(crate::demo::run(&options)));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("\ndemo failed: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    // The emulators need no settings either: a shell set up for a real-provider outcall
    // must not stop them.
    if let Command::Sandbox { emulator } = cli.command {
        telemetry::init(&crate::settings::TelemetrySettings {
            format: crate::settings::LogFormat::Human,
            level: "info".to_owned(),
        });
        let result = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(crate::emulate::run(emulator)));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("outcall: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("outcall: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("outcall: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::Admin {
                command: AdminCommand::Create { username },
            } => create_admin(&settings, &username).await,
            Command::CheckConfig => {
                check_config(&settings);
                Ok(())
            }
            Command::Demo { .. } => Ok(()), // handled above, before settings are loaded
            Command::Sandbox { .. } => Ok(()), // handled above, before settings are loaded
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "outcall stopped with an error");
            eprintln!("outcall: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    crate::store::open(settings, true).await?;
    tracing::info!(database = %settings.database().redacted(), "migrations applied");
    println!("migrations applied to {}", settings.database().redacted());
    Ok(())
}

async fn create_admin(settings: &Settings, username: &str) -> anyhow::Result<()> {
    let username = AdminUsername::parse(username).context("--username")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = AdminPassword::parse(line.trim_end_matches(['\r', '\n'])).context("password")?;
    let services = Services::build(settings, true).await?;
    services
        .auth
        .ensure_admin(&username, &password)
        .await
        .context("saving the admin")?;
    println!("admin {username} saved");
    Ok(())
}

fn check_config(settings: &Settings) {
    println!("configuration is valid");
    println!(
        "  listen:      {}:{}",
        settings.server.host, settings.server.port
    );
    println!(
        "  public url:  {}",
        settings.public_url(settings.server.port)
    );
    println!("  database:    {}", settings.database().redacted());
    println!(
        "  sandbox:     {}",
        if settings.sandbox_enabled() {
            "on"
        } else {
            "off"
        }
    );
    let ttl = settings.auth.token_ttl_secs;
    println!(
        "  token ttl:   {}",
        if ttl == 0 {
            "never expires".to_owned()
        } else {
            format!("{ttl} s")
        }
    );
    println!(
        "  admin:       {}",
        if settings.admin_credentials().is_some() {
            "configured"
        } else {
            "not configured"
        }
    );
}
