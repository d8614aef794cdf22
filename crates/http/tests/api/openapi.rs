//! The OpenAPI document (`GET /openapi.json`) against the app that serves it: every route the
//! app registers is documented with exactly its methods and nothing else is, the document is
//! valid OpenAPI 3.1 whose references all resolve, bearer security is declared exactly where
//! the app asks for a token, and the error bodies the app writes have the documented shape.
//! Also Swagger UI at `/docs`, served from the binary.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use actix_web::App;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::test::{self, TestRequest};
use futures_util::FutureExt;
use outcall_http::HttpSettings;
use serde_json::Value;

use crate::common::{ADMIN_TOKEN, CLIENT_TOKEN, Mocks};

/// Every method a route could be registered for.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

async fn document() -> Value {
    let app = test::init_service(outcall_http::app(
        Mocks::new().state(),
        HttpSettings::default(),
    ))
    .await;
    let response =
        test::call_service(&app, TestRequest::get().uri("/openapi.json").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    serde_json::from_slice(&test::read_body(response).await).expect("a JSON document")
}

/// `{name:regex}` → `{name}`: actix's pattern syntax to OpenAPI's.
fn openapi_path(pattern: &str) -> String {
    let mut path = String::new();
    let mut in_param = false;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                path.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping = false;
                path.push(c);
            }
            ':' if in_param => skipping = true,
            _ if skipping => {}
            _ => path.push(c),
        }
    }
    path
}

/// A concrete path matching an actix pattern.
fn concrete(pattern: &str) -> String {
    let path = openapi_path(pattern);
    let mut out = String::new();
    let mut name = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str(match name.as_str() {
                    "clientId" => "c1",
                    "callId" => "call_1",
                    _ => "x",
                });
                name.clear();
            }
            _ if in_param => name.push(c),
            _ => out.push(c),
        }
    }
    out
}

/// The full patterns of every resource in the app's routing table, read from its
/// `ResourceMap` (actix exposes no iterator over it, only `Debug`): each node's pattern is
/// `patterns: Single("...")`, a scope's children are indented below it.
fn registered_patterns(resource_map: &str) -> Vec<String> {
    // (indent, pattern, is a resource) of every node, in order.
    let lines: Vec<&str> = resource_map.lines().collect();
    let mut nodes: Vec<(usize, String, bool)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_end().ends_with("ResourceMap {") {
            let indent = line.len() - line.trim_start().len();
            let single = lines[i..]
                .iter()
                .position(|l| l.trim() == "patterns: Single(")
                .expect("a node names its pattern with patterns: Single(..)");
            let raw = lines[i + single + 1].trim().trim_end_matches(',');
            let pattern: String = serde_json::from_str(raw).expect("a quoted pattern");
            // A node is a resource when its `nodes` is `None`; the first `nodes:` at the
            // node's own field indentation is its own.
            let own = format!("{}nodes: ", " ".repeat(indent + 4));
            let nodes_line = lines[i..]
                .iter()
                .find(|l| l.starts_with(&own))
                .expect("every node has nodes");
            nodes.push((indent, pattern, nodes_line.trim() == "nodes: None,"));
        }
    }
    let mut full = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (indent, pattern, is_resource) in nodes {
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let prefix = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let path = format!("{prefix}{pattern}");
        if is_resource {
            full.push(path);
        } else {
            stack.push((indent, path));
        }
    }
    full
}

/// What one request did: reached a handler (or a panic in a mock it called), or was
/// refused by routing with 405.
struct Probe {
    status: Option<StatusCode>,
    matched: Option<String>,
    error_body: Option<Value>,
    bearer_challenge: bool,
}

/// The app over mocks that know the admin and client tokens, wrapped to read its routing
/// table and the pattern each request matched.
struct Prober {
    table: Rc<RefCell<String>>,
    matched: Rc<RefCell<Option<String>>>,
}

