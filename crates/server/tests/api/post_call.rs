//! The ElevenLabs post-call webhook through the real app: verified, mapped onto the call,
//! idempotent, and visible in the client's history and statistics.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const WEBHOOK_SECRET: &str = "test-elevenlabs-webhook-secret";
const PATH: &str = "/webhooks/elevenlabs/post-call";

async fn setup() -> (TestApp, String, String, String) {
    let (app, _providers) = TestApp::spawn_with_twilio(
        Default::default(),
        Duration::from_millis(100),
        Duration::from_millis(300),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_analysed").await;
    let created = app
        .post(
            "/admin/clients/client_analysed/calls",
            Some(&admin),
            json!({"callData": {"phone": "+12125550170", "status": "completed", "conversationId": "conv_known_1", "duration": 61}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let call_id = created.body["callId"].as_str().expect("callId").to_owned();
    // No call is placed here, so the Twilio emulator may go.
    (app, admin, token, call_id)
}

fn transcription(conversation: &str, event_timestamp: i64, outcome: &str) -> Value {
    json!({
        "type": "post_call_transcription",
        "event_timestamp": event_timestamp,
        "data": {
            "agent_id": "agent_id_here",
            "conversation_id": conversation,
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hi, this is Ava.", "time_in_call_secs": 0},
                {"role": "user", "message": "Hello!", "time_in_call_secs": 2},
                {"role": "agent", "message": null, "time_in_call_secs": 3}
            ],
            "metadata": {"start_time_unix_secs": event_timestamp - 70, "call_duration_secs": 58},
            "analysis": {
                "call_successful": "success",
                "transcript_summary": "The callee wants a callback.",
                "data_collection_results": {
                    "call_outcome": {"data_collection_id": "call_outcome", "value": outcome},
                    "call_sentiment": {"data_collection_id": "call_sentiment", "value": "delighted"},
                    "next_action": {"data_collection_id": "next_action", "value": "call back"},
                    "next_action_date": {"data_collection_id": "next_action_date", "value": "2025-03-27"}
                }
            },
            "conversation_initiation_client_data": {"dynamic_variables": {"outcall_call_id": "not-this-one"}}
        }
    })
}

async fn deliver(app: &TestApp, body: &Value, signed_at: i64, secret: &str) -> (StatusCode, Value) {
    let raw = serde_json::to_vec(body).expect("json");
    let signature = outcall_elevenlabs::sign(secret, signed_at, &raw);
    let response = app
        .http
        .post(format!("{}{PATH}", app.base))
        .header("ElevenLabs-Signature", signature)
        .header("Content-Type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_signed_report_completes_the_call_and_shows_in_history_and_stats() {
    let (app, admin, token, call_id) = setup().await;
    let (status, body) = deliver(
        &app,
        &transcription("conv_known_1", now(), "callback"),
        now(),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "applied");

    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    let details = &call["callDetails"];
    assert_eq!(details["callSummary"], "The callee wants a callback.");
    assert_eq!(
        details["callTranscript"],
        "Agent: Hi, this is Ava.\nUser: Hello!"
    );
    assert_eq!(details["callOutcome"], "callback");
    assert_eq!(
        details["callSentiment"], "unknown",
        "a value outside the set becomes unknown"
    );
    assert_eq!(details["nextAction"], "call back");
    assert_eq!(details["nextActionDate"], "2025-03-27T00:00:00.000Z");

    let stats = app.get("/secure/call-stats", &token).await.body;
    assert_eq!(stats["stats"]["callsByOutcome"]["callback"], 1);
    assert_eq!(stats["stats"]["callsBySentiment"]["unknown"], 1);
    let dashboard = app.get("/admin/dashboard", &admin).await.body;
    assert_eq!(dashboard["calls"]["byOutcome"]["callback"], 1);
}

#[tokio::test]
async fn redelivery_and_older_reports_change_nothing() {
    let (app, _admin, token, call_id) = setup().await;
    let at = now();
    let (_, first) = deliver(
        &app,
        &transcription("conv_known_1", at, "interested"),
        now(),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(first["status"], "applied");
    let (status, again) = deliver(
        &app,
        &transcription("conv_known_1", at, "interested"),
        now(),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    let (_, older) = deliver(
        &app,
        &transcription("conv_known_1", at - 600, "not-interested"),
        now(),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(older["status"], "duplicate");
    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    assert_eq!(call["callDetails"]["callOutcome"], "interested");
}

#[tokio::test]
async fn unknown_conversations_are_acknowledged_and_change_nothing() {
    let (app, admin, _token, _) = setup().await;
    let (status, body) = deliver(
        &app,
        &transcription("conv_nobody", now(), "interested"),
        now(),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "ElevenLabs disables webhooks that fail"
    );
    assert_eq!(body["status"], "unknown-call");
    let dashboard = app.get("/admin/dashboard", &admin).await.body;
    assert_eq!(dashboard["calls"]["byOutcome"]["interested"], 0);
}

#[tokio::test]
async fn unsigned_badly_signed_stale_and_altered_deliveries_are_401_and_change_nothing() {
    let (app, _admin, token, call_id) = setup().await;
    let body = transcription("conv_known_1", now(), "interested");
    let raw = serde_json::to_vec(&body).expect("json");

    let unsigned = app
        .http
        .post(format!("{}{PATH}", app.base))
        .body(raw.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let (wrong, _) = deliver(&app, &body, now(), "some-other-secret").await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);
    let (stale, _) = deliver(&app, &body, now() - 31 * 60, WEBHOOK_SECRET).await;
    assert_eq!(stale, StatusCode::UNAUTHORIZED);

    let signature = outcall_elevenlabs::sign(WEBHOOK_SECRET, now(), &raw);
    let mut altered = raw.clone();
    let last = altered.len() - 2;
    altered[last] = b' ';
    let response = app
        .http
        .post(format!("{}{PATH}", app.base))
        .header("ElevenLabs-Signature", signature)
        .body(altered)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    assert!(call["callDetails"].get("callOutcome").is_none(), "{call}");
}
