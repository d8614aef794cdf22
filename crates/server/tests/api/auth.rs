use jsonwebtoken::{EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, ADMIN_USERNAME, JWT_SECRET, TestApp};

const INVALID_CLIENT_LOGIN: &str = "Invalid credentials or inactive client";

#[tokio::test]
async fn admin_login_returns_a_token_for_the_configured_admin() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/auth/admin/login",
            None,
            json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["success"], true);
    assert_eq!(response.body["admin"]["username"], ADMIN_USERNAME);
    assert!(
        response.body["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
}

#[tokio::test]
async fn admin_login_with_a_wrong_password_or_unknown_name_is_401() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"username": ADMIN_USERNAME, "password": "not the password"}),
        json!({"username": "nobody", "password": ADMIN_PASSWORD}),
    ] {
        let response = app.post("/auth/admin/login", None, body).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(response.body["error"], "Invalid credentials");
        assert!(response.body.get("token").is_none());
    }
}

#[tokio::test]
async fn admin_login_without_fields_lists_the_required_fields() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/auth/admin/login",
            None,
            json!({"username": ADMIN_USERNAME}),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.body["requiredFields"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("password")))
    );
}

#[tokio::test]
async fn client_login_returns_a_token_and_the_client_summary() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let secret = app
        .create_client(&admin, "client_login_ok", "login.ok@example.com")
        .await;
    let response = app.client_login("client_login_ok", &secret).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = &response.body;
    assert_eq!(body["success"], true);
    assert_eq!(body["client"]["clientId"], "client_login_ok");
    assert_eq!(body["client"]["status"], "Active");
    assert_eq!(body["client"]["agentId"], "agent_id_here");
    assert_eq!(body["client"]["twilioPhoneNumber"], "+18001234567");
    assert_eq!(
        body["client"]["clientMeta"]["email"],
        "login.ok@example.com"
    );
    assert_eq!(body["client"]["clientMeta"]["businessName"], "Acme Corp");
    let token = body["token"].as_str().expect("token");
    let me = app.get("/secure/client", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["clientId"], "client_login_ok");
}

#[tokio::test]
async fn login_fails_identically_for_unknown_id_wrong_secret_and_inactive_or_suspended_clients() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let secret = app.create_client(&admin, "client_a", "a@example.com").await;
    let inactive_secret = app
        .create_client(&admin, "client_inactive", "inactive@example.com")
        .await;
    let suspended_secret = app
        .create_client(&admin, "client_suspended", "suspended@example.com")
        .await;
    assert_eq!(
        app.put(
            "/admin/clients/client_inactive",
            &admin,
            json!({"status": "Inactive"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.put(
            "/admin/clients/client_suspended",
            &admin,
            json!({"status": "Suspended"})
        )
        .await
        .status,
        200
    );

    let attempts = [
        ("client_unknown", secret.as_str()),
        ("client_a", "wrong-secret-0123456789"),
        ("client_inactive", inactive_secret.as_str()),
        ("client_suspended", suspended_secret.as_str()),
    ];
    for (id, secret) in attempts {
        let response = app.client_login(id, secret).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{id}");
        let mut body = response.body.clone();
        let request_id = body.as_object_mut().and_then(|m| m.remove("requestId"));
        assert!(request_id.is_some_and(|id| id.is_string()), "{id}");
        assert_eq!(
            body,
            json!({"error": INVALID_CLIENT_LOGIN, "statusCode": 401}),
            "{id}"
        );
    }
}

#[tokio::test]
async fn login_with_missing_fields_is_400_listing_both_fields() {
    let app = TestApp::spawn().await;
    for body in [
        json!({}),
        json!({"clientId": "x"}),
        json!({"clientSecret": "y"}),
    ] {
        let response = app.post("/auth/login", None, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert_eq!(response.body["error"], "Missing required fields");
        assert_eq!(
            response.body["requiredFields"],
            json!(["clientId", "clientSecret"])
        );
    }
}

#[tokio::test]
async fn login_with_non_string_values_is_400_never_a_lookup() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"clientId": {"$ne": null}, "clientSecret": {"$ne": null}}),
        json!({"clientId": 42, "clientSecret": "whatever-secret-123"}),
        json!({"clientId": "client_a", "clientSecret": ["a"]}),
        json!({"clientId": "client_a", "clientSecret": true}),
    ] {
        let response = app.post("/auth/login", None, body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response.body["error"].is_string());
    }
}

