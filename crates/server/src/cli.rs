//! The command line: `serve`, `migrate`, `admin create`, `check-config`.

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
