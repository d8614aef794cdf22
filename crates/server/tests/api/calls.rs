use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const STATUSES: [&str; 9] = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
];
const OUTCOMES: [&str; 5] = [
    "interested",
    "not-interested",
    "callback",
    "unavailable",
    "unknown",
];
const SENTIMENTS: [&str; 4] = ["positive", "neutral", "negative", "unknown"];
const CLIENTS: [&str; 3] = ["client_x", "client_y", "client_z"];

/// One seeded call, as the test knows it.
#[derive(Clone, Debug)]
struct Seeded {
    id: String,
    client: &'static str,
    status: &'static str,
    outcome: Option<&'static str>,
    sentiment: Option<&'static str>,
    duration: Option<u64>,
    start: DateTime<Utc>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seeds 45 calls over three clients: every status, outcome (and none), sentiment (and none),
/// with and without durations, started between 1 hour and ~22 days ago.
async fn seed(app: &TestApp, admin: &str) -> (Vec<Seeded>, DateTime<Utc>) {
    for client in CLIENTS {
        app.create_client(admin, client, &format!("{client}@example.com"))
            .await;
    }
    let now = Utc::now();
    let mut seeded = Vec::new();
    for i in 0..45usize {
        let call = Seeded {
            id: String::new(),
            client: CLIENTS[i % 3],
            status: STATUSES[i % 9],
            outcome: [
                Some("interested"),
                Some("not-interested"),
                Some("callback"),
                Some("unavailable"),
                Some("unknown"),
                None,
            ][i % 6],
            sentiment: [
                Some("positive"),
                Some("neutral"),
                Some("negative"),
                Some("unknown"),
                None,
            ][i % 5],
            duration: (i % 4 != 0).then_some(i as u64 * 7),
            start: now - Duration::hours(i as i64 * 12 + 1),
        };
        let mut data = json!({
            "callSid": format!("CA{:032x}", i + 1),
            "requestId": format!("req-{i}"),
            "phone": format!("+1212555{:04}", i),
            "from": "+18001234567",
            "agentId": "agent_id_here",
            "startTime": ts(call.start),
            "status": call.status,
            "callCount": 1
        });
        if let Some(d) = call.duration {
            data["duration"] = json!(d);
        }
        let details = json!({
            "callOutcome": call.outcome.unwrap_or(""),
            "callSentiment": call.sentiment.unwrap_or(""),
            "callSummary": format!("summary {i}"),
            "callTranscript": "",
        });
        let response = app
            .post(
                &format!("/admin/clients/{}/calls", call.client),
                Some(admin),
                json!({"callData": data, "callDetails": details}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(
            response.body["message"],
            "Call added to history successfully"
        );
        let id = response.body["callId"].as_str().expect("callId").to_owned();
        seeded.push(Seeded { id, ..call });
    }
    (seeded, now)
}

fn ids(body: &Value) -> Vec<String> {
    body["callHistory"]
        .as_array()
        .expect("callHistory")
        .iter()
        .map(|c| c["callId"].as_str().expect("callId").to_owned())
        .collect()
}

fn newest_first(calls: &[Seeded], client: &str, status: Option<&str>) -> Vec<String> {
    let mut mine: Vec<&Seeded> = calls
        .iter()
        .filter(|c| c.client == client && status.is_none_or(|s| c.status == s))
        .collect();
    mine.sort_by_key(|c| std::cmp::Reverse(c.start));
    mine.iter().map(|c| c.id.clone()).collect()
}

#[tokio::test]
async fn call_history_is_newest_first_with_total_filtered_and_exact_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (calls, _) = seed(&app, &admin).await;
    let expected_all = newest_first(&calls, "client_x", None);
    assert_eq!(expected_all.len(), 15);

    let page = app
        .get("/admin/clients/client_x/calls?limit=200", &admin)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["clientId"], "client_x");
    assert_eq!(page.body["total"], 15);
    assert_eq!(page.body["filtered"], 15);
    assert_eq!(ids(&page.body), expected_all);

    let default_page = app.get("/admin/clients/client_x/calls", &admin).await;
    assert_eq!(
        ids(&default_page.body).len(),
        15,
        "default limit 20 covers all 15"
    );

    let completed = newest_first(&calls, "client_x", Some("completed"));
    let filtered = app
        .get("/admin/clients/client_x/calls?status=completed", &admin)
        .await;
    assert_eq!(filtered.body["total"], 15);
    assert_eq!(filtered.body["filtered"], completed.len());
    assert_eq!(ids(&filtered.body), completed);

    let one = app
        .get("/admin/clients/client_x/calls?limit=1&offset=3", &admin)
        .await;
    assert_eq!(ids(&one.body), expected_all[3..4]);
    let last_partial = app
        .get("/admin/clients/client_x/calls?limit=4&offset=12", &admin)
        .await;
    assert_eq!(ids(&last_partial.body), expected_all[12..]);
    let past_end = app
        .get("/admin/clients/client_x/calls?offset=15", &admin)
        .await;
    assert!(ids(&past_end.body).is_empty());
    assert_eq!(past_end.body["total"], 15);

    let first = &page.body["callHistory"][0];
    let seeded = calls
        .iter()
        .find(|c| c.id == expected_all[0])
        .expect("seeded");
    assert_eq!(first["callData"]["status"], seeded.status);
    assert_eq!(first["callData"]["startTime"], ts(seeded.start));
    assert!(
        first["callData"]["startTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('.'))
    );
    assert_eq!(
        first["callData"]["phone"]
            .as_str()
            .map(|p| p.starts_with("+1212555")),
        Some(true)
    );
    assert_eq!(
        first["callDetails"]["callSummary"]
            .as_str()
            .map(|s| s.starts_with("summary")),
        Some(true)
    );
}

#[tokio::test]
async fn a_client_sees_its_own_calls_and_another_clients_call_is_a_plain_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (calls, _) = seed(&app, &admin).await;
    let secret = app
        .post(
            "/admin/clients/client_x/reset-secret",
            Some(&admin),
            json!({}),
        )
        .await
        .body["client"]["clientSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let token = app.client_login("client_x", &secret).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let mine = app.get("/secure/calls?limit=200", &token).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(ids(&mine.body), newest_first(&calls, "client_x", None));
    assert_eq!(mine.body["clientId"], "client_x");

    let own = calls
        .iter()
        .find(|c| c.client == "client_x")
        .expect("own call");
    let theirs = calls
        .iter()
        .find(|c| c.client == "client_y")
        .expect("other call");
    let got = app.get(&format!("/secure/calls/{}", own.id), &token).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["callId"], own.id.as_str());

    let other = app
        .get(&format!("/secure/calls/{}", theirs.id), &token)
        .await;
    let missing = app.get("/secure/calls/does-not-exist", &token).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    // Equal but for the request ids, which differ per request.
    let without_id = |body: &serde_json::Value| {
        let mut body = body.clone();
        body.as_object_mut().map(|m| m.remove("requestId"));
        body
    };
    assert_eq!(
        without_id(&other.body),
        without_id(&missing.body),
        "indistinguishable from a missing call"
    );
    assert_eq!(other.body["error"], "Call not found");

    let wrong_owner = app
        .get(
            &format!("/admin/clients/client_x/calls/{}", theirs.id),
            &admin,
        )
        .await;
    assert_eq!(wrong_owner.status, StatusCode::NOT_FOUND);
    let right_owner = app
        .get(
            &format!("/admin/clients/client_y/calls/{}", theirs.id),
            &admin,
        )
        .await;
    assert_eq!(right_owner.status, StatusCode::OK);

    let stats = app.get("/secure/call-stats", &token).await;
    assert_eq!(stats.body["stats"]["totalCalls"], 15, "only its own calls");
}

#[tokio::test]
async fn call_stats_match_the_values_the_test_computes() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (calls, _) = seed(&app, &admin).await;
    let secret = app
        .post(
            "/admin/clients/client_y/reset-secret",
            Some(&admin),
            json!({}),
        )
        .await
        .body["client"]["clientSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let token = app.client_login("client_y", &secret).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let response = app.get("/secure/call-stats", &token).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["clientId"], "client_y");
    let stats = &response.body["stats"];
    let mine: Vec<&Seeded> = calls.iter().filter(|c| c.client == "client_y").collect();
    assert_eq!(stats["totalCalls"], mine.len());
    for status in STATUSES {
        assert_eq!(
            stats["callsByStatus"][status],
            mine.iter().filter(|c| c.status == status).count(),
            "{status}"
        );
    }
    for outcome in OUTCOMES {
        let expected = mine
            .iter()
            .filter(|c| c.outcome.unwrap_or("unknown") == outcome)
            .count();
        assert_eq!(stats["callsByOutcome"][outcome], expected, "{outcome}");
    }
    for sentiment in SENTIMENTS {
        let expected = mine
            .iter()
            .filter(|c| c.sentiment.unwrap_or("unknown") == sentiment)
            .count();
        assert_eq!(
            stats["callsBySentiment"][sentiment], expected,
            "{sentiment}"
        );
    }
    let durations: Vec<u64> = mine.iter().filter_map(|c| c.duration).collect();
    let total: u64 = durations.iter().sum();
    assert_eq!(stats["totalDuration"], total);
    let average = (total as f64 / durations.len() as f64).round() as u64;
    assert_eq!(stats["averageDuration"], average);
}

#[tokio::test]
async fn call_stats_of_a_client_without_calls_has_every_key_at_zero() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_empty").await;
    let stats = app.get("/secure/call-stats", &token).await.body["stats"].clone();
    assert_eq!(stats["totalCalls"], 0);
    assert_eq!(stats["totalDuration"], 0);
    assert_eq!(stats["averageDuration"], 0);
    for status in STATUSES {
        assert_eq!(stats["callsByStatus"][status], 0, "{status}");
    }
    for outcome in OUTCOMES {
        assert_eq!(stats["callsByOutcome"][outcome], 0, "{outcome}");
    }
    for sentiment in SENTIMENTS {
        assert_eq!(stats["callsBySentiment"][sentiment], 0, "{sentiment}");
    }
}

