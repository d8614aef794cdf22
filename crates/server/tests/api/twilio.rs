//! Placing calls through Twilio, end to end: the real HTTP app and Twilio adapter against the
//! Twilio emulator, which dials, calls back (signed) and fetches TwiML like Twilio does.

use std::collections::HashMap;
use std::time::Duration;

use outcall_sandbox::CallOutcomeScript;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TWILIO_AUTH_TOKEN, TestApp, TestProviders, wait_for_call_status};

const BUSY: &str = "+12125550486";
const NO_ANSWER: &str = "+12125550487";
const INVALID: &str = "+12125550400";
const LONG_CALL: &str = "+12125550999";

fn scripts() -> HashMap<String, CallOutcomeScript> {
    [
        (BUSY, CallOutcomeScript::Busy),
        (NO_ANSWER, CallOutcomeScript::NoAnswer),
        (
            INVALID,
            CallOutcomeScript::RejectOnCreate {
                http_status: 400,
                code: 21211,
                message: "The 'To' number is not a valid phone number.".into(),
            },
        ),
    ]
    .into_iter()
    .map(|(number, script)| (number.to_owned(), script))
    .collect()
}

/// The app, its provider emulators (kept alive for the test), an admin token and a client token.
async fn setup(talk: Duration) -> (TestApp, TestProviders, String, String) {
    let (app, emulator) =
        TestApp::spawn_with_twilio(scripts(), Duration::from_millis(100), talk).await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_caller").await;
    (app, emulator, admin, token)
}

async fn make_call(app: &TestApp, token: &str, body: Value) -> crate::helpers::Response {
    app.post("/secure/make-call", Some(token), body).await
}

