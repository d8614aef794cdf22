//! Extractor and framework errors are JSON with the right status, and 5xx hide their cause.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use outcall_domain::ports::RepositoryError;
use outcall_http::HttpSettings;
use serde_json::json;

use crate::common::{Mocks, admin, one, one_with, send};

fn login_with_body(body: &'static str) -> TestRequest {
    TestRequest::post()
        .uri("/auth/login")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body)
}

#[actix_web::test]
async fn malformed_json_is_a_json_400() {
    let reply = one(Mocks::new(), login_with_body("{\"clientId\": ")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"], "Invalid JSON");
    assert_eq!(reply.body["statusCode"], 400);
    assert!(
        reply.body["details"]
            .as_str()
            .is_some_and(|d| d.contains("EOF"))
    );
}

#[actix_web::test]
async fn a_body_that_is_not_an_object_is_a_json_400() {
    let reply = one(Mocks::new(), login_with_body("[\"c1\", \"secret\"]")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": "Invalid JSON", "details": "request body must be a JSON object", "statusCode": 400})
    );
}

#[actix_web::test]
async fn a_missing_or_wrong_content_type_is_a_json_415() {
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = TestRequest::post()
            .uri("/auth/login")
            .set_payload(r#"{"clientId": "c1", "clientSecret": "s"}"#);
        if let Some(value) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, value));
        }
        let reply = one(Mocks::new(), req).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(reply.body["error"], "Unsupported media type");
        assert_eq!(reply.body["statusCode"], 415);
    }
}

#[actix_web::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let big = format!(
        r#"{{"clientId": "c1", "clientSecret": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let req = TestRequest::post()
        .uri("/auth/login")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(big);
    let reply = one(Mocks::new(), req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body,
        json!({"error": "Payload too large", "details": "request body must be at most 65536 bytes", "statusCode": 413})
    );
}

#[actix_web::test]
async fn call_bodies_may_be_larger_than_other_bodies_but_not_unbounded() {
    let settings = HttpSettings {
        json_limit_bytes: 1024,
        call_json_limit_bytes: 4096,
        ..HttpSettings::default()
    };
    let body = |size: usize| json!({"callData": {"phone": "+12125551234"}, "callDetails": {"callTranscript": "x".repeat(size)}});
    // Over the general limit, under the call limit: reaches the service.
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_insert().times(1).returning(|_| Ok(()));
    mocks
        .ids
        .expect_call_id()
        .returning(|| outcall_domain::CallId::parse("call-1").expect("valid"));
    let req = admin(TestRequest::post().uri("/admin/clients/c1/calls")).set_json(body(2000));
    let reply = one_with(mocks, settings.clone(), req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_insert().never();
    let req = admin(TestRequest::post().uri("/admin/clients/c1/calls")).set_json(body(5000));
    let reply = one_with(mocks, settings.clone(), req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body["details"],
        "request body must be at most 4096 bytes"
    );

    // The general limit still applies elsewhere.
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_insert().never();
    let req = admin(TestRequest::post().uri("/admin/clients"))
        .set_json(json!({"notes": "x".repeat(2000)}));
    let reply = one_with(mocks, settings, req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[actix_web::test]
async fn an_unknown_route_is_a_json_404() {
    let reply = one(Mocks::new(), TestRequest::get().uri("/nothing/here")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, json!({"error": "Not found", "statusCode": 404}));
}

#[actix_web::test]
async fn a_wrong_method_is_a_json_405() {
    let app = test::init_service(outcall_http::app(
        Mocks::signed_in(vec![]).state(),
        HttpSettings::default(),
    ))
    .await;
    for req in [
        TestRequest::get().uri("/auth/login"),
        TestRequest::delete().uri("/healthz"),
        admin(TestRequest::patch().uri("/admin/clients")),
    ] {
        let reply = send(&app, req.to_request()).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            reply.body,
            json!({"error": "Method not allowed", "statusCode": 405})
        );
    }
}

#[actix_web::test]
async fn a_storage_failure_is_a_500_that_does_not_echo_its_cause() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_list().returning(|_| {
        Err(RepositoryError::Unexpected(anyhow::anyhow!(
            "password authentication failed for user outcall at db.internal:5432"
        )))
    });
    let reply = one(mocks, admin(TestRequest::get().uri("/admin/clients"))).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!({"error": "Internal server error", "statusCode": 500})
    );
}

#[actix_web::test]
async fn liveness_and_readiness_answer_in_json() {
    let reply = one(Mocks::new(), TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );

    let mut mocks = Mocks::new();
    mocks.health.expect_ping().returning(|| Ok(()));
    let reply = one(mocks, TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::OK, json!({"status": "ready"}))
    );

    let mut mocks = Mocks::new();
    mocks.health.expect_ping().returning(|| {
        Err(RepositoryError::Unexpected(anyhow::anyhow!(
            "connection refused"
        )))
    });
    let reply = one(mocks, TestRequest::get().uri("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        json!({"status": "unavailable", "error": "Service unavailable", "statusCode": 503})
    );
}
