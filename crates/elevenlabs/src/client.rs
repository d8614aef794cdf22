//! The REST client (signed URL, conversation reports) and the [`VoiceAgent`] port on top of
//! it.

use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use outcall_domain::analysis::PostCallReport;
use outcall_domain::ports::{AgentConnection, VoiceAgent, VoiceAgentError};
use outcall_domain::values::{AgentId, ConversationId};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::ElevenLabsConfig;
use crate::connection::{WsConnection, describe, ws_config};
use crate::payload::Conversation;
use crate::rehome::RehomableStream;

/// The signed-URL answer and error bodies are small; reading stops here.
const MAX_SMALL_BODY: usize = 64 * 1024;
/// A conversation with its full transcript and tool calls can be large, but not this large.
const MAX_CONVERSATION_BODY: usize = 16 * 1024 * 1024;

/// ElevenLabs adapter: opens agent conversations through a signed URL and fetches their
/// post-call reports. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct ElevenLabsClient {
    http: reqwest::Client,
    api_key: SecretString,
    /// The API base without a trailing `/`.
    api_base: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    ws_config: WebSocketConfig,
}

impl std::fmt::Debug for ElevenLabsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElevenLabsClient")
            .field("api_base", &self.api_base)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// tokio-tungstenite picks no crypto backend for `wss://`: rustls needs a process-wide
/// provider before the first TLS handshake.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error only says that a provider is installed already, which is all we need.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

impl ElevenLabsClient {
    /// Checks the settings, builds the HTTP client and makes sure rustls has a crypto
    /// provider for the conversation sockets.
    ///
    /// # Errors
    /// When the API key is empty, the API base is not an absolute http(s) URL, a timeout is
    /// zero, or the HTTP client cannot be built.
    pub fn new(config: ElevenLabsConfig) -> anyhow::Result<Self> {
        let api_base = config.validate()?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect would carry `xi-api-key` to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("outcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the ElevenLabs HTTP client")?;
        Ok(Self {
            http,
            api_key: config.api_key,
            api_base,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            ws_config: ws_config(),
        })
    }

    /// A signed `wss://` (or `ws://`) URL for one conversation with `agent`. It carries a
    /// credential, so it stays secret.
    #[tracing::instrument(name = "elevenlabs.signed_url", skip_all, fields(agent_id = %agent))]
    async fn signed_url(&self, agent: &AgentId) -> Result<SecretString, VoiceAgentError> {
        let url = format!("{}/v1/convai/conversation/get-signed-url", self.api_base);
        let request = self.http.get(url).query(&[("agent_id", agent.as_str())]);
        let response = self.send(request, "get-signed-url").await?;
        let status = response.status();
        let body = read_bounded(response, MAX_SMALL_BODY, "get-signed-url").await?;
        if !status.is_success() {
            return Err(log_failure(classify(
                status,
                &body,
                "get-signed-url",
                SIGNED_URL_REFUSALS,
            )));
        }
        #[derive(Deserialize)]
        struct SignedUrl {
            signed_url: String,
        }
        let SignedUrl { signed_url } = serde_json::from_slice(&body).map_err(|_| {
            log_failure(VoiceAgentError::Unavailable(anyhow!(
                "ElevenLabs answered get-signed-url with HTTP {status} and an unreadable body"
            )))
        })?;
        // Checked here so that a bad answer is reported as such, without quoting it.
        let scheme_ok = url::Url::parse(&signed_url)
            .is_ok_and(|u| matches!(u.scheme(), "ws" | "wss") && u.host().is_some());
        if !scheme_ok {
            return Err(log_failure(VoiceAgentError::Unavailable(anyhow!(
                "ElevenLabs answered get-signed-url with a URL that is not ws:// or wss://"
            ))));
        }
        Ok(SecretString::from(signed_url))
    }

