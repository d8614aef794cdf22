use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_body};

fn assert_no_secret_material(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains("$argon2"), "a hash leaked: {text}");
    assert!(
        !text.contains("secretHash") && !text.contains("secret_hash"),
        "{text}"
    );
}

#[tokio::test]
async fn creating_a_client_generates_id_and_secret_and_shows_the_secret_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut body = client_body("ignored", "gen@example.com");
    body.as_object_mut().expect("object").remove("clientId");
    body.as_object_mut().expect("object").remove("status");
    let created = app.post("/admin/clients", Some(&admin), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["message"], "Client created successfully");
    let client = &created.body["client"];
    let id = client["clientId"]
        .as_str()
        .expect("generated id")
        .to_owned();
    let secret = client["clientSecret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.len() >= 32);
    assert_eq!(client["status"], "Active", "status defaults to Active");
    assert_eq!(client["clientMeta"]["fullName"], "Owner of ignored");
    assert!(
        client["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{client}"
    );
    assert_no_secret_material(&created.body);

    let read = app.get(&format!("/admin/clients/{id}"), &admin).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(
        read.body.get("clientSecret").is_none(),
        "no read returns a secret"
    );
    assert_no_secret_material(&read.body);
    assert_eq!(app.client_login(&id, &secret).await.status, StatusCode::OK);
}

#[tokio::test]
async fn creating_a_client_with_a_given_id_and_secret_uses_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut body = client_body("client_unique_id", "given@example.com");
    body["clientSecret"] = json!("client_secure_secret_key");
    let created = app.post("/admin/clients", Some(&admin), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["client"]["clientId"], "client_unique_id");
    assert_eq!(
        created.body["client"]["clientSecret"],
        "client_secure_secret_key"
    );
    assert_eq!(
        app.client_login("client_unique_id", "client_secure_secret_key")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn creating_a_client_without_required_fields_lists_the_missing_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let response = app
        .post(
            "/admin/clients",
            Some(&admin),
            json!({"clientMeta": {"fullName": "John"}, "agentId": "a1"}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
    assert_eq!(response.body["error"], "Missing required fields");
    let missing: Vec<&str> = response.body["requiredFields"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in ["clientMeta.email", "clientMeta.phone", "twilioPhoneNumber"] {
        assert!(missing.contains(&field), "{missing:?}");
    }
    assert!(
        !missing.contains(&"agentId") && !missing.contains(&"clientMeta.fullName"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn creating_a_client_with_invalid_values_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation); 7] = [
        ("clientMeta.email", |b| {
            b["clientMeta"]["email"] = json!("not-an-email")
        }),
        ("clientMeta.phone", |b| {
            b["clientMeta"]["phone"] = json!("212-555-1234")
        }),
        ("twilioPhoneNumber", |b| {
            b["twilioPhoneNumber"] = json!("+0800")
        }),
        ("status", |b| b["status"] = json!("active")),
        ("clientId", |b| b["clientId"] = json!("has spaces")),
        ("clientSecret", |b| b["clientSecret"] = json!("short")),
        ("clientMeta.notes", |b| {
            b["clientMeta"]["notes"] = json!("x".repeat(5000))
        }),
    ];
    for (field, mutate) in cases {
        let mut body = client_body("client_bad", "bad@example.com");
        mutate(&mut body);
        let response = app.post("/admin/clients", Some(&admin), body).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            response.body
        );
        let details = response.body["details"].as_str().unwrap_or_default();
        assert!(
            details.contains(field),
            "{field} not named in {}",
            response.body
        );
    }
    let list = app.get("/admin/clients", &admin).await;
    assert_eq!(list.body["total"], 0, "nothing was created");
}

#[tokio::test]
async fn duplicate_email_ignoring_case_or_duplicate_id_is_409_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_client(&admin, "client_one", "John@Example.com")
        .await;

    let same_email = app
        .post(
            "/admin/clients",
            Some(&admin),
            client_body("client_two", "john@example.COM"),
        )
        .await;
    assert_eq!(
        same_email.status,
        StatusCode::CONFLICT,
        "{}",
        same_email.body
    );
    assert_eq!(
        same_email.body["error"],
        "Client already exists with this ID or email"
    );
    assert_eq!(same_email.body["details"], "clientMeta.email");

    let same_id = app
        .post(
            "/admin/clients",
            Some(&admin),
            client_body("client_one", "other@example.com"),
        )
        .await;
    assert_eq!(same_id.status, StatusCode::CONFLICT);
    assert_eq!(same_id.body["details"], "clientId");

    app.create_client(&admin, "client_three", "three@example.com")
        .await;
    let update = app
        .put(
            "/admin/clients/client_three",
            &admin,
            json!({"clientMeta": {"email": "JOHN@example.com"}}),
        )
        .await;
    assert_eq!(update.status, StatusCode::CONFLICT, "{}", update.body);
    assert_eq!(update.body["details"], "clientMeta.email");
}

#[tokio::test]
async fn an_unknown_client_is_404_on_every_admin_route() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let expected = json!({"error": "Client not found", "statusCode": 404});
    for (method, path) in [
        (Method::GET, "/admin/clients/ghost"),
        (Method::PUT, "/admin/clients/ghost"),
        (Method::DELETE, "/admin/clients/ghost"),
        (Method::POST, "/admin/clients/ghost/reset-secret"),
        (Method::GET, "/admin/clients/ghost/calls"),
        (Method::GET, "/admin/clients/ghost/calls/some-call"),
        (Method::GET, "/admin/clients/has%20space"),
    ] {
        let body = (method == Method::PUT).then(|| json!({"agentId": "a2"}));
        let response = app.request(method.clone(), path, Some(&admin), body).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
        let mut body = response.body.clone();
        let request_id = body.as_object_mut().and_then(|m| m.remove("requestId"));
        assert!(
            request_id.is_some_and(|id| id.is_string()),
            "{method} {path}"
        );
        assert_eq!(body, expected, "{method} {path}");
    }
}

#[tokio::test]
async fn listing_clients_pages_filters_and_counts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..13 {
        app.create_client(
            &admin,
            &format!("client_{i:02}"),
            &format!("c{i}@example.com"),
        )
        .await;
    }
    for i in [1, 2, 3] {
        app.put(
            &format!("/admin/clients/client_{i:02}"),
            &admin,
            json!({"status": "Suspended"}),
        )
        .await;
    }
    let first = app.get("/admin/clients", &admin).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["total"], 13);
    assert_eq!(first.body["count"], 10, "default limit is 10");
    assert_eq!(first.body["clients"].as_array().map(Vec::len), Some(10));
    assert_no_secret_material(&first.body);

    let last_page = app.get("/admin/clients?limit=5&offset=10", &admin).await;
    assert_eq!(last_page.body["count"], 3);
    assert_eq!(last_page.body["total"], 13);
    let past_end = app.get("/admin/clients?offset=100", &admin).await;
    assert_eq!(past_end.body["count"], 0);
    assert_eq!(past_end.body["total"], 13);

    let suspended = app.get("/admin/clients?status=Suspended", &admin).await;
    assert_eq!(suspended.body["total"], 3);
    assert!(
        suspended.body["clients"]
            .as_array()
            .expect("list")
            .iter()
            .all(|c| c["status"] == "Suspended")
    );

    let mut seen = std::collections::HashSet::new();
    for offset in (0..13).step_by(4) {
        let page = app
            .get(&format!("/admin/clients?limit=4&offset={offset}"), &admin)
            .await;
        for client in page.body["clients"].as_array().expect("list") {
            assert!(
                seen.insert(client["clientId"].as_str().expect("id").to_owned()),
                "no repeats across pages"
            );
        }
    }
    assert_eq!(seen.len(), 13);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "offset=-1",
        "status=active",
        "status=Deleted",
    ] {
        let response = app.get(&format!("/admin/clients?{bad}"), &admin).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.body
        );
    }
}

