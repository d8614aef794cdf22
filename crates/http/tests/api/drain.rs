//! Shutdown: once draining, `/readyz` is 503 and new calls are refused with 503.

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use outcall_http::{HttpSettings, Readiness};
use serde_json::json;

use crate::common::{Mocks, admin, client, send};

fn settings(readiness: &Readiness) -> HttpSettings {
    HttpSettings {
        readiness: readiness.clone(),
        ..HttpSettings::default()
    }
}

#[actix_web::test]
async fn readyz_turns_503_draining_once_shutdown_starts() {
    let mut mocks = Mocks::new();
    mocks.health.expect_ping().times(1).returning(|| Ok(()));
    let readiness = Readiness::new();
    let app = test::init_service(outcall_http::app(mocks.state(), settings(&readiness))).await;

    let ready = send(&app, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body, json!({"status": "ready"}));

    readiness.start_draining();
    let draining = send(&app, TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.body["status"], "draining");
    assert_eq!(draining.body["statusCode"], 503);
}

#[actix_web::test]
async fn new_calls_are_refused_with_503_and_retry_after_while_draining() {
    let mut mocks = Mocks::signed_in(vec![]);
    // Nothing is placed: the telephony provider is never asked.
    mocks.telephony.expect_place_call().never();
    mocks.calls.expect_insert().never();
    let readiness = Readiness::new();
    readiness.start_draining();
    let app = test::init_service(outcall_http::app(mocks.state(), settings(&readiness))).await;

    let body = json!({"phoneNumber": "+12125551234"});
    for req in [
        client(TestRequest::post().uri("/secure/make-call")).set_json(&body),
        admin(TestRequest::post().uri("/admin/clients/c1/make-call")).set_json(&body),
    ] {
        let reply = send(&app, req.to_request()).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body["error"], "Service is shutting down");
        assert_eq!(reply.body["statusCode"], 503);
        assert_eq!(reply.header(header::RETRY_AFTER), Some("5"));
    }

    // Authentication still answers first.
    let anonymous = send(
        &app,
        TestRequest::post()
            .uri("/secure/make-call")
            .set_json(&body)
            .to_request(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