#[tokio::test]
async fn a_token_minted_before_reset_secret_fails_after_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (old_secret, token) = app.client_with_token(&admin, "client_reset").await;
    assert_eq!(
        app.get("/secure/client", &token).await.status,
        StatusCode::OK
    );

    let reset = app
        .post(
            "/admin/clients/client_reset/reset-secret",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert_eq!(reset.body["message"], "Client secret reset successfully");
    assert_eq!(reset.body["client"]["clientId"], "client_reset");
    let new_secret = reset.body["client"]["clientSecret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new_secret, old_secret);

    let refused = app.get("/secure/client", &token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "Unauthorized");
    assert_eq!(
        app.client_login("client_reset", &old_secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client_login("client_reset", &new_secret).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_suspended_clients_old_token_fails_and_stays_dead_after_reactivation() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (secret, token) = app.client_with_token(&admin, "client_sus").await;
    app.put(
        "/admin/clients/client_sus",
        &admin,
        json!({"status": "Suspended"}),
    )
    .await;
    assert_eq!(
        app.get("/secure/client", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.put(
        "/admin/clients/client_sus",
        &admin,
        json!({"status": "Active"}),
    )
    .await;
    assert_eq!(
        app.get("/secure/client", &token).await.status,
        StatusCode::UNAUTHORIZED,
        "a token from before the suspension is not revived"
    );
    let fresh = app.client_login("client_sus", &secret).await;
    assert_eq!(
        fresh.status,
        StatusCode::OK,
        "the reactivated client can log in again"
    );
}

#[tokio::test]
async fn a_deleted_clients_token_never_works_for_a_new_client_with_the_same_id() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, old_token) = app.client_with_token(&admin, "client_reused").await;
    assert_eq!(
        app.delete("/admin/clients/client_reused", &admin)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/secure/client", &old_token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Another tenant gets the same id.
    app.create_client(&admin, "client_reused", "new.tenant@example.com")
        .await;
    let response = app.get("/secure/client", &old_token).await;
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        response.body
    );
    assert_eq!(
        app.get("/secure/calls", &old_token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_revokes_only_the_presented_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (secret, first) = app.client_with_token(&admin, "client_out").await;
    let second = app.client_login("client_out", &secret).await.body["token"]
        .as_str()
        .expect("t")
        .to_owned();

    let out = app.post("/auth/logout", Some(&first), json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(
        app.get("/secure/client", &first).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/secure/client", &second).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_returns_a_new_working_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_refresh").await;
    let refreshed = app.post("/auth/refresh", Some(&token), json!({})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let new_token = refreshed.body["token"].as_str().expect("token");
    assert_ne!(new_token, token);
    assert_eq!(
        app.get("/secure/client", new_token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn change_secret_needs_the_current_secret_and_revokes_old_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (secret, token) = app.client_with_token(&admin, "client_change").await;

    let wrong = app
        .post("/auth/change-secret", Some(&token), json!({"currentSecret": "nope-nope-nope-nope", "newSecret": "brand-new-secret-0123456789"}))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let weak = app
        .post(
            "/auth/change-secret",
            Some(&token),
            json!({"currentSecret": secret, "newSecret": "short"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);

    let changed = app
        .post(
            "/auth/change-secret",
            Some(&token),
            json!({"currentSecret": secret, "newSecret": "brand-new-secret-0123456789"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let fresh = changed.body["token"].as_str().expect("token");
    assert_eq!(
        app.get("/secure/client", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/secure/client", fresh).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.client_login("client_change", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client_login("client_change", "brand-new-secret-0123456789")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn verify_reports_valid_and_invalid_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token) = app.client_with_token(&admin, "client_verify").await;
    let valid = app
        .post("/auth/verify", None, json!({"token": token}))
        .await;
    assert_eq!(valid.status, StatusCode::OK);
    assert_eq!(valid.body["valid"], true);
    assert_eq!(valid.body["clientId"], "client_verify");
    let invalid = app
        .post("/auth/verify", None, json!({"token": "not.a.token"}))
        .await;
    assert_eq!(invalid.body["valid"], false);
    assert!(invalid.body["error"].is_string());
}

fn claims(typ: &str, sub: &str, exp_offset_secs: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "typ": typ, "ver": 0, "jti": "forged-jti", "iat": now, "exp": now + exp_offset_secs, "iss": "outcall"})
}

#[tokio::test]
async fn forged_expired_none_and_wrong_type_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, client_token) = app.client_with_token(&admin, "client_forge").await;

    let other_key = jsonwebtoken::encode(
        &Header::default(),
        &claims("client", "client_forge", 3600),
        &EncodingKey::from_secret(b"some-other-key-0123456789abcdef0123456789"),
    )
    .expect("encode");
    let expired = jsonwebtoken::encode(
        &Header::default(),
        &claims("client", "client_forge", -3600),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims("admin", ADMIN_USERNAME, 3600))
    );
    let tampered = {
        let parts: Vec<&str> = client_token.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(claims("admin", ADMIN_USERNAME, 3600)),
            parts[2]
        )
    };
    for (name, token) in [
        ("other key", other_key.as_str()),
        ("expired", expired.as_str()),
        ("alg none", alg_none.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "garbage"),
    ] {
        for path in ["/secure/client", "/admin/clients"] {
            let response = app.get(path, token).await;
            assert_eq!(
                response.status,
                StatusCode::UNAUTHORIZED,
                "{name} on {path}"
            );
            assert_eq!(response.body["error"], "Unauthorized", "{name}");
            assert!(response.body["message"].is_string(), "{name}");
        }
    }

    // Right signature, wrong kind of principal for the route: 403.
    let admin_on_secure = app.get("/secure/client", &admin).await;
    assert_eq!(admin_on_secure.status, StatusCode::FORBIDDEN);
    let client_on_admin = app.get("/admin/clients", &client_token).await;
    assert_eq!(client_on_admin.status, StatusCode::FORBIDDEN);
    assert_eq!(client_on_admin.body["error"], "Forbidden");
}

#[tokio::test]
async fn requests_without_a_proper_bearer_header_are_401() {
    let app = TestApp::spawn().await;
    let no_header = app.request(Method::GET, "/admin/clients", None, None).await;
    assert_eq!(no_header.status, StatusCode::UNAUTHORIZED);
    for value in ["Token abc", "Bearer", "Bearer ", "Basic YWRtaW46cGFzcw=="] {
        let response = app
            .http
            .get(format!("{}/secure/client", app.base))
            .header("Authorization", value)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_client_id_with_retry_after() {
    let app = TestApp::spawn_with(&[("OUTCALL__HTTP__LOGIN_PER_ACCOUNT_PER_MINUTE", "3")]).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.client_login("client_target", "wrong-secret-0123456789")
                .await,
        );
    }
    assert!(
        statuses[..3]
            .iter()
            .all(|r| r.status == StatusCode::UNAUTHORIZED)
    );
    let limited = statuses.last().expect("five attempts");
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    // Another account from the same address is not affected by this account's limit.
    assert_eq!(
        app.client_login("client_other", "wrong-secret-0123456789")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