impl Prober {
    fn new() -> Self {
        Self {
            table: Rc::default(),
            matched: Rc::default(),
        }
    }

    fn app(
        &self,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl actix_web::body::MessageBody + use<>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<>,
    > {
        let table = self.table.clone();
        let matched = self.matched.clone();
        let settings = HttpSettings {
            metrics: Some(outcall_http::prometheus_builder().build_recorder().handle()),
            ..HttpSettings::default()
        };
        outcall_http::app(Mocks::signed_in(vec![]).state(), settings).wrap_fn(move |req, srv| {
            *table.borrow_mut() = format!("{:#?}", req.resource_map());
            *matched.borrow_mut() = None;
            let matched = matched.clone();
            let call = srv.call(req);
            async move {
                let response = call.await?;
                *matched.borrow_mut() = response.request().match_pattern();
                Ok(response)
            }
        })
    }
}

async fn probe<S, B>(app: &S, prober: &Prober, req: TestRequest) -> Probe
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    // A handler that reaches a mock without expectations panics; it was routed all the same.
    let outcome = AssertUnwindSafe(async {
        let response = test::call_service(app, req.to_request()).await;
        let status = response.status();
        let bearer_challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer"));
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let body = test::read_body(response).await;
        let error_body = (is_json && (status.is_client_error() || status.is_server_error()))
            .then(|| serde_json::from_slice(&body).expect("a JSON error body"));
        (status, error_body, bearer_challenge)
    })
    .catch_unwind()
    .await;
    let matched = prober.matched.borrow().clone();
    match outcome {
        Ok((status, error_body, bearer_challenge)) => Probe {
            status: Some(status),
            matched,
            error_body,
            bearer_challenge,
        },
        Err(_) => Probe {
            status: None,
            matched,
            error_body: None,
            bearer_challenge: false,
        },
    }
}

fn with_token(req: TestRequest, path: &str) -> TestRequest {
    let token = if path.starts_with("/admin") {
        ADMIN_TOKEN
    } else {
        CLIENT_TOKEN
    };
    req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

/// (path, method) of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let name = method.as_str().to_ascii_lowercase();
            if item.get(&name).is_some() {
                operations.insert((path.clone(), method.as_str().to_owned()));
            }
        }
    }
    operations
}

#[actix_web::test]
async fn every_route_the_app_serves_is_documented_with_its_methods_and_nothing_else() {
    let doc = document().await;
    let prober = Prober::new();
    let app = test::init_service(prober.app()).await;

    // Any request fills in the routing table.
    probe(&app, &prober, TestRequest::get().uri("/healthz")).await;
    let table = prober.table.borrow().clone();
    let patterns = registered_patterns(&table);
    assert!(
        patterns.contains(&"/admin/clients/{clientId}/calls/{callId}/hangup".to_owned()),
        "the routing table could not be read: {patterns:?}"
    );

    let mut served = BTreeSet::new();
    for pattern in &patterns {
        let path = concrete(pattern);
        for method in METHODS {
            let req = with_token(
                TestRequest::default().method(method.clone()).uri(&path),
                &path,
            );
            let outcome = probe(&app, &prober, req).await;
            // (A handler that panicked in a mock returned no response to read it from.)
            if outcome.status.is_some() {
                assert_eq!(
                    outcome.matched.as_deref(),
                    Some(pattern.as_str()),
                    "{method} {path} must be routed to {pattern}"
                );
            }
            if outcome.status != Some(StatusCode::METHOD_NOT_ALLOWED) {
                served.insert((openapi_path(pattern), method.as_str().to_owned()));
            }
        }
    }

    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json: {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "in /openapi.json but not served: {not_served:?}"
    );
    assert!(served.len() >= 30, "{served:?}");
}

/// The operations, as (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                all.push((path.clone(), method.to_uppercase(), operation.clone()));
            }
        }
    }
    all
}

