//! `outcall sandbox twilio|elevenlabs`: each emulator runs on its own, prints the settings
//! that point a real-provider outcall at it, answers its provider's API with those
//! credentials only, and stops cleanly on SIGTERM.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running emulator subcommand and the `KEY=value` settings it printed.
struct Emulator {
    child: Child,
    settings: HashMap<String, String>,
}

impl Emulator {
    /// Starts `outcall sandbox <args>` and reads stdout until `last_key` has been printed.
    fn start(args: &[&str], last_key: &str) -> Self {
        let scratch = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_outcall"))
            .arg("sandbox")
            .args(args)
            .env("HOME", scratch.path())
            // Settings of a real-provider outcall that would not load: the emulators ignore them.
            .env("OUTCALL__DATABASE__URL", "mysql://not-a-supported-database")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut settings = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("stdout line");
            if let Some((key, value)) = line.trim().split_once('=') {
                settings.insert(key.to_owned(), value.to_owned());
                if key == last_key {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "no {last_key} printed in time");
        }
        assert!(settings.contains_key(last_key), "printed {settings:?}");
        // Keep reading: a closed pipe would make the emulator's next line fail.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, settings }
    }

    fn setting(&self, key: &str) -> &str {
        self.settings
            .get(key)
            .unwrap_or_else(|| panic!("{key} printed"))
    }

    /// SIGTERM, then the exit status within five seconds.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the emulator did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test]
async fn the_twilio_emulator_subcommand_accepts_calls_with_the_credentials_it_printed() {
    let emulator = Emulator::start(
        &[
            "twilio",
            "--listen",
            "127.0.0.1:0",
            "--auth-token",
            "manual-run-token",
        ],
        "OUTCALL__TWILIO__AUTH_TOKEN",
    );
    let base = emulator.setting("OUTCALL__TWILIO__API_BASE").to_owned();
    let sid = emulator.setting("OUTCALL__TWILIO__ACCOUNT_SID").to_owned();
    assert_eq!(emulator.setting("OUTCALL__SANDBOX__ENABLED"), "false");
    // A token given on the command line is not echoed.
    assert!(
        !emulator
            .setting("OUTCALL__TWILIO__AUTH_TOKEN")
            .contains("manual-run-token")
    );
    assert!(sid.starts_with("AC") && sid.len() == 34, "{sid}");

    let calls = format!("{base}/2010-04-01/Accounts/{sid}/Calls.json");
    let form = [
        ("To", "+15005550002"),
        ("From", "+14155550100"),
        ("Url", "http://127.0.0.1:9/twilio/twiml"),
    ];
    let http = reqwest::Client::new();
    let created = http
        .post(&calls)
        .basic_auth(&sid, Some("manual-run-token"))
        .form(&form)
        .send()
        .await
        .expect("create call");
    assert_eq!(created.status().as_u16(), 201);
    let call: serde_json::Value = created.json().await.expect("json");
    assert!(call["sid"].as_str().is_some_and(|s| s.starts_with("CA")));
    assert_eq!(call["to"], "+15005550002");

    let refused = http
        .post(&calls)
        .basic_auth(&sid, Some("another-token"))
        .form(&form)
        .send()
        .await
        .expect("create call");
    assert_eq!(refused.status().as_u16(), 401);

    assert!(emulator.terminate().success());
}

#[tokio::test]
async fn the_elevenlabs_emulator_subcommand_signs_urls_for_its_api_key_only() {
    let emulator = Emulator::start(
        &["elevenlabs", "--listen", "127.0.0.1:0"],
        "OUTCALL__ELEVENLABS__WEBHOOK_SECRET",
    );
    let base = emulator.setting("OUTCALL__ELEVENLABS__API_BASE").to_owned();
    let key = emulator.setting("OUTCALL__ELEVENLABS__API_KEY").to_owned();
    assert_eq!(key.len(), 32, "a random key: {key}");
    let url = format!("{base}/v1/convai/conversation/get-signed-url?agent_id=agent_manual");
    let http = reqwest::Client::new();

    let signed = http
        .get(&url)
        .header("xi-api-key", &key)
        .send()
        .await
        .expect("signed url");
    assert_eq!(signed.status().as_u16(), 200);
    let body: serde_json::Value = signed.json().await.expect("json");
    let signed_url = body["signed_url"].as_str().expect("signed_url");
    assert!(signed_url.starts_with("ws://127.0.0.1:"), "{signed_url}");
    assert!(signed_url.contains("agent_id=agent_manual"), "{signed_url}");

    let refused = http
        .get(&url)
        .header("xi-api-key", "not-the-key")
        .send()
        .await
        .expect("signed url");
    assert_eq!(refused.status().as_u16(), 401);

    assert!(emulator.terminate().success());
}

#[test]
fn a_malformed_account_sid_is_refused_before_anything_listens() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_outcall"))
        .args(["sandbox", "twilio", "--account-sid", "ACnot-hex"])
        .env("HOME", scratch.path())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--account-sid"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
