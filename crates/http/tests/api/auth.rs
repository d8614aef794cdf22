//! `/auth/*`, the principal extractors and login rate limiting.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use outcall_domain::ClientStatus;
use outcall_domain::ports::Principal;
use outcall_domain::test_support::client_fixture;
use outcall_domain::{BoundedText, SecretHash};
use outcall_http::{HttpSettings, LoginLimits};
use serde_json::{Value, json};

use crate::common::{GHOST_ADMIN_TOKEN, Mocks, admin, client, client_claims, issued, one, send};

fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

/// Mocks where no credential store, hasher or token service may be touched.
fn untouched() -> Mocks {
    let mut mocks = Mocks::new();
    mocks.clients.expect_find_with_secret().never();
    mocks.admins.expect_find().never();
    mocks.hasher.expect_verify().never();
    mocks.hasher.expect_verify_against_decoy().never();
    mocks.tokens.expect_issue().never();
    mocks
}

#[actix_web::test]
async fn an_admin_logs_in_and_gets_a_token_with_its_expiry() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .hasher
        .expect_verify()
        .withf(|plain, _| plain == "correct horse battery")
        .returning(|_, _| Ok(true));
    mocks.tokens.expect_issue().returning(|p, _| Ok(issued(p)));
    let reply = one(
        mocks,
        post(
            "/auth/admin/login",
            json!({"username": "admin", "password": "correct horse battery"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "success": true,
            "token": "signed-admin",
            "admin": {"username": "admin"},
            "expiresAt": "2025-03-20T13:00:00.000Z"
        })
    );
}