/// Follows a local JSON pointer (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                match (key.as_str(), member) {
                    ("$ref", Value::String(reference)) => refs.push(reference.clone()),
                    _ => collect_refs(member, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_document_is_valid_openapi_3_1_and_every_reference_resolves() {
    let doc = document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // A validating OpenAPI 3.1 parser accepts it ...
    let text = serde_json::to_string(&doc).expect("serialisable");
    let spec = oas3::from_json(&text).expect("oas3 parses the document as OpenAPI 3.1");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    // ... and can resolve every operation's parameters, body and responses.
    for (path, method, operation) in spec.operations() {
        operation
            .parameters(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: parameters: {e}"));
        operation
            .request_body(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: request body: {e}"));
        operation.responses(&spec);
    }

    // Every `$ref` points at something in the document.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }

    let schemes = &doc["components"]["securitySchemes"];
    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            operation_ids.insert(id.to_owned()),
            "{method} {path}: operationId {id:?} is not unique"
        );
        // Responses: at least one, each with a description; JSON errors use the error body.
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path} has no responses");
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with(['1', '2', '3'])),
            "{method} {path} documents no success"
        );
        assert!(responses.contains_key("500"), "{method} {path}: no 500");
        for (status, response) in responses {
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}: no description"
            );
            if status.starts_with(['4', '5']) {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorResponse",
                    "{method} {path} {status}"
                );
            }
        }
        // Path parameters are exactly the template's.
        let template: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{method} {path}: path parameters are required"
                );
                p["name"].as_str().expect("name").to_owned()
            })
            .collect();
        assert_eq!(template, declared, "{method} {path}: path parameters");
        // Security names only declared schemes, which are bearer JWT.
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().expect("requirement").keys() {
                assert_eq!(schemes[scheme]["type"], "http", "{scheme}");
                assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
                assert_eq!(schemes[scheme]["bearerFormat"], "JWT", "{scheme}");
            }
        }
    }
}

#[actix_web::test]
async fn bearer_security_is_documented_exactly_where_the_app_demands_a_token() {
    let doc = document().await;
    let prober = Prober::new();
    let app = test::init_service(prober.app()).await;
    for (path, method, operation) in operations(&doc) {
        let security: Vec<String> = operation["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r.as_object().expect("requirement").keys().cloned())
            .collect();
        let uri = concrete(&path);
        let req = TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(&uri);
        // Without a token.
        let outcome = probe(&app, &prober, req).await;
        let demands_token =
            outcome.status == Some(StatusCode::UNAUTHORIZED) && outcome.bearer_challenge;
        assert_eq!(
            !security.is_empty(),
            demands_token,
            "{method} {path}: documented security {security:?}, answered {:?} without a token",
            outcome.status
        );
        if demands_token {
            // With the other kind of token: the scheme named is the one the route accepts.
            let wrong = if security == ["adminToken"] {
                CLIENT_TOKEN
            } else {
                assert_eq!(security, ["clientToken"], "{method} {path}");
                ADMIN_TOKEN
            };
            let req = TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).expect("method"))
                .uri(&uri)
                .insert_header((header::AUTHORIZATION, format!("Bearer {wrong}")));
            let outcome = probe(&app, &prober, req).await;
            assert_eq!(
                outcome.status,
                Some(StatusCode::FORBIDDEN),
                "{method} {path} with the other kind of token"
            );
        }
    }
}