#[tokio::test]
async fn an_answered_call_goes_from_queued_to_completed_with_its_duration_in_history() {
    let (app, emulator, _, token) = setup(Duration::from_millis(1200)).await;
    let placed = make_call(&app, &token, json!({"phone": "+12125550123"})).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["success"], true);
    assert_eq!(placed.body["message"], "Call initiated successfully");
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    let sid = placed.body["callSid"].as_str().expect("callSid").to_owned();
    assert!(placed.body["requestId"].is_string());

    let call =
        wait_for_call_status(&app, &token, &call_id, "completed", Duration::from_secs(20)).await;
    let data = &call["callData"];
    assert_eq!(data["callSid"], sid.as_str());
    assert_eq!(data["phone"], "+12125550123");
    assert_eq!(
        data["from"], "+18001234567",
        "always the client's own number"
    );
    assert_eq!(data["agentId"], "agent_id_here");
    assert_eq!(data["requestId"], placed.body["requestId"]);
    assert!(data["duration"].as_u64().is_some(), "{call}");
    assert!(data["endTime"].is_string());

    let record = emulator
        .twilio
        .call(&sid)
        .expect("the emulator saw the call");
    assert_eq!(
        record.form_values("StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(
        record.callback_statuses(),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    for callback in &record.callbacks {
        assert_eq!(callback.http_status, Some(204), "{callback:?}");
    }
    let twiml = record
        .twiml
        .as_ref()
        .and_then(|t| t.body.clone())
        .expect("TwiML fetched");
    assert!(
        twiml.contains("<Connect>") && twiml.contains(&call_id),
        "{twiml}"
    );
}

#[tokio::test]
async fn busy_and_unanswered_calls_end_as_such() {
    let (app, _emulator, _, token) = setup(Duration::from_millis(300)).await;
    for (number, status) in [(BUSY, "busy"), (NO_ANSWER, "no-answer")] {
        let placed = make_call(&app, &token, json!({"phone": number})).await;
        assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
        let call_id = placed.body["callId"].as_str().expect("callId");
        let call =
            wait_for_call_status(&app, &token, call_id, status, Duration::from_secs(20)).await;
        assert!(call["callData"]["endTime"].is_string(), "{call}");
    }
}

#[tokio::test]
async fn a_rejected_number_is_a_400_and_the_call_is_recorded_failed_with_twilios_code() {
    let (app, _emulator, _, token) = setup(Duration::from_millis(300)).await;
    let response = make_call(&app, &token, json!({"phone": INVALID})).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
    assert_eq!(response.body["error"], "Invalid 'To' phone number");
    assert_eq!(response.body["twilioCode"], 21211);
    let call_id = response.body["callId"]
        .as_str()
        .expect("the attempt is in history");
    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    assert_eq!(call["callData"]["status"], "failed");
    assert_eq!(call["callData"]["errorCode"], "21211");
}

#[tokio::test]
async fn an_inactive_client_cannot_call_and_nobody_chooses_the_caller_id() {
    let (app, emulator, admin, token) = setup(Duration::from_millis(300)).await;
    let chosen = make_call(
        &app,
        &token,
        json!({"phone": "+12125550123", "from": "+19005550000"}),
    )
    .await;
    assert_eq!(chosen.status, StatusCode::BAD_REQUEST, "{}", chosen.body);

    let on_behalf = app
        .post(
            "/admin/clients/client_caller/make-call",
            Some(&admin),
            json!({"phone": "+12125550124"}),
        )
        .await;
    assert_eq!(on_behalf.status, StatusCode::OK, "{}", on_behalf.body);

    app.put(
        "/admin/clients/client_caller",
        &admin,
        json!({"status": "Inactive"}),
    )
    .await;
    let refused = app
        .post(
            "/admin/clients/client_caller/make-call",
            Some(&admin),
            json!({"phone": "+12125550125"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(
        emulator.twilio.calls().len(),
        1,
        "only the allowed call reached Twilio"
    );
}

/// Sends a status callback the way Twilio does, signed with `token`.
async fn send_callback(
    app: &TestApp,
    call_id: &str,
    params: &[(&str, &str)],
    token: &str,
) -> StatusCode {
    let path = format!("/twilio/status?callId={call_id}");
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = outcall_twilio::signature(token, &format!("{}{path}", app.base), &owned);
    app.http
        .post(format!("{}{path}", app.base))
        .header("X-Twilio-Signature", signature)
        .form(&owned)
        .send()
        .await
        .expect("sent")
        .status()
}

async fn queued_call(app: &TestApp, admin: &str) -> String {
    let created = app
        .post(
            "/admin/clients/client_caller/calls",
            Some(admin),
            json!({"callData": {"phone": "+12125550130", "status": "queued"}}),
        )
        .await;
    created.body["callId"].as_str().expect("callId").to_owned()
}

#[tokio::test]
async fn forged_and_tampered_callbacks_are_refused_and_change_nothing() {
    let (app, _emulator, admin, token) = setup(Duration::from_millis(300)).await;
    let call_id = queued_call(&app, &admin).await;
    let params = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "completed"),
        ("CallDuration", "30"),
    ];

    let unsigned = app
        .http
        .post(format!("{}/twilio/status?callId={call_id}", app.base))
        .form(&params)
        .send()
        .await
        .expect("sent");
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        send_callback(&app, &call_id, &params, "a-different-auth-token").await,
        StatusCode::FORBIDDEN
    );

    // A genuine signature replayed with one parameter changed.
    let path = format!("/twilio/status?callId={call_id}");
    let genuine: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature =
        outcall_twilio::signature(TWILIO_AUTH_TOKEN, &format!("{}{path}", app.base), &genuine);
    let mut tampered = genuine.clone();
    tampered[1].1 = "busy".to_owned();
    let replay = app
        .http
        .post(format!("{}{path}", app.base))
        .header("X-Twilio-Signature", signature)
        .form(&tampered)
        .send()
        .await
        .expect("sent");
    assert_eq!(replay.status(), StatusCode::FORBIDDEN);

    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    assert_eq!(
        call["callData"]["status"], "queued",
        "nothing changed: {call}"
    );
    assert!(call["callData"].get("callSid").is_none());
}

#[tokio::test]
async fn shuffled_and_duplicated_callbacks_end_in_the_right_state() {
    let (app, _emulator, admin, token) = setup(Duration::from_millis(300)).await;
    let call_id = queued_call(&app, &admin).await;
    let sid = "CA00000000000000000000000000000042";
    let events: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("CallSid", sid),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("SequenceNumber", "3"),
        ],
        vec![
            ("CallSid", sid),
            ("CallStatus", "ringing"),
            ("SequenceNumber", "1"),
        ],
        vec![
            ("CallSid", sid),
            ("CallStatus", "in-progress"),
            ("SequenceNumber", "2"),
        ],
        vec![
            ("CallSid", sid),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("SequenceNumber", "3"),
        ],
        vec![
            ("CallSid", sid),
            ("CallStatus", "initiated"),
            ("SequenceNumber", "0"),
        ],
        vec![
            ("CallSid", sid),
            ("CallStatus", "ringing"),
            ("SequenceNumber", "1"),
        ],
    ];
    // Sent concurrently: Twilio gives no ordering guarantee either.
    let sends = events
        .iter()
        .map(|params| send_callback(&app, &call_id, params, TWILIO_AUTH_TOKEN));
    for status in futures_util::future::join_all(sends).await {
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let call = app
        .get(&format!("/secure/calls/{call_id}"), &token)
        .await
        .body;
    assert_eq!(call["callData"]["status"], "completed", "{call}");
    assert_eq!(call["callData"]["duration"], 42);
    assert_eq!(call["callData"]["callSid"], sid);

    let unknown = send_callback(&app, "no-such-call", &events[0], TWILIO_AUTH_TOKEN).await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injected_markup_in_the_request_cannot_alter_the_twiml() {
    let (app, _emulator, _, token) = setup(Duration::from_millis(300)).await;
    let evil = r#""/><Dial>+19005550000</Dial><Stream url="wss://evil.example"#;
    let placed = make_call(
        &app,
        &token,
        json!({"phone": "+12125550123", "firstMessage": evil, "dynamicVariables": {"name": evil}}),
    )
    .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    let call_id = placed.body["callId"].as_str().expect("callId");

    let path = format!("/twilio/twiml?callId={call_id}");
    let params = vec![(
        "CallSid".to_owned(),
        "CA0123456789abcdef0123456789abcdef".to_owned(),
    )];
    let signature =
        outcall_twilio::signature(TWILIO_AUTH_TOKEN, &format!("{}{path}", app.base), &params);
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/xml")
    );
    let twiml = response.text().await.expect("body");

    // Parse the document: the only elements are Response > Connect > Stream > Parameter.
    let mut reader = quick_xml::Reader::from_str(&twiml);
    let mut elements = Vec::new();
    loop {
        match reader.read_event().expect("well-formed TwiML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                elements.push(String::from_utf8_lossy(e.name().as_ref().as_bytes()).into_owned());
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(
        elements,
        ["Response", "Connect", "Stream", "Parameter"],
        "{twiml}"
    );
    assert!(
        !twiml.contains("evil.example\"") && !twiml.contains("<Dial"),
        "{twiml}"
    );
    assert!(
        twiml.contains(&format!(
            "ws://127.0.0.1:{}/twilio/media-stream",
            app.base.rsplit(':').next().expect("port")
        )),
        "{twiml}"
    );

    let unsigned = app
        .http
        .post(format!("{}{path}", app.base))
        .form(&params)
        .send()
        .await
        .expect("sent");
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn hanging_up_ends_a_live_call_and_a_finished_one_answers_409() {
    let (app, emulator, _, token) = setup(Duration::from_secs(30)).await;
    let placed = make_call(&app, &token, json!({"phone": LONG_CALL})).await;
    let call_id = placed.body["callId"].as_str().expect("callId").to_owned();
    wait_for_call_status(
        &app,
        &token,
        &call_id,
        "in-progress",
        Duration::from_secs(20),
    )
    .await;

    let hangup = app
        .post(
            &format!("/secure/calls/{call_id}/hangup"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(hangup.status, StatusCode::OK, "{}", hangup.body);
    let call =
        wait_for_call_status(&app, &token, &call_id, "completed", Duration::from_secs(20)).await;
    assert!(
        call["callData"]["duration"]
            .as_u64()
            .is_some_and(|d| d < 30),
        "{call}"
    );
    let sid = placed.body["callSid"].as_str().expect("sid");
    let record = emulator.twilio.call(sid).expect("seen");
    assert!(
        record
            .updates
            .iter()
            .any(|u| u.contains(&("Status".to_owned(), "completed".to_owned())))
    );

    let again = app
        .post(
            &format!("/secure/calls/{call_id}/hangup"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}
