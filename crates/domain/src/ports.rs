//! Ports: what the domain needs from the world. Adapters implement them; services use them
//! as `Arc<dyn Port>`. Each method documents its error contract.

use async_trait::async_trait;

use crate::Timestamp;
use crate::admin::{AdminAccount, AdminUsername};
use crate::call::Call;
use crate::client::{Client, ClientPatch};
use crate::queries::{
    AwaitingReport, CallActivity, CallDashboard, CallListQuery, CallPage, CallStats, ClientCounts,
    ClientListQuery, ClientPage, ReportBacklogQuery,
};
use crate::values::{
    AgentId, CallId, CallSid, ClientId, ClientSecret, ConversationId, PhoneNumber, SecretHash,
};

/// A field whose value must be unique across stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueField {
    ClientId,
    Email,
    CallId,
    CallSid,
    AdminUsername,
}

impl UniqueField {
    /// The field's name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientId => "clientId",
            Self::Email => "clientMeta.email",
            Self::CallId => "callId",
            Self::CallSid => "callSid",
            Self::AdminUsername => "username",
        }
    }
}

/// Errors every repository may return.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A write collided with an existing record on a unique field.
    #[error("a record with this {} already exists", .0.as_str())]
    Duplicate(UniqueField),
    /// Anything else (connection lost, corrupt row, ...), with context for the log.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What a compare-and-set write of a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the stored version is now `expected + 1`.
    Updated,
    /// The stored version differs from the one the caller read: re-read and retry.
    Conflict,
    /// No such call (deleted meanwhile).
    Missing,
}

/// Storage of client accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Stores a new client with its secret hash.
    ///
    /// # Errors
    /// `Duplicate(ClientId)` when the id exists; `Duplicate(Email)` when another client has
    /// the same email ignoring case; `Unexpected` otherwise.
    async fn insert(
        &self,
        client: &Client,
        secret_hash: &SecretHash,
    ) -> Result<(), RepositoryError>;

    /// The client with this id, if any.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find(&self, id: &ClientId) -> Result<Option<Client>, RepositoryError>;

    /// The client and its secret hash, for login.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find_with_secret(
        &self,
        id: &ClientId,
    ) -> Result<Option<(Client, SecretHash)>, RepositoryError>;

    /// Applies a partial change atomically and returns the updated client (`None`: no such
    /// client). `updated_at` becomes `at`.
    ///
    /// # Errors
    /// `Duplicate(Email)` when the new email belongs to another client; `Unexpected` otherwise.
    async fn update(
        &self,
        id: &ClientId,
        patch: &ClientPatch,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError>;

    /// Replaces the secret hash and increments the token version, so every token issued
    /// before stops working. Returns the updated client (`None`: no such client).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn replace_secret(
        &self,
        id: &ClientId,
        secret_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<Option<Client>, RepositoryError>;

    /// Deletes the client together with its calls and revoked tokens. `false`: no such client.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn delete(&self, id: &ClientId) -> Result<bool, RepositoryError>;

    /// A page of clients, newest first (ties by id), filtered by status and search term,
    /// with the number of all matches.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn list(&self, query: &ClientListQuery) -> Result<ClientPage, RepositoryError>;

    /// Number of clients per status.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn count_by_status(&self) -> Result<ClientCounts, RepositoryError>;

    /// Records that one token (by its id) must no longer be accepted. Repeating it is harmless.
    /// `expires_at` lets storage forget the entry once the token would have expired anyway.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn revoke_token(
        &self,
        client_id: &ClientId,
        token_id: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(), RepositoryError>;

    /// Whether the token id was revoked.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, RepositoryError>;
}

/// Storage of admin accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AdminRepository: Send + Sync {
    /// Creates the admin, or replaces its password hash when it exists.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn upsert(
        &self,
        username: &AdminUsername,
        password_hash: &SecretHash,
        at: Timestamp,
    ) -> Result<(), RepositoryError>;

    /// The admin with this name, if any.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find(&self, username: &AdminUsername)
    -> Result<Option<AdminAccount>, RepositoryError>;

    /// How many admins exist.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn count(&self) -> Result<u64, RepositoryError>;
}