    /// Opens the conversation socket at `signed_url` within the connect timeout: TCP (as a
    /// [`RehomableStream`], so a prepared connection can move to the worker that claims
    /// it), then TLS for `wss://`, then the WebSocket handshake.
    async fn open(&self, signed_url: &SecretString) -> Result<WsConnection, VoiceAgentError> {
        let opening = async {
            let url = url::Url::parse(signed_url.expose_secret())
                .map_err(|_| WsError::Url(UrlError::NoHostName))?;
            let host = url.host_str().ok_or(WsError::Url(UrlError::NoHostName))?;
            let port = url
                .port_or_known_default()
                .ok_or(WsError::Url(UrlError::UnsupportedUrlScheme))?;
            let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
                .await
                .map_err(WsError::Io)?;
            // Nagle plus delayed ACKs would add tens of milliseconds to 20 ms audio frames.
            tcp.set_nodelay(true).map_err(WsError::Io)?;
            tokio_tungstenite::client_async_tls_with_config(
                signed_url.expose_secret(),
                RehomableStream::new(tcp),
                Some(self.ws_config),
                None,
            )
            .await
        };
        let (socket, _response) = match tokio::time::timeout(self.connect_timeout, opening).await {
            Err(_) => {
                return Err(log_failure(VoiceAgentError::Unavailable(anyhow!(
                    "opening the agent conversation took longer than {:?}",
                    self.connect_timeout
                ))));
            }
            Ok(Err(error)) => return Err(log_failure(classify_ws(&error))),
            Ok(Ok(opened)) => opened,
        };
        Ok(WsConnection::new(socket))
    }

    /// `GET /v1/convai/conversations/{id}`.
    #[tracing::instrument(name = "elevenlabs.fetch_report", skip_all, fields(conversation_id = %conversation))]
    async fn conversation_report(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<PostCallReport>, VoiceAgentError> {
        // Conversation ids are letters, digits, `_`, `-` and `.` starting with a letter or
        // digit: nothing needs escaping and no id can be `.` or `..`.
        let url = format!(
            "{}/v1/convai/conversations/{}",
            self.api_base,
            conversation.as_str()
        );
        let response = self.send(self.http.get(url), "get-conversation").await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let limit = if status.is_success() {
            MAX_CONVERSATION_BODY
        } else {
            MAX_SMALL_BODY
        };
        let body = read_bounded(response, limit, "get-conversation").await?;
        if !status.is_success() {
            return Err(log_failure(classify(
                status,
                &body,
                "get-conversation",
                REPORT_REFUSALS,
            )));
        }
        let conversation: Conversation = serde_json::from_slice(&body).map_err(|error| {
            log_failure(VoiceAgentError::Unavailable(anyhow!(
                "ElevenLabs answered get-conversation with a body of an unexpected shape \
                 ({:?} at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            )))
        })?;
        report_of(conversation)
    }

    /// Sends one request with the API key; transport failures (including the timeout)
    /// become `Unavailable`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<Response, VoiceAgentError> {
        let mut key = HeaderValue::from_str(self.api_key.expose_secret()).map_err(|_| {
            VoiceAgentError::Unavailable(anyhow!("the ElevenLabs API key is not a valid header"))
        })?;
        key.set_sensitive(true);
        request
            .header("xi-api-key", key)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| {
                let summary = if error.is_timeout() {
                    format!(
                        "ElevenLabs did not answer {what} within {:?}",
                        self.request_timeout
                    )
                } else if error.is_connect() {
                    format!("could not connect to ElevenLabs for {what}")
                } else {
                    format!("sending {what} to ElevenLabs failed")
                };
                log_failure(VoiceAgentError::Unavailable(
                    anyhow::Error::new(error.without_url()).context(summary),
                ))
            })
    }
}

/// The report of a fetched conversation, once it is analysed.
///
/// `event_at` is when the conversation ended (start plus length), not the time of the
/// fetch: a report fetched again is then recognised as the same one, and a webhook
/// (stamped when the provider emitted it, after the end) always wins over a fetched copy.
fn report_of(conversation: Conversation) -> Result<Option<PostCallReport>, VoiceAgentError> {
    if conversation.status.as_deref() != Some("done") || conversation.analysis.is_none() {
        return Ok(None);
    }
    let ended_at = conversation.ended_at().ok_or_else(|| {
        VoiceAgentError::Unavailable(anyhow!(
            "ElevenLabs answered get-conversation without metadata.start_time_unix_secs"
        ))
    })?;
    conversation
        .into_report(ended_at)
        .map(Some)
        .map_err(|reason| {
            VoiceAgentError::Unavailable(anyhow!(
                "ElevenLabs answered get-conversation with {reason}"
            ))
        })
}

/// Statuses of get-signed-url that say the request itself is refused (bad key, no access,
/// unknown agent, invalid agent id): retrying cannot help.
const SIGNED_URL_REFUSALS: &[u16] = &[401, 403, 404, 422];
/// Statuses of get-conversation that say the key is refused (404 means "no report").
const REPORT_REFUSALS: &[u16] = &[401, 403];

/// Maps a non-2xx answer: a status in `refusals` is `Rejected`, any other `Unavailable`;
/// both carry the status and ElevenLabs' error code, never its free-text message.
fn classify(status: StatusCode, body: &[u8], what: &str, refusals: &[u16]) -> VoiceAgentError {
    let code = error_code(body)
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let summary = format!(
        "ElevenLabs answered {what} with HTTP {}{code}",
        status.as_u16()
    );
    if refusals.contains(&status.as_u16()) {
        VoiceAgentError::Rejected(summary)
    } else {
        VoiceAgentError::Unavailable(anyhow!(summary))
    }
}

/// ElevenLabs' machine-readable error code (`{"detail": {"status": "invalid_api_key", ...}}`),
/// kept only when it looks like one: the free-text message is never repeated.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        detail: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        status: String,
    }
    let code = serde_json::from_slice::<ErrorBody>(body)
        .ok()?
        .detail
        .status;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    plain.then_some(code)
}

