//! Client accounts: `/admin/clients*` and `/secure/client`.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use outcall_domain::ports::{RepositoryError, UniqueField};
use outcall_domain::queries::{ClientListQuery, ClientPage};
use outcall_domain::test_support::{client_fixture, fixed_now};
use outcall_domain::{BoundedText, ClientId, ClientSecret, ClientStatus, SecretHash};
use serde_json::{Value, json};

use crate::common::{Mocks, admin, client, one};

fn valid_create() -> Value {
    json!({
        "clientId": "client_12345abcde",
        "clientSecret": "client_secure_secret_key",
        "clientMeta": {
            "fullName": "John Doe",
            "email": "john@example.com",
            "phone": "+12125551234",
            "businessName": "Acme Corp",
            "city": "New York",
            "jobTitle": "CEO",
            "notes": "Prefers morning calls"
        },
        "agentId": "agent_id_here",
        "twilioPhoneNumber": "+18001234567",
        "status": "Active"
    })
}

fn hashing(mocks: &mut Mocks) {
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Ok(SecretHash::from_phc("$argon2id$h".into())));
}

#[actix_web::test]
async fn creating_a_client_answers_201_with_the_secret_once_and_millisecond_timestamps() {
    let mut mocks = Mocks::signed_in(vec![]);
    hashing(&mut mocks);
    mocks
        .clients
        .expect_insert()
        .withf(|c, _| c.id.as_str() == "client_12345abcde" && c.status == ClientStatus::Active)
        .times(1)
        .returning(|_, _| Ok(()));
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients")).set_json(valid_create()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body,
        json!({
            "message": "Client created successfully",
            "client": {
                "clientId": "client_12345abcde",
                "clientSecret": "client_secure_secret_key",
                "status": "Active",
                "agentId": "agent_id_here",
                "twilioPhoneNumber": "+18001234567",
                "clientMeta": {
                    "fullName": "John Doe",
                    "email": "john@example.com",
                    "phone": "+12125551234",
                    "businessName": "Acme Corp",
                    "city": "New York",
                    "jobTitle": "CEO",
                    "notes": "Prefers morning calls"
                },
                "createdAt": "2025-03-20T12:00:00.000Z",
                "updatedAt": "2025-03-20T12:00:00.000Z"
            }
        })
    );
}

#[actix_web::test]
async fn a_create_without_id_and_secret_shows_the_generated_ones() {
    let mut mocks = Mocks::signed_in(vec![]);
    hashing(&mut mocks);
    mocks
        .ids
        .expect_client_id()
        .returning(|| ClientId::parse("client_generated").expect("valid"));
    mocks
        .ids
        .expect_client_secret()
        .returning(|| ClientSecret::parse("generated-secret-0123456789").expect("valid"));
    mocks.clients.expect_insert().returning(|_, _| Ok(()));
    let mut body = valid_create();
    let object = body.as_object_mut().expect("object");
    object.remove("clientId");
    object.remove("clientSecret");
    object.remove("status");
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients")).set_json(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["client"]["clientId"], "client_generated");
    assert_eq!(
        reply.body["client"]["clientSecret"],
        "generated-secret-0123456789"
    );
    assert_eq!(reply.body["client"]["status"], "Active");
}

#[actix_web::test]
async fn a_create_lists_the_missing_required_fields_and_stores_nothing() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_insert().never();
    mocks.hasher.expect_hash().never();
    let body =
        json!({"clientMeta": {"email": "john@example.com"}, "twilioPhoneNumber": "+18001234567"});
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients")).set_json(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "error": "Missing required fields",
            "requiredFields": ["clientMeta.fullName", "clientMeta.phone", "agentId"],
            "statusCode": 400
        })
    );
}

#[actix_web::test]
async fn a_create_with_an_invalid_value_names_the_field() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_insert().never();
    let mut body = valid_create();
    body["clientMeta"]["phone"] = json!("212-555-1234");
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients")).set_json(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"], "Failed to create client");
    assert_eq!(
        reply.body["details"],
        "clientMeta.phone: phone number must be in E.164 format (e.g. +12125551234)"
    );
}

#[actix_web::test]
async fn a_duplicate_email_is_409_naming_the_field() {
    let mut mocks = Mocks::signed_in(vec![]);
    hashing(&mut mocks);
    mocks
        .clients
        .expect_insert()
        .returning(|_, _| Err(RepositoryError::Duplicate(UniqueField::Email)));
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients")).set_json(valid_create()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body,
        json!({"error": "Client already exists with this ID or email", "details": "clientMeta.email", "statusCode": 409})
    );
}