/// Storage of call records. Every read is scoped so that tenant isolation is structural.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CallRepository: Send + Sync {
    /// Stores a new call (its `version` is stored as given, normally 0).
    ///
    /// # Errors
    /// `Duplicate(CallId)` / `Duplicate(CallSid)` on a collision; `Unexpected` otherwise,
    /// including a client that does not exist.
    async fn insert(&self, call: &Call) -> Result<(), RepositoryError>;

    /// The call with this id if it belongs to `client_id`.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
    ) -> Result<Option<Call>, RepositoryError>;

    /// The call with this id, whoever owns it (for provider callbacks).
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find_by_id(&self, call_id: &CallId) -> Result<Option<Call>, RepositoryError>;

    /// The call Twilio knows by this SID.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find_by_sid(&self, sid: &CallSid) -> Result<Option<Call>, RepositoryError>;

    /// The call bridged to this ElevenLabs conversation.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn find_by_conversation(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<Option<Call>, RepositoryError>;

    /// Writes every mutable field of `call` if the stored version still equals
    /// `call.version`, incrementing it (compare-and-set).
    ///
    /// # Errors
    /// `Duplicate(CallSid)` when the SID is taken by another call; `Unexpected` otherwise.
    async fn update(&self, call: &Call) -> Result<CasOutcome, RepositoryError>;

    /// A page of one client's calls, newest `start_time` first (ties by id), with totals.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn list_for_client(
        &self,
        client_id: &ClientId,
        query: &CallListQuery,
    ) -> Result<CallPage, RepositoryError>;

    /// One client's statistics; calls without outcome or sentiment count as `Unknown`.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn stats_for_client(&self, client_id: &ClientId) -> Result<CallStats, RepositoryError>;

    /// Counts across all clients; `recent` counts calls started at or after `recent_since`.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn dashboard(&self, recent_since: Timestamp) -> Result<CallDashboard, RepositoryError>;

    /// The calls whose post-call report the missed-report fetch may try now: ended calls
    /// bridged to a conversation (conversation id set, terminal status) without a report yet,
    /// each with its count of fetches that came back without one. Two groups, at most
    /// `query.limit` calls in all:
    ///
    /// 1. calls never tried, that ended in `[query.ended_after, query.ended_before)`, oldest
    ///    end time first (ties by id);
    /// 2. then calls tried before whose next try (see [`Self::record_report_fetch`]) is at or
    ///    before `query.now`, earliest next try first (ties by end time, then id), whatever
    ///    their end time. Calls given up on are never returned.
    ///
    /// A store should read only about `limit` entries of an index, however many calls wait
    /// outside the window or were given up on.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn calls_awaiting_report(
        &self,
        query: &ReportBacklogQuery,
    ) -> Result<Vec<AwaitingReport>, RepositoryError>;

    /// Records a fetch of the call's report that came back without one: the call has now
    /// been tried `attempts` times, and is next due at `next_at`, or never again when `None`
    /// (given up: it leaves the backlog for good, unless a report is applied). Applies only
    /// if the stored count is still `seen_attempts` and the call has no report (a
    /// compare-and-set of its own, so that two replicas fetching the same call count it
    /// once); returns whether it applied.
    ///
    /// This is bookkeeping of the fetcher, not a change of the call record: it changes
    /// neither `version` nor `updated_at`, so it never makes a concurrent [`Self::update`]
    /// (a webhook's report, a status callback) conflict, and such an update keeps the count.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn record_report_fetch(
        &self,
        call_id: &CallId,
        seen_attempts: u32,
        attempts: u32,
        next_at: Option<Timestamp>,
    ) -> Result<bool, RepositoryError>;

    /// Calls started at or after `since`, newest first, at most `limit`, with their client's
    /// name and business name.
    ///
    /// # Errors
    /// `Unexpected` on storage failure.
    async fn recent_activity(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallActivity>, RepositoryError>;
}

/// How busy a store's connection pool is at one instant (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    /// Open connections waiting for work.
    pub idle: u32,
    /// Open connections lent out to a query or transaction.
    pub in_use: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

impl PoolUsage {
    /// From a pool's open-connection and idle counts. Pools read the two one after the
    /// other, so a connection opened in between can make `idle` exceed `open`: `idle` is
    /// clamped so that `idle + in_use == open` always holds.
    pub fn from_counts(open: u32, idle: usize, max: u32) -> Self {
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(open);
        Self {
            idle,
            in_use: open.saturating_sub(idle),
            max,
        }
    }
}