/// A failed WebSocket opening: a 4xx answer to the upgrade is a refusal, the rest is
/// unavailability. Never mentions the URL.
fn classify_ws(error: &WsError) -> VoiceAgentError {
    if let WsError::Http(response) = error
        && response.status().is_client_error()
    {
        return VoiceAgentError::Rejected(format!(
            "the agent conversation endpoint refused the WebSocket upgrade with HTTP {}",
            response.status().as_u16()
        ));
    }
    VoiceAgentError::Unavailable(anyhow!(
        "opening the agent conversation failed: {}",
        describe(error)
    ))
}

fn log_failure(error: VoiceAgentError) -> VoiceAgentError {
    match &error {
        VoiceAgentError::Rejected(reason) => tracing::warn!(%reason, "ElevenLabs refused"),
        VoiceAgentError::Unavailable(cause) => {
            tracing::warn!(error = format!("{cause:#}"), "ElevenLabs failed");
        }
        VoiceAgentError::Closed(reason) => tracing::warn!(%reason, "agent conversation closed"),
    }
    error
}

/// The body, at most `limit` bytes of it; a longer one is an error.
async fn read_bounded(
    mut response: Response,
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, VoiceAgentError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| {
        log_failure(VoiceAgentError::Unavailable(
            anyhow::Error::new(error.without_url())
                .context(format!("reading ElevenLabs' answer to {what}")),
        ))
    })? {
        if body.len() + chunk.len() > limit {
            return Err(log_failure(VoiceAgentError::Unavailable(anyhow!(
                "ElevenLabs' answer to {what} is larger than {limit} bytes"
            ))));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Times one operation (request and answer, or the WebSocket opening) in
/// `provider_request_duration_seconds{provider="elevenlabs",operation}` and counts its
/// failure in `provider_request_errors_total{provider="elevenlabs",operation,kind}`.
async fn measured<T>(
    operation: &'static str,
    request: impl Future<Output = Result<T, VoiceAgentError>>,
) -> Result<T, VoiceAgentError> {
    let started = Instant::now();
    let result = request.await;
    metrics::histogram!(
        "provider_request_duration_seconds",
        "provider" => "elevenlabs",
        "operation" => operation,
    )
    .record(started.elapsed());
    if let Err(error) = &result {
        metrics::counter!(
            "provider_request_errors_total",
            "provider" => "elevenlabs",
            "operation" => operation,
            "kind" => error_kind(error),
        )
        .increment(1);
    }
    result
}

/// The `kind` label of a failed request: the port error's variant.
fn error_kind(error: &VoiceAgentError) -> &'static str {
    match error {
        VoiceAgentError::Rejected(_) => "rejected",
        VoiceAgentError::Unavailable(_) => "unavailable",
        VoiceAgentError::Closed(_) => "closed",
    }
}

#[async_trait]
impl VoiceAgent for ElevenLabsClient {
    async fn connect(&self, agent: &AgentId) -> Result<Box<dyn AgentConnection>, VoiceAgentError> {
        let signed_url = measured("get_signed_url", self.signed_url(agent)).await?;
        let connection = measured("open_conversation", self.open(&signed_url)).await?;
        tracing::debug!(agent_id = %agent, "agent conversation open");
        Ok(Box::new(connection))
    }

    async fn fetch_report(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<PostCallReport>, VoiceAgentError> {
        measured("get_conversation", self.conversation_report(conversation)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_port_error_has_its_own_metric_kind() {
        let kinds = [
            VoiceAgentError::Rejected("HTTP 401".to_owned()),
            VoiceAgentError::Unavailable(anyhow!("timed out")),
            VoiceAgentError::Closed("1006".to_owned()),
        ]
        .iter()
        .map(error_kind)
        .collect::<Vec<_>>();
        assert_eq!(kinds, ["rejected", "unavailable", "closed"]);
    }
}
