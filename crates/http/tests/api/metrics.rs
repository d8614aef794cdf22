//! `GET /metrics`: Prometheus text with the HTTP, placement, webhook, bridge and database pool
//! metrics.

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use outcall_domain::ports::PoolUsage;
use outcall_http::{HttpSettings, PrometheusHandle};

use crate::common::{Mocks, admin, client};

/// One recorder per test process (the `metrics` macros use the global one).
fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            outcall_http::prometheus_builder()
                .install_recorder()
                .expect("the only recorder of this test process")
        })
        .clone()
}

#[actix_web::test]
async fn metrics_expose_requests_by_route_placements_webhook_failures_and_the_bridge() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.telephony.expect_verify_webhook().return_const(false);
    mocks
        .health
        .expect_pool_usage()
        .return_const(Some(PoolUsage {
            idle: 3,
            in_use: 2,
            max: 10,
        }));
    let settings = HttpSettings {
        metrics: Some(handle()),
        ..HttpSettings::default()
    };
    let app = test::init_service(outcall_http::app(mocks.state(), settings)).await;

    for req in [
        admin(TestRequest::get().uri("/admin/clients/ghost-client-77")),
        TestRequest::get().uri("/healthz"),
        client(TestRequest::post().uri("/secure/make-call"))
            .set_json(serde_json::json!({"phoneNumber": "not a number"})),
        TestRequest::post()
            .uri("/twilio/status?callId=call_1")
            .insert_header(("X-Twilio-Signature", "forged"))
            .set_form([("CallSid", "CA1")]),
    ] {
        let _ = test::call_service(&app, req.to_request()).await;
    }

    let response = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(test::read_body(response).await.to_vec()).expect("utf-8");
    for name in [
        "http_requests_total{",
        "http_request_duration_seconds_bucket{",
        "webhook_verifications_failed_total{source=\"twilio\"}",
        "bridge_live_calls",
        "bridge_frames_relayed_total{direction=\"to_agent\"}",
        "bridge_frames_dropped_total",
        "bridge_malformed_messages_total",
        "db_pool_connections{state=\"idle\"} 3",
        "db_pool_connections{state=\"in_use\"} 2",
        "db_pool_max_connections 10",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // Routes are patterns, never raw paths.
    assert!(
        text.contains("route=\"/admin/clients/{clientId}\""),
        "{text}"
    );
    assert!(!text.contains("ghost-client-77"), "{text}");
}

#[actix_web::test]
async fn metrics_are_not_found_without_a_recorder() {
    let app = test::init_service(outcall_http::app(
        Mocks::new().state(),
        HttpSettings::default(),
    ))
    .await;
    let response = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
