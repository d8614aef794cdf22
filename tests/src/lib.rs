//! Helpers for the black-box tests: start the real `outcall` binary as a child process, find the
//! port it bound, talk to it over HTTP, stop it with SIGTERM.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

pub mod api;
pub mod providers;
pub mod proxy;

/// The `outcall` binary of this test run (`target/<profile>/outcall`), brought up to date once
/// per test process: the e2e package does not depend on the binary, so a lone `cargo test -p
/// outcall-e2e` would otherwise run whatever binary an earlier build left there (a stale one
/// once ran old migrations here). A no-op build takes a fraction of a second.
pub fn outcall_binary() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_outcall().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_outcall() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/outcall
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable lives in target/<profile>/deps")?;
    let binary = profile_dir.join("outcall");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "-p", "outcall", "--bin", "outcall"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() || !binary.is_file() {
        bail!("could not build the outcall binary at {}", binary.display());
    }
    Ok(binary)
}

/// A running `outcall` process.
pub struct Outcall {
    child: Child,
    pub base: String,
    output: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// How to start the binary: environment (on top of a cleared one), working directory, args.
pub struct Launch<'a> {
    pub args: &'a [&'a str],
    pub env: HashMap<String, String>,
    pub cwd: &'a Path,
}

impl Launch<'_> {
    fn command(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(outcall_binary()?);
        command.args(self.args).current_dir(self.cwd).env_clear();
        // Keep only what a process needs to run; everything else comes from `env`.
        for key in ["PATH", "LANG"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(&self.env);
        Ok(command)
    }

    /// Runs a command that exits (`check-config`, `migrate`, `admin create`), feeding `stdin`.
    pub fn run_to_end(&self, stdin: &str) -> anyhow::Result<(ExitStatus, String, String)> {
        use std::io::Write;
        let mut child = self
            .command()?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning outcall")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).context("writing stdin")?;
        }
        let output = child.wait_with_output().context("waiting for outcall")?;
        Ok((
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Starts `outcall serve` (or whatever `args` say) and waits until it logs its address.
    pub fn serve(&self) -> anyhow::Result<Outcall> {
        let mut child = self
            .command()?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning outcall")?;
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (found_tx, found_rx) = mpsc::channel::<String>();
        for (stream, only) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                Some(stdout.clone()),
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                None,
            ),
        ] {
            let Some(stream) = stream else { continue };
            let output = output.clone();
            let found_tx = found_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(address) = line.split("listening on ").nth(1) {
                        let address = address
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or("");
                        let _ = found_tx.send(address.to_owned());
                    }
                    if let Ok(mut all) = output.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                    if let Some(Ok(mut mine)) = only.as_ref().map(|o| o.lock()) {
                        mine.push_str(&line);
                        mine.push('\n');
                    }
                }
            });
        }
        match found_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Ok(Outcall {
                child,
                base,
                output,
                stdout,
            }),
            Err(_) => {
                let _ = child.kill();
                let logs = output.lock().map(|o| o.clone()).unwrap_or_default();
                bail!("outcall did not report its address within 60 s; output:\n{logs}")
            }
        }
    }
}

impl Outcall {
    /// Everything the process printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// What the process wrote to stdout (the log stream).
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The bound address (`127.0.0.1:PORT`), from the logged base URL.
    ///
    /// # Errors
    /// When the logged address is not `http://HOST:PORT`.
    pub fn address(&self) -> anyhow::Result<std::net::SocketAddr> {
        let host_port = self.base.trim_start_matches("http://");
        host_port
            .parse()
            .with_context(|| format!("{} is not http://HOST:PORT", self.base))
    }

    /// Sends SIGTERM without waiting.
    ///
    /// # Errors
    /// When `kill` cannot be run or fails.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("sending SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status:?}", self.child.id());
        }
        Ok(())
    }

    /// Waits (without blocking the async runtime) for the process to exit, at most `within`.
    ///
    /// # Errors
    /// When it is still running after `within` (it is killed then).
    pub async fn wait_for_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting")? {
                return Ok(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                bail!("outcall did not exit within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()?;
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().context("waiting")? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        bail!("outcall did not exit within 30 s of SIGTERM")
    }
}

impl Drop for Outcall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database of its own on the PostgreSQL server of `DATABASE_URL`.
pub async fn fresh_postgres_database() -> anyhow::Result<String> {
    use sqlx::Connection;
    let server = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: run the README test command (scripts/test)")?;
    let name = format!("outcall_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .context("connecting to PostgreSQL")?;
    // The name is a UUID we generated: safe to splice into the statement.
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await
        .context("creating a database")?;
    let mut url = url::Url::parse(&server).context("DATABASE_URL is not a URL")?;
    url.set_path(&name);
    Ok(url.to_string())
}

/// Starts several processes at once (as replicas start together in a rollout) and waits until
/// each has logged its address. Blocks: call it with `tokio::task::block_in_place` from an
/// async test.
///
/// # Errors
/// When any of them does not start.
pub fn serve_together(launches: &[Launch<'_>]) -> anyhow::Result<Vec<Outcall>> {
    std::thread::scope(|scope| {
        let started: Vec<_> = launches
            .iter()
            .map(|launch| scope.spawn(move || launch.serve()))
            .collect();
        started
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a start-up thread panicked"))?
            })
            .collect()
    })
}
