//! The README's quick-start commands, extracted and run by bash against the real binary in
//! sandbox mode started the way the README's run command starts it, so they never rot.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use outcall_e2e::Launch;

/// The shell code of every ```sh block between `<!-- quickstart -->` and `<!-- /quickstart -->`.
fn quickstart_script(readme: &str) -> String {
    let start = readme
        .find("<!-- quickstart -->")
        .expect("README.md has a <!-- quickstart --> marker");
    let end = readme
        .find("<!-- /quickstart -->")
        .expect("README.md has a <!-- /quickstart --> marker");
    assert!(start < end, "the quick-start markers are out of order");
    let mut script = String::new();
    let mut in_block = false;
    let mut blocks = 0;
    for line in readme[start..end].lines() {
        let trimmed = line.trim();
        if in_block {
            if trimmed == "```" {
                in_block = false;
            } else {
                script.push_str(line);
                script.push('\n');
            }
        } else if trimmed == "```sh" || trimmed == "```bash" {
            in_block = true;
            blocks += 1;
        }
    }
    assert!(!in_block, "an unterminated code block in the quick start");
    assert!(blocks > 0, "no ```sh block in the quick start");
    script
}

/// The README run command's admin settings, as `(name, value)` pairs.
fn run_command_admin_env(readme: &str) -> Vec<(String, String)> {
    let line = readme
        .lines()
        .find(|line| line.contains("-- serve") && line.contains("OUTCALL__ADMIN__PASSWORD="))
        .expect("README.md has the run command with the admin variables");
    assert!(
        line.contains("OUTCALL__ADMIN__USERNAME=admin OUTCALL__ADMIN__PASSWORD='change me please'"),
        "the run command changed; update this test with it: {line}"
    );
    vec![
        ("OUTCALL__ADMIN__USERNAME".to_owned(), "admin".to_owned()),
        (
            "OUTCALL__ADMIN__PASSWORD".to_owned(),
            "change me please".to_owned(),
        ),
    ]
}

#[test]
fn the_readme_quick_start_commands_complete_a_sandbox_call_with_a_summary() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let script = quickstart_script(&readme);
    assert!(script.contains("make-call"), "{script}");

    let scratch = tempfile::tempdir().expect("tempdir");
    let mut env: HashMap<String, String> = [
        ("HOME", scratch.path().join("home").display().to_string()),
        ("OUTCALL__SERVER__PORT", "0".to_owned()),
        ("OUTCALL__SANDBOX__RING_MS", "200".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(run_command_admin_env(&readme));
    let server = Launch {
        args: &["serve"],
        env,
        cwd: scratch.path(),
    }
    .serve()
    .expect("serves");

    let started = Instant::now();
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(scratch.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", scratch.path().join("home"))
        .env("BASE", &server.base)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!(
        "--- script ---\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- server ---\n{}",
        server.output()
    );
    assert!(output.status.success(), "the quick start failed\n{shown}");
    for expected in [
        "created client_",
        "placed call_",
        "status: completed duration:",
        "outcome: interested",
        "summary: The callee agreed to a product demo",
        "Agent: Hi, this is Ava from the sandbox.",
        "\"totalCalls\": 1,",
    ] {
        assert!(stdout.contains(expected), "no {expected:?}\n{shown}");
    }
    eprintln!("the quick start took {:?}", started.elapsed());
    assert!(server.stop().expect("stops").success());
}
