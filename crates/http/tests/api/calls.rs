//! Call history, statistics, dashboard and activity.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use chrono::Duration;
use outcall_domain::ports::{CasOutcome, RepositoryError, UniqueField};
use outcall_domain::queries::{
    CallActivity, CallDashboard, CallListQuery, CallPage, CallStats, ClientCounts, Tally,
};
use outcall_domain::test_support::{call_fixture, fixed_now};
use outcall_domain::{
    BoundedText, CallId, CallOutcome, CallSid, CallStatus, ClientId, PhoneNumber, Sentiment,
};
use serde_json::json;

use crate::common::{Mocks, admin, client, one};

fn page(calls: Vec<outcall_domain::Call>) -> CallPage {
    CallPage {
        total: 7,
        filtered: calls.len() as u64,
        calls,
    }
}

#[actix_web::test]
async fn a_clients_call_history_page_has_the_contracts_shape() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .calls
        .expect_list_for_client()
        .withf(|id, q: &CallListQuery| {
            id.as_str() == "c1" && q.limit == 20 && q.offset == 0 && q.status.is_none()
        })
        .returning(|id, _| {
            let mut call = call_fixture(id.as_str(), "k1", CallStatus::Completed);
            call.data.call_sid = CallSid::parse("CA0123456789abcdef0123456789abcdef").ok();
            call.data.duration = Some(900);
            call.data.end_time = Some(fixed_now() + Duration::milliseconds(900_123));
            call.details.outcome = Some(CallOutcome::Interested);
            call.details.next_action_date = Some(fixed_now() + Duration::days(7));
            Ok(page(vec![call]))
        });
    let reply = one(mocks, client(TestRequest::get().uri("/secure/calls"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "clientId": "c1",
            "total": 7,
            "filtered": 1,
            "limit": 20,
            "offset": 0,
            "callHistory": [{
                "callId": "k1",
                "callData": {
                    "callSid": "CA0123456789abcdef0123456789abcdef",
                    "phone": "+12125550000",
                    "startTime": "2025-03-20T12:00:00.000Z",
                    "endTime": "2025-03-20T12:15:00.123Z",
                    "duration": 900,
                    "status": "completed"
                },
                "callDetails": {
                    "callOutcome": "interested",
                    "nextActionDate": "2025-03-27T12:00:00.000Z"
                }
            }]
        })
    );
}

#[actix_web::test]
async fn an_admin_pages_any_clients_calls_with_a_status_filter() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .calls
        .expect_list_for_client()
        .withf(|id, q: &CallListQuery| {
            id.as_str() == "c1"
                && q.limit == 200
                && q.offset == 40
                && q.status == Some(CallStatus::NoAnswer)
        })
        .returning(|_, _| Ok(page(vec![])));
    let reply = one(
        mocks,
        admin(
            TestRequest::get().uri("/admin/clients/c1/calls?limit=200&offset=40&status=no-answer"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["limit"], 200);
    assert_eq!(reply.body["offset"], 40);
    assert_eq!(reply.body["callHistory"], json!([]));
}

#[actix_web::test]
async fn call_list_query_parameters_are_validated_before_any_lookup() {
    let cases = [
        ("limit=abc", "limit must be an integer from 1 to 200"),
        ("limit=0", "limit must be an integer from 1 to 200"),
        ("limit=201", "limit must be an integer from 1 to 200"),
        ("offset=-1", "offset must be a non-negative integer"),
        ("offset=x", "offset must be a non-negative integer"),
        (
            "status=bogus",
            "status must be one of queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, canceled",
        ),
    ];
    for (query, details) in cases {
        for uri in [
            format!("/secure/calls?{query}"),
            format!("/admin/clients/c1/calls?{query}"),
        ] {
            let mut mocks = Mocks::signed_in(vec![]);
            mocks.calls.expect_list_for_client().never();
            let req = if uri.starts_with("/secure") {
                client(TestRequest::get().uri(&uri))
            } else {
                admin(TestRequest::get().uri(&uri))
            };
            let reply = one(mocks, req).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(
                reply.body,
                json!({"error": "Invalid query parameter", "details": details, "statusCode": 400}),
                "{uri}"
            );
        }
    }
}

#[actix_web::test]
async fn listing_calls_of_an_unknown_client_is_client_not_found() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_list_for_client().never();
    let reply = one(
        mocks,
        admin(TestRequest::get().uri("/admin/clients/ghost/calls")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["error"], "Client not found");
}

#[actix_web::test]
async fn a_client_cannot_see_another_clients_call() {
    let mut mocks = Mocks::signed_in(vec![]);
    // Storage scopes the lookup by owner: c1 asking for c2's call finds nothing.
    mocks
        .calls
        .expect_find()
        .withf(|owner, call| owner.as_str() == "c1" && call.as_str() == "k-of-c2")
        .times(1)
        .returning(|_, _| Ok(None));
    let reply = one(
        mocks,
        client(TestRequest::get().uri("/secure/calls/k-of-c2")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"error": "Call not found", "statusCode": 404})
    );
}

