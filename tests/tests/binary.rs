//! Black-box tests of the `outcall` binary: start-up from any directory with built-in defaults,
//! settings errors, the CLI subcommands, and data surviving a restart on both databases.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use outcall_e2e::api::Api;
use outcall_e2e::{Launch, fresh_postgres_database};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "a long admin password";

fn env(data_dir: &Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("HOME", data_dir.join("home").display().to_string()),
        ("OUTCALL__SERVER__PORT", "0".to_owned()),
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

async fn get(base: &str, path: &str) -> (u16, Value) {
    let reply = Api::new(base).get(path, None).await.expect("request");
    (reply.status, reply.body)
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let reply = Api::new(base)
        .post(path, token, body)
        .await
        .expect("request");
    (reply.status, reply.body)
}

#[tokio::test]
async fn the_binary_serves_health_from_any_directory_with_only_built_in_defaults() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("an unrelated working directory");
    let launch = Launch {
        args: &["serve"],
        env: env(scratch.path(), &[]),
        cwd: cwd.path(),
    };
    let server = launch.serve().expect("serves");
    let (status, body) = get(&server.base, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = get(&server.base, "/readyz").await;
    assert_eq!(status, 200);
    let data = scratch.path().join("home/.local/share/outcall");
    assert!(
        data.join("outcall.sqlite").is_file(),
        "the SQLite file is created in the data directory"
    );
    // First run in sandbox mode: an admin password is generated and printed once (on stderr,
    // which is read by another thread: give it a moment).
    let mut output = server.output();
    for _ in 0..50 {
        if output.contains("password: ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        output = server.output();
    }
    let password = output
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .expect("the generated password is printed")
        .to_owned();
    assert!(output.contains("SANDBOX MODE"), "{output}");
    let (status, login) = post(
        &server.base,
        "/auth/admin/login",
        None,
        json!({"username": "admin", "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let status = server.stop().expect("stops");
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_one_line_naming_the_variable() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        args: &["serve"],
        env: env(scratch.path(), &[("OUTCALL__SERVER__PORT", "seventy")]),
        cwd: scratch.path(),
    };
    let (status, _, stderr) = launch.run_to_end("").expect("runs");
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("OUTCALL__SERVER__PORT"), "{stderr}");

    let launch = Launch {
        args: &["serve"],
        env: env(
            scratch.path(),
            &[("OUTCALL__DATABASE__URL", "postgres://db.invalid/outcall")],
        ),
        cwd: scratch.path(),
    };
    let (status, _, stderr) = launch.run_to_end("").expect("runs");
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("OUTCALL__AUTH__JWT_SECRET"), "{stderr}");
}

#[tokio::test]
async fn check_config_prints_a_summary_without_secrets() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        args: &["check-config"],
        env: env(
            scratch.path(),
            &[
                (
                    "OUTCALL__DATABASE__URL",
                    "postgres://outcall:hunter2-db-password@db.internal/outcall",
                ),
                (
                    "OUTCALL__AUTH__JWT_SECRET",
                    "jwt-secret-that-must-not-print-0123456789",
                ),
            ],
        ),
        cwd: scratch.path(),
    };
    let (status, stdout, stderr) = launch.run_to_end("").expect("runs");
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("db.internal"), "{stdout}");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("jwt-secret-that"),
        "{stdout}"
    );
}

/// Creates an admin from the CLI, then a client through the API of one process; a second
/// process on the same database logs both in again.
async fn data_survives_a_restart(extra: &[(&str, &str)]) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let env = env(scratch.path(), extra);
    let create_admin = Launch {
        args: &["admin", "create", "--username", "boss"],
        env: env.clone(),
        cwd: scratch.path(),
    };
    let (status, stdout, stderr) = create_admin
        .run_to_end(&format!("{ADMIN_PASSWORD}\n"))
        .expect("runs");
    assert!(status.success(), "{stdout}{stderr}");

    let launch = Launch {
        args: &["serve"],
        env: env.clone(),
        cwd: scratch.path(),
    };
    let first = launch.serve().expect("first process serves");
    let (status, login) = post(
        &first.base,
        "/auth/admin/login",
        None,
        json!({"username": "boss", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let admin = login["token"].as_str().expect("token").to_owned();
    let client = json!({
        "clientId": "client_persist",
        "clientMeta": {"fullName": "Persistent Pat", "email": "pat@example.com", "phone": "+12125551234"},
        "agentId": "agent_1", "twilioPhoneNumber": "+18001234567"
    });
    let (status, created) = post(&first.base, "/admin/clients", Some(&admin), client).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client"]["clientSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(first.stop().expect("stops").success());

    let second = launch.serve().expect("second process serves");
    let (status, login) = post(
        &second.base,
        "/auth/login",
        None,
        json!({"clientId": "client_persist", "clientSecret": secret}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["client"]["clientMeta"]["fullName"], "Persistent Pat");
    let (status, _) = post(
        &second.base,
        "/auth/admin/login",
        None,
        json!({"username": "boss", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(second.stop().expect("stops").success());
}

#[tokio::test]
async fn data_written_by_one_process_is_read_back_by_the_next_on_sqlite() {
    data_survives_a_restart(&[]).await;
}

#[tokio::test]
async fn data_written_by_one_process_is_read_back_by_the_next_on_postgres() {
    let url = fresh_postgres_database().await.expect("a fresh database");
    data_survives_a_restart(&[
        ("OUTCALL__DATABASE__URL", url.as_str()),
        (
            "OUTCALL__AUTH__JWT_SECRET",
            "e2e-signing-key-0123456789abcdef0123456789",
        ),
    ])
    .await;
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        args: &["serve"],
        env: env(scratch.path(), &[("OUTCALL__TELEMETRY__FORMAT", "json")]),
        cwd: scratch.path(),
    };
    let server = launch.serve().expect("serves");
    get(&server.base, "/healthz").await;
    let output = server.stdout();
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    assert!(server.stop().expect("stops").success());
}