#[actix_web::test]
async fn listing_clients_passes_parsed_filters_and_never_shows_a_secret() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_list()
        .withf(|q: &ClientListQuery| {
            q.limit == 5
                && q.offset == 10
                && q.status == Some(ClientStatus::Inactive)
                && q.search.as_ref().map(|s| s.as_str()) == Some("acme %_")
        })
        .returning(|_| {
            Ok(ClientPage {
                total: 11,
                clients: vec![client_fixture("a1")],
            })
        });
    let reply = one(
        mocks,
        admin(
            TestRequest::get()
                .uri("/admin/clients?limit=5&offset=10&status=Inactive&search=ACME%20%25_"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["total"], 11);
    assert_eq!(reply.body["count"], 1);
    let listed = &reply.body["clients"][0];
    assert_eq!(listed["clientId"], "a1");
    assert!(listed.get("clientSecret").is_none() && listed.get("secretHash").is_none());
    assert!(
        listed["clientMeta"].get("city").is_none(),
        "unset fields are omitted"
    );
}

#[actix_web::test]
async fn client_list_query_parameters_are_validated_before_any_lookup() {
    let cases = [
        ("limit=abc", "limit must be an integer from 1 to 100"),
        ("limit=0", "limit must be an integer from 1 to 100"),
        ("limit=101", "limit must be an integer from 1 to 100"),
        ("offset=-1", "offset must be a non-negative integer"),
        (
            "status=active",
            "status must be one of \"Active\", \"Inactive\", \"Suspended\"",
        ),
    ];
    for (query, details) in cases {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.clients.expect_list().never();
        let reply = one(
            mocks,
            admin(TestRequest::get().uri(&format!("/admin/clients?{query}"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.body,
            json!({"error": "Invalid query parameter", "details": details, "statusCode": 400}),
            "{query}"
        );
    }
}

#[actix_web::test]
async fn an_unknown_or_impossible_client_id_is_not_found() {
    let reply = one(
        Mocks::signed_in(vec![]),
        admin(TestRequest::get().uri("/admin/clients/ghost")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"error": "Client not found", "statusCode": 404})
    );

    // Fails `ClientId::parse`: answered without a lookup (the mock only knows c1).
    let reply = one(
        Mocks::signed_in(vec![]),
        admin(TestRequest::get().uri("/admin/clients/has%20space")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["error"], "Client not found");
}

#[actix_web::test]
async fn an_admin_reads_any_client_without_its_secret() {
    let reply = one(
        Mocks::signed_in(vec![client_fixture("b7")]),
        admin(TestRequest::get().uri("/admin/clients/b7")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["clientId"], "b7");
    assert_eq!(reply.body["clientMeta"]["email"], "b7@example.com");
    assert!(reply.body.get("clientSecret").is_none());
    assert_eq!(reply.body["createdAt"], "2025-03-20T12:00:00.000Z");
}

#[actix_web::test]
async fn an_admin_update_with_a_client_secret_points_to_reset_secret() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_update().never();
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1"))
            .set_json(json!({"clientSecret": "new-secret-0123456789", "status": "Active"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "error": "Invalid update data",
            "details": "clientSecret cannot be changed here; use POST /admin/clients/{clientId}/reset-secret",
            "statusCode": 400
        })
    );
}

#[actix_web::test]
async fn an_admin_update_applies_a_partial_patch_and_answers_the_short_form() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_update()
        .withf(|id, patch, at| {
            id.as_str() == "c1"
                && patch.status == Some(ClientStatus::Suspended)
                && patch.meta.city == Some(None)
                && patch.meta.full_name.as_ref().map(BoundedText::as_str) == Some("Jane Roe")
                && patch.agent_id.is_none()
                && *at == fixed_now()
        })
        .times(1)
        .returning(|id, _, _| {
            let mut client = client_fixture(id.as_str());
            client.status = ClientStatus::Suspended;
            Ok(Some(client))
        });
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1")).set_json(json!({
            "clientId": "ignored",
            "status": "Suspended",
            "clientMeta": {"fullName": "Jane Roe", "city": null}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "message": "Client updated successfully",
            "client": {"clientId": "c1", "status": "Suspended", "updatedAt": "2025-03-20T12:00:00.000Z"}
        })
    );
}