#[tokio::test]
async fn search_matches_name_email_and_business_literally_and_case_insensitively() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let clients = [
        ("c_percent", "100% Juice", "pct@example.com", "Fresh"),
        ("c_under", "Under_Score", "under@example.com", "Plain"),
        ("c_regex", "Dot.Star", "regex@example.com", "a.*b Labs"),
        ("c_quote", "O'Brien \"Bob\"", "quote@example.com", "Quotes"),
        ("c_zoe", "Zoë Ærø", "zoe@example.com", "Café Crème"),
        ("c_plain", "Plain Person", "plain@sample.org", "Acme"),
    ];
    for (id, name, email, business) in clients {
        let mut body = client_body(id, email);
        body["clientMeta"]["fullName"] = json!(name);
        body["clientMeta"]["businessName"] = json!(business);
        let response = app.post("/admin/clients", Some(&admin), body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    }
    let cases: [(&str, &[&str]); 10] = [
        ("%", &["c_percent"]),
        ("_", &["c_under"]),
        (".*", &["c_regex"]),
        ("'", &["c_quote"]),
        ("\"bob\"", &["c_quote"]),
        ("ZOË", &["c_zoe"]),
        ("café", &["c_zoe"]),
        ("SAMPLE.ORG", &["c_plain"]),
        ("plain", &["c_plain", "c_under"]),
        ("nothing-matches", &[]),
    ];
    for (term, expected) in cases {
        let mut url = url::Url::parse(&format!("{}/admin/clients", app.base)).expect("url");
        url.query_pairs_mut()
            .append_pair("search", term)
            .append_pair("limit", "100");
        let response = app.get(&url[url::Position::BeforePath..], &admin).await;
        assert_eq!(response.status, StatusCode::OK, "{term}: {}", response.body);
        let mut ids: Vec<&str> = response.body["clients"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["clientId"].as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, expected, "search {term:?}");
        assert_eq!(response.body["total"], expected.len(), "search {term:?}");
    }
}

