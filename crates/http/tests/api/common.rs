//! Building an `App` over mocks and calling it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::test::{self, TestRequest};
use chrono::Duration;
use outcall_domain::analysis::AnalysisMapping;
use outcall_domain::ports::{
    AdminRepository, AgentWebhookEvent, AgentWebhooks, BodyVerifier, CasOutcome, IssuedToken,
    MockAdminRepository, MockCallRepository, MockClientRepository, MockClock, MockHealthProbe,
    MockIdGenerator, MockSecretHasher, MockTelephony, MockTokenService, MockVoiceAgent, Principal,
    RepositoryError, TokenClaims, TokenError, VoiceAgent, WebhookParseError, WebhookRejection,
};
use outcall_domain::services::{
    Authentication, CallHistory, CallPlacement, ClientAccounts, LiveCalls, PostCallAnalysis,
};
use outcall_domain::test_support::{client_fixture, fixed_now};
use outcall_domain::webhooks::PublicUrls;
use outcall_domain::{AdminAccount, AdminUsername, Call, Client, ClientId, SecretHash, Timestamp};
use outcall_http::{ApiState, HttpSettings};
use outcall_media_bridge::{BridgeConfig, MediaBridge};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "admin-token";
/// A token of client `c1`.
pub const CLIENT_TOKEN: &str = "client-token";
/// A well-signed admin token whose admin no longer exists.
pub const GHOST_ADMIN_TOKEN: &str = "ghost-admin-token";
/// The public base URL webhook signatures are computed over.
pub const PUBLIC_URL: &str = "https://calls.example.com";

pub struct Mocks {
    pub clients: MockClientRepository,
    pub admins: MockAdminRepository,
    pub calls: MockCallRepository,
    pub hasher: MockSecretHasher,
    pub tokens: MockTokenService,
    pub ids: MockIdGenerator,
    pub health: MockHealthProbe,
    pub telephony: MockTelephony,
    pub voice: MockVoiceAgent,
    /// The voice agent the media bridge connects calls to; `voice` when `None`.
    pub bridge_agent: Option<Arc<dyn VoiceAgent>>,
    /// The public base URL (default [`PUBLIC_URL`]).
    pub public_url: String,
    /// The voice-agent webhook check; by default one that refuses every signature.
    pub agent_webhooks: Arc<dyn AgentWebhooks>,
    /// Make admin lookups yield once before answering, as a real store would, so that
    /// authentication is still pending when synchronous extractors finish.
    pub slow_admin_lookups: bool,
}

/// Refuses every voice-agent webhook signature; tests of other routes never reach it.
struct RefusingWebhooks;

impl AgentWebhooks for RefusingWebhooks {
    fn verifier(
        &self,
        _: Option<&str>,
        _: Timestamp,
    ) -> Result<Box<dyn BodyVerifier>, WebhookRejection> {
        Err(WebhookRejection::MissingSignature)
    }

    fn parse(&self, _: &[u8]) -> Result<AgentWebhookEvent, WebhookParseError> {
        Err(WebhookParseError("never verified".into()))
    }
}

struct YieldingAdmins(MockAdminRepository);

#[async_trait]
impl AdminRepository for YieldingAdmins {
    async fn upsert(
        &self,
        username: &AdminUsername,
        hash: &SecretHash,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        self.0.upsert(username, hash, at).await
    }

    async fn find(
        &self,
        username: &AdminUsername,
    ) -> Result<Option<AdminAccount>, RepositoryError> {
        tokio::task::yield_now().await;
        self.0.find(username).await
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        self.0.count().await
    }
}

pub fn admin_name() -> AdminUsername {
    AdminUsername::parse("admin").expect("valid")
}

pub fn claims(principal: Principal, token_id: &str) -> TokenClaims {
    TokenClaims {
        principal,
        token_id: token_id.to_owned(),
        issued_at: fixed_now(),
        expires_at: Some(fixed_now() + Duration::hours(1)),
    }
}