#[actix_web::test]
async fn one_call_is_shown_to_its_owner_and_to_admins() {
    for req in [
        client(TestRequest::get().uri("/secure/calls/k1")),
        admin(TestRequest::get().uri("/admin/clients/c1/calls/k1")),
    ] {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.calls.expect_find().returning(|c, k| {
            Ok(Some(call_fixture(
                c.as_str(),
                k.as_str(),
                CallStatus::Ringing,
            )))
        });
        let reply = one(mocks, req).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["callId"], "k1");
        assert_eq!(reply.body["callData"]["status"], "ringing");
        assert_eq!(reply.body["callDetails"], json!({}));
    }
}

#[actix_web::test]
async fn adding_a_call_parses_it_once_and_answers_its_id() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .ids
        .expect_call_id()
        .returning(|| CallId::parse("call-new").expect("valid"));
    mocks
        .calls
        .expect_insert()
        .withf(|call| {
            call.client_id.as_str() == "c1"
                && call.data.status() == CallStatus::Initiated
                && call.data.phone == PhoneNumber::parse("+12125551234").expect("valid")
                && call.data.start_time == fixed_now()
                && call.details.outcome.is_none()
                && call.details.summary.is_none()
        })
        .times(1)
        .returning(|_| Ok(()));
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients/c1/calls")).set_json(json!({
            "callData": {
                "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "requestId": "request_id_here",
                "phone": "+12125551234",
                "from": "+18001234567",
                "agentId": "agent_id_here",
                "startTime": "2025-03-20T12:00:00.000Z",
                "status": "initiated",
                "callCount": 1
            },
            "callDetails": {"callOutcome": "", "callSummary": "", "callTranscript": ""}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Call added to history successfully", "callId": "call-new"})
    );
}

#[actix_web::test]
async fn invalid_call_data_is_400_naming_the_field() {
    let cases = [
        (
            json!({"callData": {"phone": "+12125551234", "duration": -1}}),
            "callData.duration must be a non-negative integer",
        ),
        (
            json!({"callData": {"phone": "12125551234"}}),
            "callData.phone: phone number must be in E.164 format (e.g. +12125551234)",
        ),
        (
            json!({"callData": {"phone": "+12125551234"}, "callDetails": {"callSentiment": "ecstatic"}}),
            "callDetails.callSentiment: callSentiment must be one of positive, neutral, negative, unknown",
        ),
        (
            json!({"callData": {"phone": "+12125551234"}, "callDetails": {"nextActionDate": "next week"}}),
            "callDetails.nextActionDate: must be an RFC 3339 date-time between 1970 and 9999, e.g. 2025-03-20T12:00:00.000Z",
        ),
    ];
    for (body, details) in cases {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.calls.expect_insert().never();
        let reply = one(
            mocks,
            admin(TestRequest::post().uri("/admin/clients/c1/calls")).set_json(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body,
            json!({"error": "Invalid call data", "details": details, "statusCode": 400}),
            "{body}"
        );
    }
}

#[actix_web::test]
async fn a_duplicate_call_sid_is_409() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .ids
        .expect_call_id()
        .returning(|| CallId::parse("call-new").expect("valid"));
    mocks
        .calls
        .expect_insert()
        .returning(|_| Err(RepositoryError::Duplicate(UniqueField::CallSid)));
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients/c1/calls")).set_json(json!({
            "callData": {"phone": "+12125551234", "callSid": "CA0123456789abcdef0123456789abcdef"}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body,
        json!({"error": "Call already exists with this callSid", "details": "callSid", "statusCode": 409})
    );
}

#[actix_web::test]
async fn updating_a_call_applies_the_patch_through_the_status_rules() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_find().returning(|c, k| {
        Ok(Some(call_fixture(
            c.as_str(),
            k.as_str(),
            CallStatus::InProgress,
        )))
    });
    mocks
        .calls
        .expect_update()
        .withf(|call| {
            call.data.status() == CallStatus::Completed
                && call.data.duration == Some(900)
                && call.details.outcome == Some(CallOutcome::Interested)
                && call.details.sentiment == Some(Sentiment::Positive)
                && call.details.summary.as_ref().map(BoundedText::as_str) == Some("Keen")
        })
        .times(1)
        .returning(|_| Ok(CasOutcome::Updated));
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1/calls/k1")).set_json(json!({
            "callData": {"status": "completed", "duration": 900, "endTime": "2025-03-20T12:15:00.000Z"},
            "callDetails": {"callOutcome": "interested", "callSentiment": "positive", "callSummary": "Keen"}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Call details updated successfully"})
    );
}

