//! A small JSON client for outcall's API (docs/api.md): requests with an optional bearer
//! token, and the admin-login -> create-client -> client-login walk most tests start with.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Talks to one outcall base URL.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
}

/// What an API request answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The JSON body, or `Null` when it was empty or not JSON.
    pub body: Value,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    ///
    /// # Errors
    /// When no HTTP answer comes.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("requesting {path}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }

    /// # Errors
    /// When no HTTP answer comes.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// # Errors
    /// When no HTTP answer comes.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Reply> {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Logs an admin in and returns the token.
    ///
    /// # Errors
    /// Unless the login answers 200 with a token.
    pub async fn admin_login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let reply = self
            .post(
                "/auth/admin/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await?;
        token(&reply, "admin login")
    }

    /// Creates a client (as the admin) that calls from `+18001234567` with `agent_id`, and
    /// returns its secret.
    ///
    /// # Errors
    /// Unless the creation answers 201 with a secret.
    pub async fn create_client(
        &self,
        admin_token: &str,
        client_id: &str,
        agent_id: &str,
    ) -> anyhow::Result<String> {
        let reply = self
            .post(
                "/admin/clients",
                Some(admin_token),
                json!({
                    "clientId": client_id,
                    "clientMeta": {
                        "fullName": "End To End",
                        "email": format!("{client_id}@example.com"),
                        "phone": "+12125551234",
                        "businessName": "E2E Widgets"
                    },
                    "agentId": agent_id,
                    "twilioPhoneNumber": "+18001234567"
                }),
            )
            .await?;
        if reply.status != 201 {
            bail!(
                "creating {client_id} answered {}: {}",
                reply.status,
                reply.body
            );
        }
        reply.body["client"]["clientSecret"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no clientSecret in {}", reply.body))
    }

    /// Logs a client in and returns the token.
    ///
    /// # Errors
    /// Unless the login answers 200 with a token.
    pub async fn client_login(&self, client_id: &str, secret: &str) -> anyhow::Result<String> {
        let reply = self
            .post(
                "/auth/login",
                None,
                json!({"clientId": client_id, "clientSecret": secret}),
            )
            .await?;
        token(&reply, "client login")
    }

    /// Admin login, a new client with `agent_id`, and that client's token.
    ///
    /// # Errors
    /// When any step fails.
    pub async fn client_token(
        &self,
        admin: (&str, &str),
        client_id: &str,
        agent_id: &str,
    ) -> anyhow::Result<String> {
        let admin_token = self.admin_login(admin.0, admin.1).await?;
        let secret = self
            .create_client(&admin_token, client_id, agent_id)
            .await?;
        self.client_login(client_id, &secret).await
    }

    /// `POST /secure/make-call` as the client: the raw reply (200, or an error to check).
    ///
    /// # Errors
    /// When no HTTP answer comes.
    pub async fn make_call(&self, token: &str, body: Value) -> anyhow::Result<Reply> {
        self.post("/secure/make-call", Some(token), body).await
    }

    /// The client's view of one call (`GET /secure/calls/{callId}`).
    ///
    /// # Errors
    /// Unless it answers 200.
    pub async fn call(&self, token: &str, call_id: &str) -> anyhow::Result<Value> {
        let reply = self
            .get(&format!("/secure/calls/{call_id}"), Some(token))
            .await?;
        if reply.status != 200 {
            bail!(
                "reading {call_id} answered {}: {}",
                reply.status,
                reply.body
            );
        }
        Ok(reply.body)
    }

    /// Polls the call until `done` holds for it, for at most `within`; returns the last view.
    ///
    /// # Errors
    /// When reading fails or `within` elapses (the error shows the last view).
    pub async fn wait_for_call(
        &self,
        token: &str,
        call_id: &str,
        within: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let call = self.call(token, call_id).await?;
            if done(&call) {
                return Ok(call);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{call_id} did not get there within {within:?}; last seen: {call}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

fn token(reply: &Reply, what: &str) -> anyhow::Result<String> {
    if reply.status != 200 {
        bail!("{what} answered {}: {}", reply.status, reply.body);
    }
    reply.body["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token in the {what} answer {}", reply.body))
}