#[actix_web::test]
async fn error_bodies_have_the_documented_shape_with_a_request_id() {
    let doc = document().await;
    let schema = &doc["components"]["schemas"]["ErrorResponse"];
    let properties: BTreeMap<String, Value> = schema["properties"]
        .as_object()
        .expect("properties")
        .clone()
        .into_iter()
        .collect();
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["error", "statusCode", "requestId"])
    );

    let prober = Prober::new();
    let app = test::init_service(prober.app()).await;
    let mut seen = BTreeSet::new();
    let mut check = |body: Value, what: &str| {
        let members = body.as_object().expect("an object");
        for name in &required {
            assert!(members.contains_key(*name), "{what}: no {name} in {body}");
        }
        for (name, value) in members {
            assert!(
                properties.contains_key(name),
                "{what}: {name} is not in the ErrorResponse schema"
            );
            let expected = properties[name]["type"].clone();
            let kind = match value {
                Value::String(_) => "string",
                Value::Number(_) => "integer",
                Value::Array(_) => "array",
                _ => "other",
            };
            let allowed = match &expected {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            assert!(
                allowed.contains(&kind),
                "{what}: {name} is {kind}, documented {expected}"
            );
        }
        seen.insert(body["statusCode"].as_u64().unwrap_or_default());
    };
    let requests = [
        // 401, 403, 404, 405, 415, 400 (JSON and missing fields), 400 query.
        TestRequest::get().uri("/admin/clients"),
        with_token(TestRequest::get().uri("/admin/clients"), "/secure"),
        TestRequest::get().uri("/no/such/route"),
        TestRequest::delete().uri("/healthz"),
        with_token(TestRequest::post().uri("/admin/clients"), "/admin"),
        with_token(
            TestRequest::post()
                .uri("/admin/clients")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload("{"),
            "/admin",
        ),
        TestRequest::post()
            .uri("/auth/login")
            .set_json(serde_json::json!({})),
        with_token(TestRequest::get().uri("/admin/clients?limit=0"), "/admin"),
        TestRequest::post().uri("/twilio/status?callId=call_1"),
    ];
    for req in requests {
        let outcome = probe(&app, &prober, req).await;
        let body = outcome.error_body.expect("a JSON error body");
        check(body, &format!("{:?}", outcome.status));
    }
    assert_eq!(
        seen,
        BTreeSet::from([400, 401, 403, 404, 405, 415]),
        "the statuses checked"
    );
}

#[actix_web::test]
async fn swagger_ui_is_served_from_the_binary_and_loads_the_document() {
    let app = test::init_service(outcall_http::app(
        Mocks::new().state(),
        HttpSettings::default(),
    ))
    .await;
    let get = |uri: &str| TestRequest::get().uri(uri).to_request();

    let redirect = test::call_service(&app, get("/docs")).await;
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        redirect
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/docs/")
    );

    let page = test::call_service(&app, get("/docs/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(page).await.to_vec()).expect("text");
    assert!(html.contains("swagger-ui"), "{html}");
    // Assets are relative to /docs/ and bundled: no CDN.
    assert!(!html.contains("https://"), "{html}");

    let initializer = test::call_service(&app, get("/docs/swagger-initializer.js")).await;
    assert_eq!(initializer.status(), StatusCode::OK);
    let js = String::from_utf8(test::read_body(initializer).await.to_vec()).expect("text");
    assert!(js.contains("/openapi.json"), "{js}");

    let bundle = test::call_service(&app, get("/docs/swagger-ui-bundle.js")).await;
    assert_eq!(bundle.status(), StatusCode::OK);

    let missing = test::call_service(&app, get("/docs/no-such-asset.js")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_415_is_documented_only_where_the_app_checks_the_body_type() {
    let doc = document().await;
    let responses = |path: &str| doc["paths"][path]["post"]["responses"].clone();
    assert!(responses("/auth/login").get("415").is_some());
    assert!(
        responses(crate::agent_webhooks::PATH).get("415").is_none(),
        "the signed webhook reads its body whatever the Content-Type"
    );
    // And indeed: an unsigned text/plain body is refused for its signature, never for its type.
    let app = test::init_service(outcall_http::app(
        Mocks::new().state(),
        HttpSettings::default(),
    ))
    .await;
    let response = test::call_service(
        &app,
        TestRequest::post()
            .uri(crate::agent_webhooks::PATH)
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .set_payload("{}")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