#[tokio::test]
async fn the_dashboard_counts_clients_and_calls_exactly() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (calls, now) = seed(&app, &admin).await;
    app.create_client(&admin, "client_idle", "idle@example.com")
        .await;
    app.put(
        "/admin/clients/client_idle",
        &admin,
        json!({"status": "Inactive"}),
    )
    .await;
    app.put(
        "/admin/clients/client_z",
        &admin,
        json!({"status": "Suspended"}),
    )
    .await;

    let response = app.get("/admin/dashboard", &admin).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = &response.body;
    assert_eq!(
        body["clients"],
        json!({"active": 2, "inactive": 2, "suspended": 1, "total": 4})
    );
    assert_eq!(body["calls"]["total"], calls.len());
    let recent = calls
        .iter()
        .filter(|c| c.start >= now - Duration::days(7))
        .count();
    assert_eq!(body["calls"]["recent"], recent);
    for status in STATUSES {
        assert_eq!(
            body["calls"]["byStatus"][status],
            calls.iter().filter(|c| c.status == status).count(),
            "{status}"
        );
    }
    for outcome in OUTCOMES {
        let expected = calls
            .iter()
            .filter(|c| c.outcome.unwrap_or("unknown") == outcome)
            .count();
        assert_eq!(body["calls"]["byOutcome"][outcome], expected, "{outcome}");
    }
}

