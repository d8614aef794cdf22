//! Request ids: the caller's `X-Request-Id` or a generated one, echoed in the response
//! header, added to JSON error bodies and carried by the request's log lines.

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use outcall_domain::ports::RepositoryError;
use outcall_http::{HttpSettings, REQUEST_ID_HEADER};

use crate::common::{Mocks, admin, one, send};
use crate::logs::Capture;

#[actix_web::test]
async fn a_given_request_id_is_echoed_in_the_header_and_the_error_body() {
    let reply = one(
        Mocks::new(),
        TestRequest::get()
            .uri("/no/such/route")
            .insert_header((REQUEST_ID_HEADER, "req-42.abc")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header(REQUEST_ID_HEADER), Some("req-42.abc"));
    assert_eq!(reply.request_id.as_deref(), Some("req-42.abc"));
    assert_eq!(reply.body["error"], "Not found");
    assert_eq!(reply.body["statusCode"], 404);
}

#[actix_web::test]
async fn an_authentication_failure_carries_the_request_id_too() {
    let reply = one(
        Mocks::signed_in(vec![]),
        TestRequest::get()
            .uri("/admin/clients")
            .insert_header((REQUEST_ID_HEADER, "gate-1")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header(REQUEST_ID_HEADER), Some("gate-1"));
    assert_eq!(reply.request_id.as_deref(), Some("gate-1"));
    assert!(reply.header(header::WWW_AUTHENTICATE).is_some());
}

#[actix_web::test]
async fn an_unacceptable_request_id_is_replaced_by_a_generated_one() {
    for bad in ["has space".to_owned(), "x".repeat(129)] {
        let reply = one(
            Mocks::new(),
            TestRequest::get()
                .uri("/nope")
                .insert_header((REQUEST_ID_HEADER, bad.as_str())),
        )
        .await;
        let id = reply.header(REQUEST_ID_HEADER).expect("an id").to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(reply.request_id.as_deref(), Some(id.as_str()));
    }
}

#[actix_web::test]
async fn a_request_without_an_id_gets_a_generated_one_also_on_success() {
    let reply = one(Mocks::new(), TestRequest::get().uri("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let id = reply.header(REQUEST_ID_HEADER).expect("an id");
    assert_eq!(id.len(), 32);
    // Success bodies are left alone.
    assert!(reply.body.get("requestId").is_none());
    assert_eq!(reply.request_id, None);
}

#[actix_web::test]
async fn every_log_line_of_a_request_carries_its_request_id() {
    let (capture, _guard) = Capture::start(tracing::Level::INFO, false);

    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_list().returning(|_| {
        Err(RepositoryError::Unexpected(anyhow::anyhow!(
            "store is down"
        )))
    });
    let app = test::init_service(outcall_http::app(mocks.state(), HttpSettings::default())).await;
    let reply = send(
        &app,
        admin(TestRequest::get().uri("/admin/clients"))
            .insert_header((REQUEST_ID_HEADER, "trace-me-7"))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.request_id.as_deref(), Some("trace-me-7"));

    let logs = capture.text();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("store is down")),
        "the failure is logged: {logs}"
    );
    for line in &lines {
        assert!(line.contains("request_id=trace-me-7"), "{line}");
    }
}
