//! Sandbox mode end to end: the real binary with no provider accounts starts its Twilio and
//! ElevenLabs emulators, generates a first-run admin, and `outcall demo` walks through the whole
//! product against it; the final call record and statistics are then checked through the API.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use outcall_e2e::api::Api;
use outcall_e2e::{Launch, Outcall, fresh_postgres_database};
use serde_json::{Value, json};

fn env(scratch: &Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("HOME", scratch.join("home").display().to_string()),
        ("OUTCALL__SERVER__PORT", "0".to_owned()),
        ("OUTCALL__SANDBOX__RING_MS", "200".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Everything the server printed once it contains `needle` (stderr is read by another thread,
/// so a line may take a moment to arrive).
async fn output_containing(server: &Outcall, needle: &str) -> String {
    for _ in 0..100 {
        let output = server.output();
        if output.contains(needle) {
            return output;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle:?} was never printed; output:\n{}", server.output());
}

/// The first-run admin password the server prints once on stderr.
async fn generated_password(server: &Outcall) -> String {
    output_containing(server, "password: ")
        .await
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .expect("a password line")
        .to_owned()
}

/// One request through the shared API client (`url` is absolute).
async fn request(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let reply = Api::new("")
        .send(method, &url, token, body)
        .await
        .expect("request");
    (reply.status, reply.body)
}

/// Starts the binary in sandbox mode, runs `outcall demo` against it, then reads the call the
/// demo placed and the client's statistics back through the API.
async fn the_sandbox_walk(extra: &[(&str, &str)]) {
    let started = Instant::now();
    let scratch = tempfile::tempdir().expect("tempdir");
    let env = env(scratch.path(), extra);
    let server = Launch {
        args: &["serve"],
        env: env.clone(),
        cwd: scratch.path(),
    }
    .serve()
    .expect("serves");
    let password = generated_password(&server).await;
    output_containing(&server, "SANDBOX MODE").await;

    let demo = Launch {
        args: &[
            "demo",
            "--url",
            &server.base,
            "--password",
            &password,
            "--timeout-secs",
            "120",
        ],
        env: env.clone(),
        cwd: scratch.path(),
    };
    let (status, stdout, stderr) = demo.run_to_end("").expect("demo runs");
    let shown = format!("{stdout}{stderr}\n--- server ---\n{}", server.output());
    assert!(status.success(), "demo failed: {status:?}\n{shown}");
    for expected in [
        "completed",
        "Agent: ",
        "summary    The callee",
        "outcome    interested",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{shown}");
    }

    // The client the demo created, logged in with a fresh secret from the admin.
    let client_id = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("clientId "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the demo prints its clientId")
        .to_owned();
    let base = &server.base;
    let (code, login) = request(
        reqwest::Method::POST,
        format!("{base}/auth/admin/login"),
        None,
        Some(json!({"username": "admin", "password": password})),
    )
    .await;
    assert_eq!(code, 200, "{login}");
    let admin = login["token"].as_str().expect("admin token").to_owned();
    let (code, reset) = request(
        reqwest::Method::POST,
        format!("{base}/admin/clients/{client_id}/reset-secret"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{reset}");
    let secret = reset["clientSecret"]
        .as_str()
        .or_else(|| reset["client"]["clientSecret"].as_str())
        .unwrap_or_else(|| panic!("no secret in {reset}"))
        .to_owned();
    let (code, login) = request(
        reqwest::Method::POST,
        format!("{base}/auth/login"),
        None,
        Some(json!({"clientId": client_id, "clientSecret": secret})),
    )
    .await;
    assert_eq!(code, 200, "{login}");
    let token = login["token"].as_str().expect("client token").to_owned();

    let (code, history) = request(
        reqwest::Method::GET,
        format!("{base}/secure/calls"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 200, "{history}");
    let calls = history["callHistory"].as_array().expect("callHistory");
    assert_eq!(calls.len(), 1, "{history}");
    let call_id = calls[0]["callId"].as_str().expect("callId");
    let (code, call) = request(
        reqwest::Method::GET,
        format!("{base}/secure/calls/{call_id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 200, "{call}");
    let data = &call["callData"];
    let details = &call["callDetails"];
    assert_eq!(data["status"], "completed", "{call}");
    assert!(data["duration"].as_u64().unwrap_or(0) > 0, "{call}");
    assert!(
        data["conversationId"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{call}"
    );
    assert!(
        data["callSid"]
            .as_str()
            .is_some_and(|sid| sid.starts_with("CA")),
        "{call}"
    );
    let transcript = details["callTranscript"].as_str().unwrap_or_default();
    assert!(
        transcript.contains("Agent: Hi, this is Ava from the sandbox."),
        "{call}"
    );
    assert!(transcript.contains("User: "), "{call}");
    assert_eq!(
        details["callSummary"], "The callee agreed to a product demo on Tuesday at 10.",
        "{call}"
    );
    assert_eq!(details["callOutcome"], "interested", "{call}");
    assert_eq!(details["callSentiment"], "positive", "{call}");

    let (code, stats) = request(
        reqwest::Method::GET,
        format!("{base}/secure/call-stats"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 200, "{stats}");
    let stats = &stats["stats"];
    assert_eq!(stats["totalCalls"], 1, "{stats}");
    assert_eq!(stats["callsByStatus"]["completed"], 1, "{stats}");
    assert_eq!(stats["callsByOutcome"]["interested"], 1, "{stats}");
    assert_eq!(stats["totalDuration"], data["duration"], "{stats}");

    let status = server.stop().expect("stops");
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    let elapsed = started.elapsed();
    eprintln!("sandbox walk took {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(100),
        "the walk took {elapsed:?}, too close to the two-minute budget"
    );
}

#[tokio::test]
async fn the_demo_completes_an_ai_call_in_sandbox_mode_on_sqlite_and_the_api_shows_it() {
    the_sandbox_walk(&[]).await;
}

#[tokio::test]
async fn the_demo_completes_an_ai_call_in_sandbox_mode_on_postgres_and_the_api_shows_it() {
    let url = fresh_postgres_database().await.expect("a fresh database");
    the_sandbox_walk(&[
        ("OUTCALL__DATABASE__URL", url.as_str()),
        (
            "OUTCALL__AUTH__JWT_SECRET",
            "e2e-signing-key-0123456789abcdef0123456789",
        ),
    ])
    .await;
}