#[actix_web::test]
async fn an_admin_update_refuses_invalid_values_unknown_fields_and_null_required_ones() {
    let cases = [
        (
            json!({"clientMeta": {"email": "nope"}}),
            "clientMeta.email: email format is invalid",
        ),
        (
            json!({"twilioPhoneNumber": null}),
            "twilioPhoneNumber must not be null",
        ),
        (json!({"agentId": 7}), "agentId must be a string"),
        (
            json!({"favouriteColour": "blue"}),
            "unknown fields: favouriteColour",
        ),
    ];
    for (body, details) in cases {
        let mut mocks = Mocks::signed_in(vec![]);
        mocks.clients.expect_update().never();
        let reply = one(
            mocks,
            admin(TestRequest::put().uri("/admin/clients/c1")).set_json(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body["error"], "Invalid update data");
        assert_eq!(reply.body["details"], details, "{body}");
    }
}

#[actix_web::test]
async fn an_update_to_a_taken_email_is_409() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_update()
        .returning(|_, _, _| Err(RepositoryError::Duplicate(UniqueField::Email)));
    let reply = one(
        mocks,
        admin(TestRequest::put().uri("/admin/clients/c1"))
            .set_json(json!({"clientMeta": {"email": "taken@example.com"}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body["error"],
        "Client already exists with this ID or email"
    );
    assert_eq!(reply.body["details"], "clientMeta.email");
}

#[actix_web::test]
async fn deleting_and_resetting_answer_as_the_contract_says() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_delete()
        .returning(|id| Ok(id.as_str() == "c1"));
    let app =
        actix_web::test::init_service(outcall_http::app(mocks.state(), Default::default())).await;
    let reply = crate::common::send(
        &app,
        admin(TestRequest::delete().uri("/admin/clients/c1")).to_request(),
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"message": "Client deleted successfully"})
    );
    let reply = crate::common::send(
        &app,
        admin(TestRequest::delete().uri("/admin/clients/c2")).to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let mut mocks = Mocks::signed_in(vec![]);
    hashing(&mut mocks);
    mocks
        .ids
        .expect_client_secret()
        .returning(|| ClientSecret::parse("fresh-secret-0123456789").expect("valid"));
    mocks
        .clients
        .expect_replace_secret()
        .returning(|id, _, _| Ok(Some(client_fixture(id.as_str()))));
    let reply = one(
        mocks,
        admin(TestRequest::post().uri("/admin/clients/c1/reset-secret")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({
            "message": "Client secret reset successfully",
            "client": {"clientId": "c1", "clientSecret": "fresh-secret-0123456789"}
        })
    );
}

#[actix_web::test]
async fn a_client_reads_its_own_account() {
    let reply = one(
        Mocks::signed_in(vec![]),
        client(TestRequest::get().uri("/secure/client")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["clientId"], "c1");
    assert!(reply.body.get("clientSecret").is_none());
}

#[actix_web::test]
async fn a_client_update_lists_every_field_it_may_not_change() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks.clients.expect_update().never();
    let reply = one(
        mocks,
        client(TestRequest::put().uri("/secure/client")).set_json(json!({
            "status": "Active",
            "agentId": "other",
            "clientSecret": "x",
            "clientMeta": {"email": "me@example.com", "city": "Oslo"}
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "error": "Invalid update data",
            "details": "These fields cannot be updated: agentId, clientSecret, status, clientMeta.email",
            "statusCode": 400
        })
    );
}

#[actix_web::test]
async fn a_client_updates_its_profile_only() {
    let mut mocks = Mocks::signed_in(vec![]);
    mocks
        .clients
        .expect_update()
        .withf(|id, patch, _| {
            id.as_str() == "c1"
                && patch
                    .meta
                    .city
                    .as_ref()
                    .and_then(|c| c.as_ref())
                    .map(BoundedText::as_str)
                    == Some("Oslo")
                && patch.meta.notes == Some(None)
                && patch.meta.email.is_none()
                && patch.status.is_none()
        })
        .times(1)
        .returning(|id, _, _| Ok(Some(client_fixture(id.as_str()))));
    let reply = one(
        mocks,
        client(TestRequest::put().uri("/secure/client"))
            .set_json(json!({"clientMeta": {"city": "Oslo", "notes": ""}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["message"], "Client updated successfully");
    assert_eq!(reply.body["client"]["clientId"], "c1");
}