pub fn client_claims(id: &str) -> TokenClaims {
    claims(
        Principal::Client {
            client_id: ClientId::parse(id).expect("valid"),
            token_version: 0,
        },
        &format!("jti-{id}"),
    )
}

/// What the token service signs: `signed-<admin|client id>`.
pub fn issued(principal: &Principal) -> IssuedToken {
    let name = match principal {
        Principal::Admin { username } => username.as_str().to_owned(),
        Principal::Client { client_id, .. } => client_id.as_str().to_owned(),
    };
    IssuedToken {
        token: format!("signed-{name}"),
        claims: claims(principal.clone(), "jti-new"),
    }
}

impl Mocks {
    pub fn new() -> Self {
        Self {
            clients: MockClientRepository::new(),
            admins: MockAdminRepository::new(),
            calls: MockCallRepository::new(),
            hasher: MockSecretHasher::new(),
            tokens: MockTokenService::new(),
            ids: MockIdGenerator::new(),
            health: MockHealthProbe::new(),
            telephony: MockTelephony::new(),
            voice: MockVoiceAgent::new(),
            bridge_agent: None,
            public_url: PUBLIC_URL.to_owned(),
            agent_webhooks: Arc::new(RefusingWebhooks),
            slow_admin_lookups: false,
        }
    }

    /// Mocks where `ADMIN_TOKEN` is the admin's and `CLIENT_TOKEN` is client `c1`'s, and
    /// `known` are the stored clients (`c1` is added when absent).
    pub fn signed_in(mut known: Vec<Client>) -> Self {
        let mut mocks = Self::new();
        if !known.iter().any(|c| c.id.as_str() == "c1") {
            known.push(client_fixture("c1"));
        }
        mocks.tokens.expect_verify().returning(|token| match token {
            ADMIN_TOKEN => Ok(claims(
                Principal::Admin {
                    username: admin_name(),
                },
                "jti-admin",
            )),
            CLIENT_TOKEN => Ok(client_claims("c1")),
            GHOST_ADMIN_TOKEN => Ok(claims(
                Principal::Admin {
                    username: AdminUsername::parse("ghost").expect("valid"),
                },
                "jti-ghost",
            )),
            "expired-token" => Err(TokenError::Expired),
            _ => Err(TokenError::Invalid("bad signature")),
        });
        mocks.admins.expect_find().returning(|name| {
            Ok((name.as_str() == "admin").then(|| AdminAccount {
                username: admin_name(),
                password_hash: SecretHash::from_phc("$argon2id$admin".into()),
                created_at: fixed_now(),
                updated_at: fixed_now(),
            }))
        });
        mocks
            .clients
            .expect_find()
            .returning(move |id| Ok(known.iter().find(|c| &c.id == id).cloned()));
        mocks
            .clients
            .expect_is_token_revoked()
            .returning(|_| Ok(false));
        mocks
    }

    pub fn state(self) -> ApiState {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        let clock: Arc<MockClock> = Arc::new(clock);
        let clients = Arc::new(self.clients);
        let calls = Arc::new(self.calls);
        let hasher = Arc::new(self.hasher);
        let ids = Arc::new(self.ids);
        let telephony = Arc::new(self.telephony);
        let voice = Arc::new(self.voice);
        let bridge_agent: Arc<dyn VoiceAgent> = self.bridge_agent.unwrap_or_else(|| voice.clone());
        let admins: Arc<dyn AdminRepository> = if self.slow_admin_lookups {
            Arc::new(YieldingAdmins(self.admins))
        } else {
            Arc::new(self.admins)
        };
        ApiState {
            accounts: ClientAccounts::new(
                clients.clone(),
                hasher.clone(),
                clock.clone(),
                ids.clone(),
            ),
            auth: Authentication::new(
                clients.clone(),
                admins,
                hasher,
                Arc::new(self.tokens),
                clock.clone(),
            ),
            calls: CallHistory::new(calls.clone(), clients.clone(), clock.clone(), ids.clone()),
            placement: CallPlacement::new(
                clients.clone(),
                calls.clone(),
                telephony.clone(),
                clock.clone(),
                ids,
                PublicUrls::new(&self.public_url).expect("valid"),
            ),
            analysis: PostCallAnalysis::new(
                calls.clone(),
                voice,
                clock.clone(),
                AnalysisMapping::default(),
            ),
            agent_webhooks: self.agent_webhooks,
            clock: clock.clone(),
            health: Arc::new(self.health),
            bridge: MediaBridge::new(
                LiveCalls::new(calls, clients, telephony, clock),
                bridge_agent,
                BridgeConfig::default(),
            ),
        }
    }
}