/// Whether the backing store answers (for `/readyz`), and how busy it is (for `/metrics`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// # Errors
    /// `Unexpected` when the store cannot be reached.
    async fn ping(&self) -> Result<(), RepositoryError>;

    /// The connection pool's usage now, without waiting for anything; `None` for a store
    /// without a pool.
    fn pool_usage(&self) -> Option<PoolUsage> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored hash is not a PHC string the hasher understands.
    #[error("stored secret hash is malformed")]
    MalformedHash,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Slow, salted one-way hashing of secrets and passwords (argon2id in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecretHasher: Send + Sync {
    /// Hashes `plain` with a fresh salt. Runs off the async executor.
    ///
    /// # Errors
    /// `Unexpected` when hashing fails.
    async fn hash(&self, plain: &str) -> Result<SecretHash, HashError>;

    /// Whether `plain` matches `hash`, in constant time with respect to the contents.
    ///
    /// # Errors
    /// `MalformedHash` when `hash` cannot be parsed; `Unexpected` otherwise.
    async fn verify(&self, plain: &str, hash: &SecretHash) -> Result<bool, HashError>;

    /// Spends as long as a real [`SecretHasher::verify`] and always fails, so that a login for
    /// an unknown account cannot be told apart by its timing.
    async fn verify_against_decoy(&self, plain: &str);
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin {
        username: AdminUsername,
    },
    Client {
        client_id: ClientId,
        token_version: i64,
    },
}

/// The verified contents of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub principal: Principal,
    /// Unique per token, so that one token can be revoked alone (logout).
    pub token_id: String,
    pub issued_at: Timestamp,
    /// `None` when tokens are configured never to expire.
    pub expires_at: Option<Timestamp>,
}

/// A freshly signed token and what it says.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: TokenClaims,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong algorithm, wrong issuer, malformed: `reason` is safe to show.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Signs and verifies bearer tokens (HS256 JWT in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenService: Send + Sync {
    /// Signs a token for `principal`, issued at `now`, with the configured lifetime.
    ///
    /// # Errors
    /// `Unexpected` when signing fails.
    fn issue(&self, principal: &Principal, now: Timestamp) -> Result<IssuedToken, TokenError>;

    /// Checks signature, algorithm, issuer, type and expiry, and returns the claims.
    ///
    /// # Errors
    /// `Expired` for an expired token; `Invalid` for anything else wrong with it.
    fn verify(&self, token: &str) -> Result<TokenClaims, TokenError>;
}

/// The current time (UTC, millisecond precision).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Fresh identifiers and secrets from a cryptographically secure source.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn client_id(&self) -> ClientId;
    fn client_secret(&self) -> ClientSecret;
    fn call_id(&self) -> CallId;
    fn token_id(&self) -> String;
    /// Correlates one make-call request across logs and providers.
    fn request_id(&self) -> String;
}

/// A call for the telephony provider to place.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    pub call_id: CallId,
    pub to: PhoneNumber,
    /// Always the client's own number: callers cannot choose another caller id.
    pub from: PhoneNumber,
    /// Fetched by the provider when the callee answers.
    pub twiml_url: String,
    /// Where the provider posts call-progress events.
    pub status_callback_url: String,
}

/// The provider's acknowledgement of a placed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub sid: CallSid,
}