#[actix_web::test]
async fn a_wrong_admin_password_is_invalid_credentials() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.hasher.expect_verify().returning(|_, _| Ok(false));
    mocks.tokens.expect_issue().never();
    let reply = one(
        mocks,
        post(
            "/auth/admin/login",
            json!({"username": "admin", "password": "wrong"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid credentials", "statusCode": 401})
    );
}

#[actix_web::test]
async fn admin_login_without_a_field_lists_both_and_looks_nothing_up() {
    let reply = one(
        untouched(),
        post("/auth/admin/login", json!({"username": "admin"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": "Missing required fields", "requiredFields": ["username", "password"], "statusCode": 400})
    );
}

#[actix_web::test]
async fn client_login_refuses_non_string_values_by_name_without_a_lookup() {
    for value in [
        json!(12345),
        Value::Null,
        json!({"$ne": ""}),
        json!(["c1"]),
        json!(true),
    ] {
        let reply = one(
            untouched(),
            post(
                "/auth/login",
                json!({"clientId": value, "clientSecret": "secret-secret-123"}),
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(
            reply.body,
            json!({"error": "Invalid request", "details": "clientId must be a string", "statusCode": 400}),
            "{value}"
        );
    }
    let reply = one(
        untouched(),
        post("/auth/login", json!({"clientId": "c1", "clientSecret": 42})),
    )
    .await;
    assert_eq!(reply.body["details"], "clientSecret must be a string");
}

#[actix_web::test]
async fn client_login_without_a_field_lists_the_required_fields() {
    for body in [
        json!({}),
        json!({"clientId": "c1"}),
        json!({"clientSecret": "x", "clientId": ""}),
    ] {
        let reply = one(untouched(), post("/auth/login", body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body,
            json!({"error": "Missing required fields", "requiredFields": ["clientId", "clientSecret"], "statusCode": 400}),
        );
    }
}

#[actix_web::test]
async fn client_login_answers_an_unknown_id_and_an_inactive_client_identically() {
    let mut unknown = Mocks::new();
    unknown
        .clients
        .expect_find_with_secret()
        .returning(|_| Ok(None));
    unknown
        .hasher
        .expect_verify_against_decoy()
        .times(1)
        .return_const(());
    unknown.tokens.expect_issue().never();
    let unknown = one(
        unknown,
        post(
            "/auth/login",
            json!({"clientId": "ghost", "clientSecret": "right-secret-0123"}),
        ),
    )
    .await;

    let mut inactive = Mocks::new();
    inactive.clients.expect_find_with_secret().returning(|id| {
        let mut client = client_fixture(id.as_str());
        client.status = ClientStatus::Suspended;
        Ok(Some((client, SecretHash::from_phc("$argon2id$h".into()))))
    });
    inactive.hasher.expect_verify().returning(|_, _| Ok(true));
    inactive.tokens.expect_issue().never();
    let inactive = one(
        inactive,
        post(
            "/auth/login",
            json!({"clientId": "c1", "clientSecret": "right-secret-0123"}),
        ),
    )
    .await;

    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.body,
        json!({"error": "Invalid credentials or inactive client", "statusCode": 401})
    );
    assert_eq!(
        (unknown.status, &unknown.body),
        (inactive.status, &inactive.body)
    );
}

#[actix_web::test]
async fn a_client_logs_in_and_sees_its_summary() {
    let mut mocks = Mocks::new();
    mocks.clients.expect_find_with_secret().returning(|id| {
        let mut client = client_fixture(id.as_str());
        client.meta.business_name = BoundedText::parse("Acme Corp", 200).ok();
        Ok(Some((client, SecretHash::from_phc("$argon2id$h".into()))))
    });
    mocks.hasher.expect_verify().returning(|_, _| Ok(true));
    mocks.tokens.expect_issue().returning(|p, _| Ok(issued(p)));
    let reply = one(
        mocks,
        post(
            "/auth/login",
            json!({"clientId": "c1", "clientSecret": "right-secret-0123"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "success": true,
            "token": "signed-c1",
            "expiresAt": "2025-03-20T13:00:00.000Z",
            "client": {
                "clientId": "c1",
                "status": "Active",
                "twilioPhoneNumber": "+18001234567",
                "agentId": "agent_fixture",
                "clientMeta": {"fullName": "Owner of c1", "businessName": "Acme Corp", "email": "c1@example.com"}
            }
        })
    );
}

fn failing_logins() -> Mocks {
    let mut mocks = Mocks::new();
    mocks
        .clients
        .expect_find_with_secret()
        .returning(|_| Ok(None));
    mocks.hasher.expect_verify_against_decoy().return_const(());
    mocks
}

fn limits(per_account: u32, per_address: u32) -> HttpSettings {
    HttpSettings {
        login_limits: LoginLimits {
            per_account_per_minute: per_account,
            per_address_per_minute: per_address,
        },
        ..HttpSettings::default()
    }
}

#[actix_web::test]
async fn logins_for_one_account_are_limited_with_a_retry_after() {
    let app = test::init_service(outcall_http::app(failing_logins().state(), limits(3, 100))).await;
    let attempt = |id: &str| {
        post(
            "/auth/login",
            json!({"clientId": id, "clientSecret": "guess-guess-guess"}),
        )
        .peer_addr("192.0.2.1:5000".parse().expect("addr"))
        .to_request()
    };
    for _ in 0..3 {
        assert_eq!(
            send(&app, attempt("c1")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = send(&app, attempt("c1")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"], "Too many login attempts");
    let retry_after = limited.body["retryAfter"].as_u64().expect("seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.header(header::RETRY_AFTER),
        Some(retry_after.to_string().as_str())
    );
    // Another account from the same address is not affected.
    assert_eq!(
        send(&app, attempt("c2")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn logins_from_one_address_are_limited_across_accounts() {
    let app = test::init_service(outcall_http::app(failing_logins().state(), limits(100, 2))).await;
    let attempt = |id: &str, peer: &str| {
        post(
            "/auth/login",
            json!({"clientId": id, "clientSecret": "guess-guess-guess"}),
        )
        .peer_addr(peer.parse().expect("addr"))
        .to_request()
    };
    assert_eq!(
        send(&app, attempt("a", "192.0.2.1:1")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, attempt("b", "192.0.2.1:2")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let limited = send(&app, attempt("c", "192.0.2.1:3")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header(header::RETRY_AFTER).is_some());
    assert_eq!(
        send(&app, attempt("c", "192.0.2.2:1")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn the_limiter_is_shared_by_every_app_an_api_builds() {
    let api = outcall_http::Api::new(failing_logins().state(), limits(1, 100));
    let first = test::init_service(api.app()).await;
    let second = test::init_service(api.app()).await;
    let attempt = || {
        post(
            "/auth/login",
            json!({"clientId": "c1", "clientSecret": "guess-guess-guess"}),
        )
        .to_request()
    };
    assert_eq!(
        send(&first, attempt()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&second, attempt()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn protected_routes_without_a_token_are_401() {
    for req in [
        TestRequest::get().uri("/admin/clients"),
        TestRequest::get().uri("/secure/client"),
        TestRequest::post().uri("/auth/refresh"),
        TestRequest::get()
            .uri("/admin/clients/c1")
            .insert_header((header::AUTHORIZATION, "Basic YTpi")),
    ] {
        let reply = one(Mocks::signed_in(vec![]), req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.body,
            json!({"error": "Unauthorized", "message": "Missing bearer token", "statusCode": 401})
        );
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
    }
}

#[actix_web::test]
async fn bad_and_expired_tokens_are_401_with_the_reason() {
    let bearer = |token: &str| {
        TestRequest::get()
            .uri("/secure/client")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
    };
    let reply = one(Mocks::signed_in(vec![]), bearer("forged")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["message"], "Invalid token");
    let reply = one(Mocks::signed_in(vec![]), bearer("expired-token")).await;
    assert_eq!(reply.body["message"], "Token expired");
}

#[actix_web::test]
async fn a_suspended_clients_token_is_401() {
    let mut suspended = client_fixture("c1");
    suspended.status = ClientStatus::Suspended;
    let reply = one(
        Mocks::signed_in(vec![suspended]),
        client(TestRequest::get().uri("/secure/client")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["message"], "Client is not active");
}

#[actix_web::test]
async fn the_wrong_kind_of_token_is_403() {
    let cases = [
        (
            admin(TestRequest::get().uri("/secure/client")),
            "This endpoint requires a client token",
        ),
        (
            admin(TestRequest::get().uri("/secure/calls")),
            "This endpoint requires a client token",
        ),
        (
            admin(TestRequest::post().uri("/auth/refresh")),
            "This endpoint requires a client token",
        ),
        (
            admin(TestRequest::post().uri("/auth/logout")),
            "This endpoint requires a client token",
        ),
        (
            admin(TestRequest::post().uri("/auth/change-secret")),
            "This endpoint requires a client token",
        ),
        (
            client(TestRequest::get().uri("/admin/clients")),
            "This endpoint requires an admin token",
        ),
        (
            client(TestRequest::get().uri("/admin/dashboard")),
            "This endpoint requires an admin token",
        ),
        (
            client(TestRequest::delete().uri("/admin/clients/c1")),
            "This endpoint requires an admin token",
        ),
    ];
    for (req, message) in cases {
        let reply = one(Mocks::signed_in(vec![]), req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(
            reply.body,
            json!({"error": "Forbidden", "message": message, "statusCode": 403})
        );
    }
}

#[actix_web::test]
async fn an_unauthenticated_request_is_refused_before_its_body_or_path_is_judged() {
    // The admin lookup is pending when the body and path extractors would already have
    // failed; only the gate makes authentication answer first.
    let ghost = |req: TestRequest| {
        req.insert_header((header::AUTHORIZATION, format!("Bearer {GHOST_ADMIN_TOKEN}")))
    };
    let slow = || {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.slow_admin_lookups = true;
        mocks.clients.expect_insert().never();
        mocks
    };
    let req = ghost(TestRequest::post().uri("/admin/clients"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload("{not json");
    let reply = one(slow(), req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body["message"], "Token subject no longer exists");

    let reply = one(
        slow(),
        ghost(TestRequest::get().uri("/admin/clients/has%20space")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

    let reply = one(
        slow(),
        ghost(TestRequest::get().uri("/admin/clients?limit=abc")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

#[actix_web::test]
async fn verify_reports_whether_a_client_token_works() {
    let app = test::init_service(outcall_http::app(
        Mocks::signed_in(vec![]).state(),
        HttpSettings::default(),
    ))
    .await;
    let verify = |token: Value| post("/auth/verify", json!({"token": token})).to_request();
    let reply = send(&app, verify(json!("client-token"))).await;
    assert_eq!(
        (reply.status, reply.body),
        (
            StatusCode::OK,
            json!({"valid": true, "clientId": "c1", "expiresAt": "2025-03-20T13:00:00.000Z"})
        )
    );
    let reply = send(&app, verify(json!("forged"))).await;
    assert_eq!(
        (reply.status, reply.body),
        (
            StatusCode::OK,
            json!({"valid": false, "error": "Invalid token"})
        )
    );
    let reply = send(&app, verify(json!("admin-token"))).await;
    assert_eq!(
        reply.body,
        json!({"valid": false, "error": "Not a client token"})
    );
    let reply = send(&app, verify(json!(7))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(&app, post("/auth/verify", json!({})).to_request()).await;
    assert_eq!(reply.body["requiredFields"], json!(["token"]));
}

#[actix_web::test]
async fn refresh_issues_a_new_token_for_the_client() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .tokens
        .expect_issue()
        .withf(
            |p, _| matches!(p, Principal::Client { client_id, .. } if client_id.as_str() == "c1"),
        )
        .returning(|p, _| Ok(issued(p)));
    let reply = one(mocks, client(TestRequest::post().uri("/auth/refresh"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"success": true, "token": "signed-c1", "expiresAt": "2025-03-20T13:00:00.000Z"})
    );
}

#[actix_web::test]
async fn logout_revokes_exactly_the_presented_token() {
    let mut mocks = Mocks::signed_in(vec![]);
    let expected = client_claims("c1");
    mocks
        .clients
        .expect_revoke_token()
        .withf(move |id, jti, expires| {
            id.as_str() == "c1" && jti == expected.token_id && *expires == expected.expires_at
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let reply = one(mocks, client(TestRequest::post().uri("/auth/logout"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"success": true, "message": "Logged out successfully"})
    );
}

fn with_stored_secret(mocks: &mut Mocks, matches: bool) {
    mocks.clients.expect_find_with_secret().returning(|id| {
        Ok(Some((
            client_fixture(id.as_str()),
            SecretHash::from_phc("$argon2id$h".into()),
        )))
    });
    mocks
        .hasher
        .expect_verify()
        .returning(move |_, _| Ok(matches));
}

#[actix_web::test]
async fn change_secret_needs_the_current_secret_and_a_valid_new_one() {
    let change =
        |body: Value| client(TestRequest::post().uri("/auth/change-secret")).set_json(body);

    let mut mocks = Mocks::signed_in(vec![]);
    with_stored_secret(&mut mocks, false);
    mocks.clients.expect_replace_secret().never();
    let reply = one(
        mocks,
        change(json!({"currentSecret": "wrong", "newSecret": "a-brand-new-secret-123"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid credentials", "statusCode": 401})
    );

    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_find_with_secret().never();
    let reply = one(
        mocks,
        change(json!({"currentSecret": "old", "newSecret": "short"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["details"]
            .as_str()
            .is_some_and(|d| d.starts_with("newSecret: ")),
        "{}",
        reply.body
    );

    let mut mocks = Mocks::signed_in(vec![]);
    with_stored_secret(&mut mocks, true);
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Ok(SecretHash::from_phc("$argon2id$new".into())));
    mocks
        .clients
        .expect_replace_secret()
        .times(1)
        .returning(|id, _, _| Ok(Some(client_fixture(id.as_str()))));
    mocks.tokens.expect_issue().returning(|p, _| Ok(issued(p)));
    let reply = one(
        mocks,
        change(
            json!({"currentSecret": "old-secret-0123456", "newSecret": "a-brand-new-secret-123"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "success": true,
            "message": "Client secret changed successfully",
            "token": "signed-c1",
            "expiresAt": "2025-03-20T13:00:00.000Z"
        })
    );
}

#[actix_web::test]
async fn change_secret_attempts_count_against_the_clients_login_budget() {
    let mut mocks = Mocks::signed_in(vec![]);
    with_stored_secret(&mut mocks, false);
    let app = test::init_service(outcall_http::app(mocks.state(), limits(2, 100))).await;
    let attempt = || {
        client(TestRequest::post().uri("/auth/change-secret"))
            .set_json(json!({"currentSecret": "guess", "newSecret": "a-brand-new-secret-123"}))
            .to_request()
    };
    assert_eq!(send(&app, attempt()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, attempt()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, attempt()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn only_admin_and_client_logins_and_secret_changes_are_rate_limited() {
    // A tight address budget does not affect ordinary authenticated reads.
    let app = test::init_service(outcall_http::app(
        Mocks::signed_in(vec![]).state(),
        limits(1, 1),
    ))
    .await;
    for _ in 0..3 {
        let reply = send(
            &app,
            client(TestRequest::get().uri("/secure/client")).to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}