/// A response whose body was checked to be JSON (every answer of this API is).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, less an error body's `requestId` (see `request_id`).
    pub body: Value,
    /// An error body's `requestId`, checked by [`send`] to be the `X-Request-Id` header.
    pub request_id: Option<String>,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send<S, B>(app: &S, req: Request) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let response = test::call_service(app, req).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{status} answered with content type {content_type:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let mut body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
    let header_id = headers
        .get(outcall_http::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("every response carries X-Request-Id")
        .to_owned();
    let request_id = if status.is_client_error() || status.is_server_error() {
        let id = body
            .as_object_mut()
            .and_then(|members| members.remove("requestId"));
        assert_eq!(
            id.as_ref().and_then(Value::as_str),
            Some(header_id.as_str()),
            "an error body carries the request id of its X-Request-Id header"
        );
        id.and_then(|id| id.as_str().map(str::to_owned))
    } else {
        None
    };
    Reply {
        status,
        headers,
        body,
        request_id,
    }
}

/// Builds the app over `mocks` with default settings and sends one request.
pub async fn one(mocks: Mocks, req: TestRequest) -> Reply {
    one_with(mocks, HttpSettings::default(), req).await
}

pub async fn one_with(mocks: Mocks, settings: HttpSettings, req: TestRequest) -> Reply {
    let app = test::init_service(outcall_http::app(mocks.state(), settings)).await;
    send(&app, req.to_request()).await
}

pub fn admin(req: TestRequest) -> TestRequest {
    req.insert_header((header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}")))
}

pub fn client(req: TestRequest) -> TestRequest {
    req.insert_header((header::AUTHORIZATION, format!("Bearer {CLIENT_TOKEN}")))
}

/// Backs the call repository's `insert`, `find_by_id`, `find` and `update` with one stored
/// call (compare-and-set on its version, as the real stores do). Returns the slot.
pub fn store_calls(mocks: &mut Mocks, initial: Option<Call>) -> Arc<Mutex<Option<Call>>> {
    let store = Arc::new(Mutex::new(initial));
    let s = store.clone();
    mocks.calls.expect_insert().returning(move |call| {
        *s.lock().expect("lock") = Some(call.clone());
        Ok(())
    });
    let s = store.clone();
    mocks
        .calls
        .expect_find_by_id()
        .returning(move |id| Ok(s.lock().expect("lock").clone().filter(|c| &c.id == id)));
    let s = store.clone();
    mocks.calls.expect_find().returning(move |client, id| {
        Ok(s.lock()
            .expect("lock")
            .clone()
            .filter(|c| &c.id == id && &c.client_id == client))
    });
    let s = store.clone();
    mocks.calls.expect_update().returning(move |call| {
        let mut slot = s.lock().expect("lock");
        match slot.as_mut() {
            Some(current) if current.id == call.id && current.version == call.version => {
                *current = Call {
                    version: call.version + 1,
                    ..call.clone()
                };
                Ok(CasOutcome::Updated)
            }
            Some(current) if current.id == call.id => Ok(CasOutcome::Conflict),
            _ => Ok(CasOutcome::Missing),
        }
    });
    store
}

/// The stored call, which must exist.
pub fn stored(store: &Arc<Mutex<Option<Call>>>) -> Call {
    store.lock().expect("lock").clone().expect("a stored call")
}