/// Connect the answered call to a bidirectional media stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInstructions {
    /// `wss://...` (or `ws://` locally) URL of the media stream endpoint.
    pub url: String,
    /// Custom parameters handed to the stream's `start` message (no secrets).
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    /// The provider refused the request (bad number, unverified caller id, ...).
    #[error(
        "telephony provider rejected the request (code {code:?}, HTTP {http_status}): {message}"
    )]
    Rejected {
        code: Option<u32>,
        message: String,
        http_status: u16,
    },
    /// Too many requests; nothing was done and it is safe to retry later.
    #[error("telephony provider is rate limiting")]
    RateLimited { retry_after_secs: Option<u64> },
    /// Credentials are wrong or the account is suspended.
    #[error("telephony provider refused our credentials")]
    Unauthorized,
    /// Timeout, connection failure or an unreadable answer: whether the provider acted is
    /// unknown.
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// The telephony provider (Twilio).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Telephony: Send + Sync {
    /// Places an outbound call. Never retried by the adapter: a retry could dial twice.
    ///
    /// # Errors
    /// `Rejected`, `RateLimited` or `Unauthorized` as the provider answered; `Unavailable`
    /// on timeouts, transport failures and unreadable answers.
    async fn place_call(&self, call: &OutboundCall) -> Result<PlacedCall, TelephonyError>;

    /// Ends a live call.
    ///
    /// # Errors
    /// As for [`Telephony::place_call`].
    async fn end_call(&self, sid: &CallSid) -> Result<(), TelephonyError>;

    /// The provider's instruction document (TwiML) connecting an answered call to a media
    /// stream, with every value escaped.
    fn stream_twiml(&self, stream: &StreamInstructions) -> String;

    /// Whether a webhook request to `url` with form `params` carries the provider's valid
    /// signature (constant-time comparison).
    fn verify_webhook(&self, url: &str, params: &[(String, String)], signature: &str) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceAgentError {
    /// The provider refused the request (unknown agent, bad key, ...): `reason` is safe to log.
    #[error("voice agent provider refused the request: {0}")]
    Rejected(String),
    /// The conversation socket closed or failed.
    #[error("voice agent connection closed: {0}")]
    Closed(String),
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// One live conversation with the agent: JSON text messages both ways (the provider's
/// conversation protocol is spoken by the media bridge; this is only the transport).
#[async_trait]
pub trait AgentConnection: Send {
    /// Sends one text message.
    ///
    /// # Errors
    /// `Closed` when the socket is gone.
    async fn send(&mut self, text: String) -> Result<(), VoiceAgentError>;

    /// The next text message; `None` once the provider closed the conversation normally.
    ///
    /// # Errors
    /// `Closed` when the socket failed.
    async fn recv(&mut self) -> Option<Result<String, VoiceAgentError>>;

    /// Closes the conversation normally (WebSocket code 1000). Idempotent.
    async fn close(&mut self);

    /// The calling task takes the connection over from the task that opened it, possibly on
    /// another thread (a connection prepared ahead of its call). An adapter whose socket is
    /// tied to the thread that opened it moves the socket to the caller's, so that its
    /// traffic does not wake another thread. Failing leaves the connection closed.
    fn rehome(&mut self) {}
}

/// The conversational AI provider (ElevenLabs).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait VoiceAgent: Send + Sync {
    /// Opens a conversation with `agent` (fetching a signed URL first).
    ///
    /// # Errors
    /// `Rejected` when the provider refuses (unknown agent, bad key); `Unavailable` on
    /// timeouts and transport failures.
    async fn connect(&self, agent: &AgentId) -> Result<Box<dyn AgentConnection>, VoiceAgentError>;

    /// The provider's post-call report of a conversation, `None` while it is not analysed yet
    /// or unknown to the provider.
    ///
    /// # Errors
    /// `Rejected` (bad key), `Unavailable` otherwise.
    async fn fetch_report(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<crate::analysis::PostCallReport>, VoiceAgentError>;
}

/// Why a provider webhook was refused before its content was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("missing signature header")]
    MissingSignature,
    #[error("signature header is malformed")]
    MalformedSignature,
    #[error("signature timestamp is outside the tolerance")]
    Stale,
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks one webhook body against its signature as the bytes stream in, so that large
/// bodies never have to be held in memory to be verified.
pub trait BodyVerifier: Send {
    fn update(&mut self, chunk: &[u8]);
    /// # Errors
    /// `Mismatch` when the body does not carry the signature.
    fn finish(self: Box<Self>) -> Result<(), WebhookRejection>;
}

/// A webhook event from the voice-agent provider, parsed from a verified body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentWebhookEvent {
    PostCall(crate::analysis::PostCallReport),
    InitiationFailure(crate::analysis::InitiationFailure),
    /// Audio of the whole call: accepted and not stored.
    Audio,
    /// An event type outcall does not use (the name, for the log).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook body is not a valid event: {0}")]
pub struct WebhookParseError(pub String);

/// The voice-agent provider's signed webhooks (ElevenLabs post-call webhook).
pub trait AgentWebhooks: Send + Sync {
    /// Starts verifying a body signed with `signature_header`, received at `now`.
    ///
    /// # Errors
    /// `MissingSignature`, `MalformedSignature` or `Stale`, before any body byte is read.
    fn verifier(
        &self,
        signature_header: Option<&str>,
        now: Timestamp,
    ) -> Result<Box<dyn BodyVerifier>, WebhookRejection>;

    /// Parses a verified body.
    ///
    /// # Errors
    /// [`WebhookParseError`] when the body is not an event of the provider's shape.
    fn parse(&self, body: &[u8]) -> Result<AgentWebhookEvent, WebhookParseError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_usage_splits_open_connections_into_idle_and_in_use() {
        assert_eq!(
            PoolUsage::from_counts(5, 2, 10),
            PoolUsage {
                idle: 2,
                in_use: 3,
                max: 10
            }
        );
        assert_eq!(
            PoolUsage::from_counts(0, 0, 10),
            PoolUsage {
                idle: 0,
                in_use: 0,
                max: 10
            }
        );
    }

    #[test]
    fn pool_usage_never_counts_more_idle_connections_than_open_ones() {
        // A connection opened between the two reads.
        assert_eq!(
            PoolUsage::from_counts(3, 4, 10),
            PoolUsage {
                idle: 3,
                in_use: 0,
                max: 10
            }
        );
    }
}
