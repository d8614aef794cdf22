use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, JWT_SECRET, TestApp, captured_logs};

#[tokio::test]
async fn secrets_tokens_and_hashes_never_appear_in_the_logs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (secret, token) = app.client_with_token(&admin, "client_logged").await;
    let failed = app
        .client_login("client_logged", "a-wrong-secret-for-the-log-test")
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let reset = app
        .post(
            "/admin/clients/client_logged/reset-secret",
            Some(&admin),
            json!({}),
        )
        .await;
    let reset_secret = reset.body["client"]["clientSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    app.get("/secure/client", &token).await;

    let logs = captured_logs();
    assert!(
        logs.contains("client_logged") || logs.contains("/auth/login"),
        "the capture works"
    );
    for (what, needle) in [
        ("client secret", secret.as_str()),
        ("reset secret", reset_secret.as_str()),
        ("wrong secret", "a-wrong-secret-for-the-log-test"),
        ("client token", token.as_str()),
        ("admin token", admin.as_str()),
        ("admin password", ADMIN_PASSWORD),
        ("jwt secret", JWT_SECRET),
        ("argon2 hash", "$argon2id$"),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}