#[actix_web::test]
async fn a_call_cannot_be_moved_backwards_or_found_when_missing() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_find().returning(|c, k| {
        Ok(Some(call_fixture(
            c.as_str(),
            k.as_str(),
            CallStatus::Completed,
        )))
    });
    mocks.calls.expect_update().never();
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1/calls/k1"))
            .set_json(json!({"callData": {"status": "ringing"}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body,
        json!({
            "error": "Invalid status transition",
            "details": "call status cannot change from completed to ringing",
            "statusCode": 409
        })
    );

    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_find().returning(|_, _| Ok(None));
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1/calls/k9"))
            .set_json(json!({"callDetails": {"agentNotes": "x"}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["error"], "Call not found");
}

#[actix_web::test]
async fn call_stats_hold_every_status_outcome_and_sentiment_key() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.calls.expect_stats_for_client().returning(|_| {
        let mut stats = CallStats::empty();
        stats.total = 3;
        stats.by_status.add(CallStatus::Completed, 3);
        stats.by_outcome.add(CallOutcome::Callback, 1);
        stats.by_outcome.add(CallOutcome::Unknown, 2);
        stats.by_sentiment.add(Sentiment::Unknown, 3);
        stats.total_duration = 5;
        stats.calls_with_duration = 2;
        Ok(stats)
    });
    let reply = one(mocks, client(TestRequest::get().uri("/secure/call-stats"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "clientId": "c1",
            "stats": {
                "totalCalls": 3,
                "callsByStatus": {
                    "queued": 0, "initiated": 0, "ringing": 0, "in-progress": 0, "completed": 3,
                    "busy": 0, "failed": 0, "no-answer": 0, "canceled": 0
                },
                "callsByOutcome": {
                    "interested": 0, "not-interested": 0, "callback": 1, "unavailable": 0, "unknown": 2
                },
                "callsBySentiment": {"positive": 0, "neutral": 0, "negative": 0, "unknown": 3},
                "totalDuration": 5,
                "averageDuration": 3
            }
        })
    );
}

#[actix_web::test]
async fn the_dashboard_counts_suspended_clients_as_inactive_too() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_count_by_status().returning(|| {
        Ok(ClientCounts {
            active: 120,
            inactive: 20,
            suspended: 10,
        })
    });
    mocks
        .calls
        .expect_dashboard()
        .withf(|since| *since == fixed_now() - Duration::days(7))
        .returning(|_| {
            let mut by_status = Tally::statuses();
            by_status.add(CallStatus::Completed, 1000);
            Ok(CallDashboard {
                total: 1250,
                recent: 45,
                by_status,
                by_outcome: Tally::outcomes(),
            })
        });
    let reply = one(mocks, admin(TestRequest::get().uri("/admin/dashboard"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["clients"],
        json!({"active": 120, "inactive": 30, "suspended": 10, "total": 150})
    );
    assert_eq!(reply.body["calls"]["recent"], 45);
    assert_eq!(reply.body["calls"]["total"], 1250);
    assert_eq!(
        reply.body["calls"]["byStatus"].as_object().map(|o| o.len()),
        Some(9)
    );
    assert_eq!(reply.body["calls"]["byStatus"]["completed"], 1000);
    assert_eq!(
        reply.body["calls"]["byOutcome"]
            .as_object()
            .map(|o| o.len()),
        Some(5)
    );
}

#[actix_web::test]
async fn recent_activity_defaults_to_seven_days_and_ten_entries() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .calls
        .expect_recent_activity()
        .withf(|since, limit| *since == fixed_now() - Duration::days(7) && *limit == 10)
        .returning(|_, _| {
            Ok(vec![CallActivity {
                client_id: ClientId::parse("c1").expect("valid"),
                client_name: BoundedText::parse("John Doe", 200).expect("valid"),
                business_name: None,
                call_id: CallId::parse("k1").expect("valid"),
                call_sid: None,
                phone: PhoneNumber::parse("+12125551234").expect("valid"),
                status: CallStatus::Completed,
                start_time: fixed_now(),
                duration: Some(900),
                outcome: Some(CallOutcome::Interested),
            }])
        });
    let reply = one(mocks, admin(TestRequest::get().uri("/admin/activity"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "period": "7 days",
            "count": 1,
            "activities": [{
                "clientId": "c1",
                "clientName": "John Doe",
                "callId": "k1",
                "phone": "+12125551234",
                "status": "completed",
                "startTime": "2025-03-20T12:00:00.000Z",
                "duration": 900,
                "outcome": "interested"
            }]
        })
    );
}

#[actix_web::test]
async fn recent_activity_bounds_its_parameters() {
    let cases = [
        ("days=0", "days must be an integer from 1 to 365"),
        ("days=366", "days must be an integer from 1 to 365"),
        ("days=week", "days must be an integer from 1 to 365"),
        ("limit=0", "limit must be an integer from 1 to 100"),
        ("limit=101", "limit must be an integer from 1 to 100"),
    ];
    for (query, details) in cases {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.calls.expect_recent_activity().never();
        let reply = one(
            mocks,
            admin(TestRequest::get().uri(&format!("/admin/activity?{query}"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.body["details"], details, "{query}");
    }
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .calls
        .expect_recent_activity()
        .withf(|since, limit| *since == fixed_now() - Duration::days(365) && *limit == 100)
        .returning(|_, _| Ok(vec![]));
    let reply = one(
        mocks,
        admin(TestRequest::get().uri("/admin/activity?days=365&limit=100")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["period"], "365 days");
}