#[tokio::test]
async fn an_admin_update_is_partial_ignores_client_id_and_rejects_secrets() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_client(&admin, "client_upd", "upd@example.com")
        .await;
    let before = app.get("/admin/clients/client_upd", &admin).await.body;

    let response = app
        .put(
            "/admin/clients/client_upd",
            &admin,
            json!({"clientId": "hijack", "agentId": "agent_new", "clientMeta": {"city": "Boston", "notes": null}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["message"], "Client updated successfully");
    assert_eq!(response.body["client"]["clientId"], "client_upd");
    assert_eq!(response.body["client"]["status"], "Active");
    assert!(response.body["client"]["updatedAt"].is_string());

    let after = app.get("/admin/clients/client_upd", &admin).await.body;
    assert_eq!(after["agentId"], "agent_new");
    assert_eq!(after["clientMeta"]["city"], "Boston");
    assert!(
        after["clientMeta"].get("notes").is_none_or(Value::is_null),
        "null clears: {after}"
    );
    assert_eq!(after["clientMeta"]["email"], before["clientMeta"]["email"]);
    assert_eq!(
        after["clientMeta"]["fullName"],
        before["clientMeta"]["fullName"]
    );
    assert_eq!(after["twilioPhoneNumber"], before["twilioPhoneNumber"]);
    assert_eq!(after["createdAt"], before["createdAt"]);
    assert_eq!(
        app.get("/admin/clients/hijack", &admin).await.status,
        StatusCode::NOT_FOUND
    );

    let secret = app
        .put(
            "/admin/clients/client_upd",
            &admin,
            json!({"clientSecret": "new-secret-0123456789"}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::BAD_REQUEST);
    assert!(
        secret.body["details"]
            .as_str()
            .is_some_and(|d| d.contains("reset-secret")),
        "{}",
        secret.body
    );

    for (body, field) in [
        (json!({"status": "inactive"}), "status"),
        (json!({"twilioPhoneNumber": "12345"}), "twilioPhoneNumber"),
        (json!({"clientMeta": {"email": "nope"}}), "clientMeta.email"),
        (
            json!({"clientMeta": {"fullName": ""}}),
            "clientMeta.fullName",
        ),
        (json!({"clientMeta": {"phone": null}}), "clientMeta.phone"),
    ] {
        let response = app
            .put("/admin/clients/client_upd", &admin, body.clone())
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.body["error"], "Invalid update data", "{body}");
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
async fn deleting_a_client_removes_it_and_its_calls() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_client(&admin, "client_gone", "gone@example.com")
        .await;
    let call = app
        .post(
            "/admin/clients/client_gone/calls",
            Some(&admin),
            json!({"callData": {"phone": "+12125550001"}}),
        )
        .await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.body);
    let deleted = app.delete("/admin/clients/client_gone", &admin).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["message"], "Client deleted successfully");
    assert_eq!(
        app.get("/admin/clients/client_gone", &admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/admin/clients/client_gone", &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let dashboard = app.get("/admin/dashboard", &admin).await;
    assert_eq!(
        dashboard.body["calls"]["total"], 0,
        "its calls went with it"
    );
}

#[tokio::test]
async fn a_client_reads_and_updates_only_its_own_profile_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token_a) = app.client_with_token(&admin, "client_a").await;
    let (_, token_b) = app.client_with_token(&admin, "client_b").await;

    let me = app.get("/secure/client", &token_a).await;
    assert_eq!(me.body["clientId"], "client_a");
    assert_no_secret_material(&me.body);

    let update = app
        .put("/secure/client", &token_a, json!({"clientMeta": {"fullName": "A Updated", "city": "Boston", "phone": "+14155550100"}}))
        .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.body);
    assert_eq!(update.body["client"]["clientId"], "client_a");
    let me = app.get("/secure/client", &token_a).await.body;
    assert_eq!(me["clientMeta"]["fullName"], "A Updated");
    assert_eq!(me["clientMeta"]["phone"], "+14155550100");
    let other = app.get("/secure/client", &token_b).await.body;
    assert_eq!(
        other["clientMeta"]["fullName"], "Owner of client_b",
        "B untouched"
    );

    let forbidden = app
        .put(
            "/secure/client",
            &token_a,
            json!({"status": "Active", "agentId": "x", "twilioPhoneNumber": "+18005550000", "clientMeta": {"email": "a2@example.com", "city": "Paris"}}),
        )
        .await;
    assert_eq!(
        forbidden.status,
        StatusCode::BAD_REQUEST,
        "{}",
        forbidden.body
    );
    let details = forbidden.body["details"].as_str().expect("details");
    for field in ["status", "agentId", "twilioPhoneNumber", "clientMeta.email"] {
        assert!(details.contains(field), "{field} missing in {details}");
    }
    let me = app.get("/secure/client", &token_a).await.body;
    assert_eq!(
        me["clientMeta"]["city"], "Boston",
        "a rejected update changes nothing"
    );
    assert_eq!(me["clientMeta"]["email"], "client_a@example.com");
}

#[tokio::test]
async fn malformed_bodies_get_json_errors_not_500s() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.http
            .post(format!("{}/admin/clients", app.base))
            .bearer_auth(&admin)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let bad_json = send("application/json", b"{\"clientMeta\": ".to_vec())
        .await
        .expect("sent");
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert!(bad_json.json::<Value>().await.expect("json")["error"].is_string());

    let wrong_type = send("text/plain", b"{}".to_vec()).await.expect("sent");
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(wrong_type.json::<Value>().await.expect("json")["error"].is_string());

    let mut huge = client_body("client_huge", "huge@example.com");
    huge["clientMeta"]["notes"] = json!("x".repeat(70 * 1024));
    let too_big = send("application/json", huge.to_string().into_bytes())
        .await
        .expect("sent");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.json::<Value>().await.expect("json")["error"].is_string());

    let unknown = app.get("/no/such/route", &admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body["error"].is_string());
}

#[tokio::test]
async fn health_and_readiness_answer_json() {
    let app = TestApp::spawn().await;
    let health = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
}
