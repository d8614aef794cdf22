//! Graceful shutdown: SIGTERM during a live bridged call turns `/readyz` to 503 at once and
//! refuses new calls with 503, while the live call goes on to its natural end (the agent says
//! goodbye and hangs up, or the callee does) and is recorded complete; then the process exits
//! 0 well within the drain timeout.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use outcall_e2e::Launch;
use outcall_e2e::api::Api;
use outcall_e2e::providers::{CallScript, EmulatedProviders, short_conversation};
use outcall_e2e::proxy::RoundRobinProxy;
use outcall_sandbox::{ConversationEnd, EmulatedCallStatus};
use serde_json::json;

const ADMIN: (&str, &str) = ("admin", "shutdown admin password");
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
const FIRST_MESSAGE: &str = "Hello, this call carries on while the server shuts down.";

/// Who ends the call, a few seconds after SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NaturalEnd {
    /// The agent finishes its script (one exchange) and closes; outcall hangs up.
    AgentSaysGoodbye,
    /// The callee hangs up (Twilio's talk time) while the agent is still talking; Twilio
    /// stops the stream.
    CalleeHangsUp,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_live_call_refuses_new_work_lets_the_agent_finish_the_call_and_exits_zero()
{
    a_live_call_outlives_sigterm(NaturalEnd::AgentSaysGoodbye).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_live_call_lets_the_callee_hang_up_and_records_twilios_final_status() {
    a_live_call_outlives_sigterm(NaturalEnd::CalleeHangsUp).await;
}

async fn a_live_call_outlives_sigterm(natural_end: NaturalEnd) {
    let started = Instant::now();
    let (talk, user_audio_ms) = match natural_end {
        // The agent's first line takes ~3.5 s to speak, then one short exchange and goodbye.
        NaturalEnd::AgentSaysGoodbye => (Duration::from_secs(60), 500),
        // The callee leaves 8 s after answering, in the middle of its long first answer (long
        // enough for the checks after SIGTERM to see the call still live on a loaded machine).
        NaturalEnd::CalleeHangsUp => (Duration::from_secs(8), 15_000),
    };
    // Real-provider mode needs its public URL before it starts: a one-backend proxy gives one.
    let proxy = RoundRobinProxy::start().await.expect("the proxy starts");
    let providers = EmulatedProviders::start(
        &proxy.url(),
        CallScript {
            ring: Duration::from_millis(200),
            talk,
            conversation: short_conversation(1, user_audio_ms),
            webhook_delay: Duration::from_millis(100),
        },
    )
    .await
    .expect("the emulators start");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut env: HashMap<String, String> = [
        ("HOME", scratch.path().join("home").display().to_string()),
        ("OUTCALL__SERVER__PORT", "0".to_owned()),
        (
            "OUTCALL__SERVER__DRAIN_TIMEOUT_SECS",
            DRAIN_TIMEOUT.as_secs().to_string(),
        ),
        (
            "OUTCALL__STORAGE__DATA_DIR",
            scratch.path().join("data").display().to_string(),
        ),
        ("OUTCALL__ADMIN__USERNAME", ADMIN.0.to_owned()),
        ("OUTCALL__ADMIN__PASSWORD", ADMIN.1.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(providers.outcall_env());
    let launch = Launch {
        args: &["serve"],
        env,
        cwd: scratch.path(),
    };
    let mut server = tokio::task::block_in_place(|| launch.serve()).expect("serves");
    proxy.set_backends(vec![server.address().expect("an address")]);
    let api = Api::new(&server.base);
    let token = api
        .client_token(ADMIN, "client_draining", "agent_draining")
        .await
        .expect("a client and its token");

    let placed = api
        .make_call(
            &token,
            json!({"phone": "+12125550199", "firstMessage": FIRST_MESSAGE}),
        )
        .await
        .expect("make-call answers");
    assert_eq!(placed.status, 200, "{}", placed.body);
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    let sid = placed.body["callSid"].as_str().expect("callSid").to_owned();

    // Live: answered, and the bridge has recorded the agent's conversation.
    let live = api
        .wait_for_call(&token, &call_id, Duration::from_secs(20), |call| {
            call["callData"]["status"] == "in-progress"
                && call["callData"]["conversationId"].is_string()
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", server.output()));
    let conversation_id = live["callData"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();

    server.terminate().expect("SIGTERM");
    let signalled = Instant::now();

    // At once: not ready any more (the signal is handled asynchronously: allow a moment).
    let mut readyz = api.get("/readyz", None).await.expect("readyz answers");
    while readyz.status != 503 && signalled.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        readyz = api.get("/readyz", None).await.expect("readyz answers");
    }
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    assert_eq!(readyz.body["status"], "draining", "{}", readyz.body);
    // Still alive, still serving: liveness is fine, and a new call is refused with 503.
    assert_eq!(api.get("/healthz", None).await.unwrap().status, 200);
    let refused = api
        .make_call(&token, json!({"phone": "+12125550198"}))
        .await
        .expect("make-call answers while draining");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.retry_after.is_some(), "{refused:?}");
    assert_eq!(
        providers.twilio.calls().len(),
        1,
        "no second call was placed at Twilio"
    );
    let still_live = api.call(&token, &call_id).await.expect("the call reads");
    assert_eq!(
        still_live["callData"]["status"], "in-progress",
        "the call was not cut by the signal: {still_live}"
    );

    // The process waits for the call, then exits 0, well before the drain timeout.
    let status = server
        .wait_for_exit(DRAIN_TIMEOUT + Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", server.output()));
    let drained_in = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", server.output());
    assert!(
        drained_in < DRAIN_TIMEOUT,
        "exited after {drained_in:?}: the call was cut at the drain timeout, not finished"
    );
    assert!(
        drained_in > Duration::from_secs(1),
        "exited after {drained_in:?}: it did not wait for the live call"
    );
    assert!(
        !server.output().contains("live calls were cut"),
        "the drain cut the call:\n{}",
        server.output()
    );

    // The providers saw a natural end, not a cut: the agent finished its script (or was
    // closed normally once the callee had gone), and Twilio's final status callback was
    // accepted by the draining server.
    let agent = providers
        .elevenlabs
        .wait_for_end(&conversation_id, Duration::from_secs(5))
        .await
        .expect("the conversation ended");
    let expected_agent_end = match natural_end {
        NaturalEnd::AgentSaysGoodbye => ConversationEnd::AgentEnded,
        NaturalEnd::CalleeHangsUp => ConversationEnd::ClientClosed {
            code: Some(1000),
            reason: String::new(),
        },
    };
    assert_eq!(agent.end, Some(expected_agent_end), "{agent:?}");
    let phone = providers
        .twilio
        .wait_for_status(&sid, EmulatedCallStatus::Completed, Duration::from_secs(5))
        .await
        .expect("the call completed at Twilio");
    let completed = phone
        .callbacks
        .iter()
        .find(|c| c.param("CallStatus") == Some("completed"))
        .expect("a completed callback was sent");
    assert!(
        completed
            .http_status
            .is_some_and(|s| (200..300).contains(&s)),
        "the final status callback was not accepted: {completed:?}\n{}",
        server.output()
    );

    // The record, read back by the next process on the same data: complete.
    let output = server.output();
    drop(server);
    let next = tokio::task::block_in_place(|| launch.serve()).expect("serves again");
    let api = Api::new(&next.base);
    let call = api.call(&token, &call_id).await.expect("the call reads");
    let data = &call["callData"];
    assert_eq!(data["status"], "completed", "{call}\n{output}");
    assert!(data["duration"].as_u64().is_some_and(|d| d > 1), "{call}");
    let transcript = call["callDetails"]["callTranscript"]
        .as_str()
        .unwrap_or_default();
    assert!(
        transcript.contains(&format!("Agent: {FIRST_MESSAGE}")),
        "{call}"
    );
    match natural_end {
        NaturalEnd::AgentSaysGoodbye => {
            assert_eq!(
                data["endReason"], "the agent ended the conversation",
                "{call}"
            );
            for line in ["User: Answer 1.", "Agent: Reply 1."] {
                assert!(transcript.contains(line), "no {line:?} in {call}");
            }
        }
        NaturalEnd::CalleeHangsUp => {
            assert_eq!(
                data["endReason"], "the Twilio media stream stopped",
                "{call}"
            );
        }
    }
    assert!(next.stop().expect("stops").success());
    providers.shutdown().await;
    let elapsed = started.elapsed();
    eprintln!("{natural_end:?}: drained in {drained_in:?}; the test took {elapsed:?}");
}
