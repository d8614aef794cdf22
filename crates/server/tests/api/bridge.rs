//! A whole AI call, end to end: the real app bridges the Twilio emulator's media stream to
//! the ElevenLabs emulator's agent, records the conversation, and completes the call from the
//! signed post-call webhook.

use std::time::Duration;

use outcall_sandbox::ConversationScript;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, short_script, wait_for_call, wait_for_call_status};

/// Waits until the post-call report has filled the call's summary.
async fn wait_for_summary(app: &TestApp, token: &str, call_id: &str) -> serde_json::Value {
    wait_for_call(
        app,
        token,
        call_id,
        Duration::from_secs(20),
        "a summary",
        |call| call["callDetails"]["callSummary"].is_string(),
    )
    .await
}

#[tokio::test]
async fn an_answered_call_is_bridged_to_the_agent_and_completed_by_the_post_call_report() {
    let (app, providers) = TestApp::spawn_with_providers(
        Default::default(),
        Duration::from_millis(100),
        Duration::from_secs(30),
        short_script(),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_bridged").await;

    let placed = app
        .post(
            "/secure/make-call",
            Some(&token),
            json!({"phone": "+12125550123", "firstMessage": "Hi Jane, this is Ava.", "dynamicVariables": {"first_name": "Jane", "vip": true}}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    let sid = placed.body["callSid"].as_str().expect("sid").to_owned();

    // The agent ends the conversation after its last line; the bridge then hangs up.
    wait_for_call_status(&app, &token, &call_id, "completed", Duration::from_secs(30)).await;
    let call = wait_for_summary(&app, &token, &call_id).await;
    let conversation = call["callData"]["conversationId"]
        .as_str()
        .expect("conversation id recorded")
        .to_owned();
    assert!(
        call["callDetails"]["callTranscript"]
            .as_str()
            .is_some_and(|t| t.contains("Agent: ")),
        "{call}"
    );
    assert!(call["callDetails"]["callOutcome"].is_string(), "{call}");

    let agent_side = providers
        .elevenlabs
        .conversation(&conversation)
        .expect("the agent saw the conversation");
    let record = format!("{agent_side:?}");
    assert!(
        record.contains("Jane"),
        "dynamic variables reached the agent: {record}"
    );
    assert!(
        record.contains(&call_id),
        "outcall's call id reached the agent: {record}"
    );
    assert!(
        record.contains("Hi Jane, this is Ava."),
        "the first message override reached the agent"
    );

    let phone_side = providers.twilio.call(&sid).expect("Twilio saw the call");
    let stream = phone_side
        .stream
        .as_ref()
        .expect("the media stream was opened");
    assert!(stream.connect_error.is_none(), "{:?}", stream.connect_error);
    assert!(
        stream.media_messages_received > 0,
        "agent audio reached the callee"
    );
    assert_eq!(
        stream.custom_parameters.get("callId").map(String::as_str),
        Some(call_id.as_str())
    );
}

#[tokio::test]
async fn an_agent_failure_mid_call_ends_the_phone_call_and_records_why() {
    let script = ConversationScript {
        turns: Vec::new(),
        end_after_turns: false,
        ..short_script()
    };
    let (app, providers) = TestApp::spawn_with_providers(
        Default::default(),
        Duration::from_millis(100),
        Duration::from_secs(60),
        script,
    )
    .await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_dropped").await;
    let placed = app
        .post(
            "/secure/make-call",
            Some(&token),
            json!({"phone": "+12125550124"}),
        )
        .await;
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    wait_for_call_status(
        &app,
        &token,
        &call_id,
        "in-progress",
        Duration::from_secs(20),
    )
    .await;

    let call = wait_for_call(
        &app,
        &token,
        &call_id,
        Duration::from_secs(10),
        "a conversation id",
        |call| call["callData"]["conversationId"].is_string(),
    )
    .await;
    let conversation = call["callData"]["conversationId"]
        .as_str()
        .expect("the bridge recorded the conversation")
        .to_owned();
    assert!(providers.elevenlabs.kill_conversation(&conversation));

    let call =
        wait_for_call_status(&app, &token, &call_id, "completed", Duration::from_secs(20)).await;
    assert!(
        call["callData"]["duration"]
            .as_u64()
            .is_some_and(|d| d < 60),
        "ended early: {call}"
    );
    assert!(
        call["callData"]["endReason"].is_string(),
        "the reason is recorded: {call}"
    );
}
