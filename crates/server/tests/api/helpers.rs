//! Spawns the real application (actix-web app, argon2id, JWT) on a fresh PostgreSQL database
//! per test, and talks to it over HTTP.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use config::Environment;
use outcall::{Application, Settings};
use outcall_sandbox::{
    CallOutcomeScript, ConversationScript, ElevenLabsEmulator, ElevenLabsEmulatorConfig,
    MediaScript, ScriptTurn, TwilioEmulator, TwilioEmulatorConfig, WebhookTarget,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const JWT_SECRET: &str = "test-signing-key-0123456789abcdef0123456789";
pub const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_AUTH_TOKEN: &str = "test-twilio-auth-token";
pub const ELEVENLABS_API_KEY: &str = "test-elevenlabs-key";
pub const ELEVENLABS_WEBHOOK_SECRET: &str = "test-elevenlabs-webhook-secret";

/// The provider emulators a test app talks to.
pub struct TestProviders {
    pub twilio: TwilioEmulator,
    pub elevenlabs: ElevenLabsEmulator,
}

/// Everything every test process logged, so tests can check that nothing secret was logged.
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures logs at the most verbose level, so that a secret logged anywhere would be seen.
fn init_log_capture() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let buffer = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace,h2=info,hyper=info,rustls=info,tokio=info,runtime=info")
            .with_writer(move || BufferWriter(buffer.clone()))
            .with_ansi(false)
            .try_init();
    });
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    _data_dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the app in real-provider mode against Twilio and ElevenLabs emulators owned by
    /// the test (so the production adapters are used): calls are answered after `ring` and end
    /// after `talk` unless `scripts` say otherwise for a destination number; the agent follows
    /// `conversation` and posts a signed post-call webhook to the app.
    pub async fn spawn_with_providers(
        scripts: HashMap<String, CallOutcomeScript>,
        ring: Duration,
        talk: Duration,
        conversation: ConversationScript,
    ) -> (Self, TestProviders) {
        let twilio = TwilioEmulator::start(TwilioEmulatorConfig {
            account_sid: TWILIO_ACCOUNT_SID.to_owned(),
            auth_token: TWILIO_AUTH_TOKEN.to_owned(),
            ring_time: ring,
            talk_time: talk,
            media: MediaScript::Silence,
            default_outcome: CallOutcomeScript::Answered,
            scripts,
        })
        .await
        .expect("Twilio emulator starts");
        // Real-provider mode needs the public URL up front, so pick the port ourselves.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let public_url = format!("http://127.0.0.1:{port}");
        let elevenlabs = ElevenLabsEmulator::start(ElevenLabsEmulatorConfig {
            api_key: ELEVENLABS_API_KEY.to_owned(),
            script: conversation,
            audio_chunk_ms: 20,
            webhook: Some(WebhookTarget {
                url: format!("{public_url}/webhooks/elevenlabs/post-call"),
                secret: ELEVENLABS_WEBHOOK_SECRET.to_owned(),
                delay: Duration::from_millis(100),
            }),
            ..ElevenLabsEmulatorConfig::default()
        })
        .await
        .expect("ElevenLabs emulator starts");
        let twilio_base = twilio.base_url();
        let elevenlabs_base = elevenlabs.base_url();
        let app = Self::spawn_with(&[
            ("OUTCALL__SANDBOX__ENABLED", "false"),
            ("OUTCALL__SERVER__PORT", port.as_str()),
            ("OUTCALL__SERVER__PUBLIC_URL", public_url.as_str()),
            ("OUTCALL__TWILIO__ACCOUNT_SID", TWILIO_ACCOUNT_SID),
            ("OUTCALL__TWILIO__AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("OUTCALL__TWILIO__API_BASE", twilio_base.as_str()),
            ("OUTCALL__ELEVENLABS__API_KEY", ELEVENLABS_API_KEY),
            ("OUTCALL__ELEVENLABS__API_BASE", elevenlabs_base.as_str()),
            (
                "OUTCALL__ELEVENLABS__WEBHOOK_SECRET",
                ELEVENLABS_WEBHOOK_SECRET,
            ),
        ])
        .await;
        (app, TestProviders { twilio, elevenlabs })
    }

    /// As [`TestApp::spawn_with_providers`] with a one-line agent that never ends the call.
    pub async fn spawn_with_twilio(
        scripts: HashMap<String, CallOutcomeScript>,
        ring: Duration,
        talk: Duration,
    ) -> (Self, TestProviders) {
        let agent_never_hangs_up = ConversationScript {
            turns: Vec::new(),
            end_after_turns: false,
            ..ConversationScript::default()
        };
        Self::spawn_with_providers(scripts, ring, talk, agent_never_hangs_up).await
    }

    /// Starts the app with the test defaults overridden by `overrides` (env-style names).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        init_log_capture();
        let database_url = outcall_e2e::fresh_postgres_database()
            .await
            .expect("a fresh PostgreSQL database");
        let data_dir = tempfile::tempdir().expect("tempdir");
        let data_dir_text = data_dir.path().display().to_string();
        let mut env: HashMap<String, String> = [
            ("OUTCALL__SERVER__PORT", "0"),
            ("OUTCALL__DATABASE__URL", database_url.as_str()),
            ("OUTCALL__DATABASE__MAX_CONNECTIONS", "5"),
            ("OUTCALL__STORAGE__DATA_DIR", data_dir_text.as_str()),
            ("OUTCALL__AUTH__JWT_SECRET", JWT_SECRET),
            ("OUTCALL__ADMIN__USERNAME", ADMIN_USERNAME),
            ("OUTCALL__ADMIN__PASSWORD", ADMIN_PASSWORD),
            ("OUTCALL__HTTP__LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
            ("OUTCALL__HTTP__LOGIN_PER_ADDRESS_PER_MINUTE", "1000"),
            ("OUTCALL__SANDBOX__RING_MS", "100"),
            ("OUTCALL__SANDBOX__TALK_MS", "300"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings = Settings::load_from(None, Environment::default().source(Some(env)))
            .expect("valid test settings");
        let app = Application::build(settings)
            .await
            .expect("application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            http: reqwest::Client::new(),
            _data_dir: data_dir,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status} body is not JSON: {text}"))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn admin_token(&self) -> String {
        let response = self
            .post(
                "/auth/admin/login",
                None,
                json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a client with the given id and email; returns its secret.
    pub async fn create_client(&self, admin: &str, client_id: &str, email: &str) -> String {
        let response = self
            .post("/admin/clients", Some(admin), client_body(client_id, email))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body["client"]["clientSecret"]
            .as_str()
            .expect("secret shown once")
            .to_owned()
    }

    pub async fn client_login(&self, client_id: &str, secret: &str) -> Response {
        self.post(
            "/auth/login",
            None,
            json!({"clientId": client_id, "clientSecret": secret}),
        )
        .await
    }

    /// Creates a client and logs it in; returns (secret, token).
    pub async fn client_with_token(&self, admin: &str, client_id: &str) -> (String, String) {
        let secret = self
            .create_client(admin, client_id, &format!("{client_id}@example.com"))
            .await;
        let login = self.client_login(client_id, &secret).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        (
            secret,
            login.body["token"].as_str().expect("token").to_owned(),
        )
    }
}

pub fn client_body(client_id: &str, email: &str) -> Value {
    json!({
        "clientId": client_id,
        "clientMeta": {
            "fullName": format!("Owner of {client_id}"),
            "email": email,
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

/// Polls a client's call until it reaches `status` (or fails the test after `within`).
pub async fn wait_for_call_status(
    app: &TestApp,
    token: &str,
    call_id: &str,
    status: &str,
    within: Duration,
) -> Value {
    wait_for_call(
        app,
        token,
        call_id,
        within,
        &format!("status {status}"),
        |call| call["callData"]["status"] == status,
    )
    .await
}

/// Polls the client's view of the call until `reached` holds (`what` names it in the
/// failure), and returns that view.
pub async fn wait_for_call(
    app: &TestApp,
    token: &str,
    call_id: &str,
    within: Duration,
    what: &str,
    reached: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let call = app.get(&format!("/secure/calls/{call_id}"), token).await;
        if reached(&call.body) {
            return call.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {call_id} did not reach {what} within {within:?}; last seen {}",
            call.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One turn, then the agent says goodbye: a whole conversation in about a second.
pub fn short_script() -> ConversationScript {
    ConversationScript {
        first_message: "Hello from the agent.".to_owned(),
        turns: vec![ScriptTurn {
            user: "Hi, tell me more.".to_owned(),
            user_audio_ms: 200,
            agent: "Gladly. Goodbye!".to_owned(),
        }],
        end_after_turns: true,
        ping_interval: Duration::from_millis(200),
        ..ConversationScript::default()
    }
}