#[tokio::test]
async fn recent_activity_lists_calls_of_the_period_newest_first_with_client_names() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (calls, now) = seed(&app, &admin).await;
    let mut expected: Vec<&Seeded> = calls
        .iter()
        .filter(|c| c.start >= now - Duration::days(7))
        .collect();
    expected.sort_by_key(|c| std::cmp::Reverse(c.start));

    let response = app.get("/admin/activity?days=7&limit=100", &admin).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["period"], "7 days");
    assert_eq!(response.body["count"], expected.len());
    let activities = response.body["activities"].as_array().expect("activities");
    let got: Vec<&str> = activities
        .iter()
        .filter_map(|a| a["callId"].as_str())
        .collect();
    let want: Vec<&str> = expected.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(got, want);
    let first = &activities[0];
    assert_eq!(first["clientId"], expected[0].client);
    assert_eq!(
        first["clientName"],
        format!("Owner of {}", expected[0].client)
    );
    assert_eq!(first["businessName"], "Acme Corp");
    assert_eq!(first["status"], expected[0].status);
    assert_eq!(first["startTime"], ts(expected[0].start));

    let default = app.get("/admin/activity", &admin).await;
    assert_eq!(default.body["count"], 10.min(expected.len()));
    let one = app.get("/admin/activity?days=1&limit=1", &admin).await;
    assert_eq!(one.body["count"], 1);
    assert_eq!(one.body["activities"][0]["callId"], want[0]);

    for bad in [
        "days=0",
        "days=366",
        "days=abc",
        "limit=0",
        "limit=101",
        "limit=-5",
    ] {
        let response = app.get(&format!("/admin/activity?{bad}"), &admin).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.body
        );
        let param = bad.split('=').next().expect("name");
        assert!(
            response.body["details"]
                .as_str()
                .is_some_and(|d| d.contains(param)),
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn updating_a_call_follows_the_status_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_client(&admin, "client_u", "u@example.com").await;
    let created = app
        .post(
            "/admin/clients/client_u/calls",
            Some(&admin),
            json!({"callData": {"phone": "+12125550001", "status": "ringing"}}),
        )
        .await;
    let call_id = created.body["callId"].as_str().expect("id").to_owned();
    let path = format!("/admin/clients/client_u/calls/{call_id}");

    let update = app
        .put(
            &path,
            &admin,
            json!({
                "callData": {"status": "completed", "duration": 900, "endTime": "2025-03-20T12:15:00.000Z",
                             "recordingUrl": "https://api.twilio.com/recordings/RE123"},
                "callDetails": {"callOutcome": "interested", "callSentiment": "positive", "callSummary": "Keen",
                                "nextAction": "schedule_follow_up", "nextActionDate": "2025-03-27T14:00:00+02:00",
                                "agentNotes": "Follow up with discount code"}
            }),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.body);
    assert_eq!(update.body["message"], "Call details updated successfully");
    let call = app.get(&path, &admin).await.body;
    assert_eq!(call["callData"]["status"], "completed");
    assert_eq!(call["callData"]["duration"], 900);
    assert_eq!(call["callData"]["endTime"], "2025-03-20T12:15:00.000Z");
    assert_eq!(call["callDetails"]["callOutcome"], "interested");
    assert_eq!(
        call["callDetails"]["nextActionDate"], "2025-03-27T12:00:00.000Z",
        "converted to UTC"
    );

    let backwards = app
        .put(&path, &admin, json!({"callData": {"status": "ringing"}}))
        .await;
    assert_eq!(backwards.status, StatusCode::CONFLICT, "{}", backwards.body);
    assert_eq!(
        app.get(&path, &admin).await.body["callData"]["status"],
        "completed"
    );
    let same = app
        .put(&path, &admin, json!({"callData": {"status": "completed"}}))
        .await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "repeating the current status is harmless"
    );

    let missing = app
        .put(
            "/admin/clients/client_u/calls/nope",
            &admin,
            json!({"callDetails": {"agentNotes": "x"}}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"], "Call not found");

    for (body, field) in [
        (json!({"callData": {"duration": -5}}), "duration"),
        (json!({"callData": {"status": "done"}}), "status"),
        (
            json!({"callDetails": {"callOutcome": "maybe"}}),
            "callOutcome",
        ),
        (
            json!({"callDetails": {"callSentiment": "ecstatic"}}),
            "callSentiment",
        ),
        (
            json!({"callDetails": {"nextActionDate": "next tuesday"}}),
            "nextActionDate",
        ),
        (
            json!({"callData": {"endTime": "2025-13-01T00:00:00Z"}}),
            "endTime",
        ),
    ] {
        let response = app.put(&path, &admin, body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.body
        );
        assert!(
            response.body["details"]
                .as_str()
                .is_some_and(|d| d.contains(field)),
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn adding_a_call_validates_its_data() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_client(&admin, "client_v", "v@example.com").await;
    let path = "/admin/clients/client_v/calls";
    for (body, field) in [
        (json!({"callData": {}}), "phone"),
        (json!({"callData": {"phone": "555-1234"}}), "phone"),
        (
            json!({"callData": {"phone": "+12125550001", "duration": -1}}),
            "duration",
        ),
        (
            json!({"callData": {"phone": "+12125550001", "status": "exploded"}}),
            "status",
        ),
        (
            json!({"callData": {"phone": "+12125550001", "startTime": "yesterday"}}),
            "startTime",
        ),
        (
            json!({"callData": {"phone": "+12125550001"}, "callDetails": {"callOutcome": "thrilled"}}),
            "callOutcome",
        ),
        (
            json!({"callData": {"phone": "+12125550001"}, "callDetails": {"nextActionDate": "soon"}}),
            "nextActionDate",
        ),
    ] {
        let response = app.post(path, Some(&admin), body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.body
        );
        let named = response.body["details"]
            .as_str()
            .is_some_and(|d| d.contains(field))
            || response.body["requiredFields"].to_string().contains(field);
        assert!(named, "{field} not named in {}", response.body);
    }
    let sid = json!({"callData": {"phone": "+12125550001", "callSid": "CA0123456789abcdef0123456789abcdef"}});
    assert_eq!(
        app.post(path, Some(&admin), sid.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(path, Some(&admin), sid).await.status,
        StatusCode::CONFLICT
    );
    let unknown = app
        .post(
            "/admin/clients/ghost/calls",
            Some(&admin),
            json!({"callData": {"phone": "+12125550001"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"], "Client not found");
}

#[tokio::test]
async fn call_list_query_parameters_are_validated() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_q").await;
    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "offset=-1",
        "offset=x",
        "status=bogus",
        "status=Completed",
    ] {
        let admin_response = app
            .get(&format!("/admin/clients/client_q/calls?{bad}"), &admin)
            .await;
        assert_eq!(
            admin_response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            admin_response.body
        );
        let param = bad.split('=').next().expect("name");
        assert!(
            admin_response.body["details"]
                .as_str()
                .is_some_and(|d| d.contains(param)),
            "{}",
            admin_response.body
        );
        let client_response = app
            .request(
                Method::GET,
                &format!("/secure/calls?{bad}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(client_response.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let ok = app
        .get("/secure/calls?limit=200&offset=0&status=completed", &token)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["total"], 0);
}
