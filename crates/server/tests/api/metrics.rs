//! `GET /metrics` after emulated calls through the real application (PostgreSQL store, the
//! production Twilio and ElevenLabs adapters against the emulators, the media bridge): every
//! metric of docs/operations.md is there, emitted by the code path it describes.
//!
//! The recorder is one per test process, shared by the tests running beside this one, so
//! the checks are for series that this test's own calls must have produced, never for exact
//! totals.

use std::collections::HashMap;
use std::time::Duration;

use outcall_sandbox::CallOutcomeScript;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, short_script, wait_for_call, wait_for_call_status};

const ANSWERS: &str = "+12125550123";
const REFUSED: &str = "+12125550188";

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("text")
}

#[tokio::test]
async fn metrics_expose_every_documented_name_after_an_emulated_call() {
    let scripts = HashMap::from([(
        REFUSED.to_owned(),
        CallOutcomeScript::RejectOnCreate {
            http_status: 400,
            code: 21211,
            message: "The 'To' number is not a valid phone number.".to_owned(),
        },
    )]);
    let (app, _providers) = TestApp::spawn_with_providers(
        scripts,
        Duration::from_millis(100),
        Duration::from_secs(30),
        short_script(),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_metrics").await;

    // A call Twilio refuses: a provider error, a failed placement, a failed call.
    let refused = app
        .post("/secure/make-call", Some(&token), json!({"phone": REFUSED}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);

    // A whole AI call: bridged, completed, analysed.
    let placed = app
        .post("/secure/make-call", Some(&token), json!({"phone": ANSWERS}))
        .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    wait_for_call_status(&app, &token, &call_id, "completed", Duration::from_secs(30)).await;
    let call = wait_for_call(
        &app,
        &token,
        &call_id,
        Duration::from_secs(20),
        "an outcome",
        |call| call["callDetails"]["callOutcome"].is_string(),
    )
    .await;
    let outcome = call["callDetails"]["callOutcome"]
        .as_str()
        .expect("the post-call report set an outcome")
        .to_owned();

    // A forged Twilio callback.
    let forged = app
        .http
        .post(format!("{}/twilio/status?callId={call_id}", app.base))
        .header("X-Twilio-Signature", "forged")
        .form(&[("CallSid", "CA00000000000000000000000000000000")])
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let text = scrape(&app).await;
    let expected = [
        // HTTP
        r#"http_requests_total{method="POST",route="/secure/make-call",status="200"}"#.to_owned(),
        r#"http_request_duration_seconds_bucket{method="POST",route="/secure/make-call",le="#
            .to_owned(),
        // Calls
        r#"calls_placed_total{result="placed"}"#.to_owned(),
        r#"calls_placed_total{result="telephony_error"}"#.to_owned(),
        r#"calls_ended_total{status="completed"}"#.to_owned(),
        r#"calls_ended_total{status="failed"}"#.to_owned(),
        format!(r#"call_outcomes_total{{outcome="{outcome}"}}"#),
        "bridge_live_calls ".to_owned(),
        // Media bridge
        r#"bridge_relay_latency_seconds_bucket{direction="caller_to_agent",le="0.001"}"#
            .to_owned(),
        r#"bridge_relay_latency_seconds_bucket{direction="agent_to_caller",le="0.001"}"#
            .to_owned(),
        r#"bridge_frames_relayed_total{direction="to_agent"}"#.to_owned(),
        r#"bridge_frames_relayed_total{direction="to_twilio"}"#.to_owned(),
        "bridge_frames_dropped_total ".to_owned(),
        "bridge_malformed_messages_total ".to_owned(),
        // Providers
        r#"provider_request_duration_seconds_bucket{provider="twilio",operation="create_call",le="#
            .to_owned(),
        r#"provider_request_duration_seconds_bucket{provider="twilio",operation="end_call",le="#
            .to_owned(),
        r#"provider_request_duration_seconds_bucket{provider="elevenlabs",operation="get_signed_url",le="#
            .to_owned(),
        r#"provider_request_duration_seconds_bucket{provider="elevenlabs",operation="open_conversation",le="#
            .to_owned(),
        r#"provider_request_errors_total{provider="twilio",operation="create_call",kind="rejected"}"#
            .to_owned(),
        // Webhooks
        r#"webhook_verifications_failed_total{source="twilio"}"#.to_owned(),
        // Database
        r#"db_pool_connections{state="idle"}"#.to_owned(),
        r#"db_pool_connections{state="in_use"}"#.to_owned(),
        "db_pool_max_connections ".to_owned(),
    ];
    let missing: Vec<&String> = expected
        .iter()
        .filter(|s| !text.contains(s.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing {missing:#?} from:\n{text}");

    // No label names a client, a call or a phone number.
    for private in ["client_metrics", call_id.as_str(), "2125550"] {
        assert!(!text.contains(private), "{private} in:\n{text}");
    }
}
