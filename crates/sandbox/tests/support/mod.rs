//! A fake "outcall" for the emulator to talk to: records status callbacks, serves TwiML, and
//! accepts the media-stream WebSocket, optionally playing a script of server messages.

// Each test binary uses a different part; helpers are test code, where panics are the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, KeyInit, Mac};
use outcall_sandbox::{TwilioEmulator, TwilioEmulatorConfig};
use serde_json::{Value, json};
use sha1::Sha1;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
pub const TO: &str = "+15005550006";
pub const FROM: &str = "+15005550001";

/// The tests' own signature check, written from protocols 3.1 without the emulator's code:
/// URL, then params sorted by name (byte order) as name+value, HMAC-SHA1, base64.
pub fn expected_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in &sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn config(ring: Duration, talk: Duration) -> TwilioEmulatorConfig {
    TwilioEmulatorConfig {
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: AUTH_TOKEN.to_owned(),
        ring_time: ring,
        talk_time: talk,
        ..TwilioEmulatorConfig::default()
    }
}

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Absolute URL as requested, with port and query.
    pub url: String,
    pub path: String,
    pub method: String,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    /// Form body parameters.
    pub params: Vec<(String, String)>,
    /// Query parameters (where a GET request carries Twilio's parameters).
    pub query: Vec<(String, String)>,
    pub at: Instant,
}

impl ReceivedRequest {
    /// A body parameter, or else a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn signature_is_valid(&self) -> bool {
        self.signature.as_deref() == Some(&expected_signature(AUTH_TOKEN, &self.url, &self.params))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// A `media` message carrying this many μ-law bytes.
    Media(usize),
    Mark(&'static str),
    Clear,
    Close,
}

#[derive(Debug, Clone, Default)]
pub struct WsSession {
    pub path: String,
    pub signature: Option<String>,
    pub messages: Vec<(Instant, Value)>,
    /// The emulator closed the socket (or it dropped).
    pub ended: bool,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<ReceivedRequest>,
    sessions: Vec<WsSession>,
}

#[derive(Default)]
pub struct FakeOptions {
    /// TwiML served at `/twiml`; `None` connects a stream to this fake's WebSocket.
    pub twiml: Option<String>,
    /// Server messages sent after `start`, each at its delay from `start`.
    pub script: Vec<(Duration, Step)>,
}

pub struct FakeOutcall {
    pub http_base: String,
    pub ws_url: String,
    recorded: Arc<Mutex<Recorded>>,
    server: actix_web::dev::ServerHandle,
    ws_task: tokio::task::JoinHandle<()>,
}

pub fn default_twiml(ws_url: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{ws_url}"><Parameter name="callId" value="call-123"/><Parameter name="note" value="a &amp; &quot;b&quot;"/></Stream></Connect></Response>"#
    )
}

struct HttpState {
    base: String,
    twiml: String,
    recorded: Arc<Mutex<Recorded>>,
}

async fn record_request(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let received = ReceivedRequest {
        url: format!("{}{}", state.base, request.uri()),
        path: request.path().to_owned(),
        method: request.method().to_string(),
        signature: header("X-Twilio-Signature"),
        content_type: header("Content-Type"),
        params: url::form_urlencoded::parse(&body).into_owned().collect(),
        query: url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect(),
        at: Instant::now(),
    };
    state.recorded.lock().unwrap().requests.push(received);
    match request.path() {
        "/twiml" => HttpResponse::Ok()
            .content_type("text/xml")
            .body(state.twiml.clone()),
        "/broken-twiml" => HttpResponse::Ok()
            .content_type("text/xml")
            .body("<Response><Connect>"),
        "/missing" => HttpResponse::NotFound().finish(),
        _ => HttpResponse::NoContent().finish(),
    }
}

impl FakeOutcall {
    pub async fn start(options: FakeOptions) -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}/media", ws_listener.local_addr().unwrap());
        let twiml = options.twiml.unwrap_or_else(|| default_twiml(&ws_url));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_base = format!("http://{}", listener.local_addr().unwrap());
        let state = web::Data::new(HttpState {
            base: http_base.clone(),
            twiml,
            recorded: recorded.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(record_request))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let ws_recorded = recorded.clone();
        let script = Arc::new(options.script);
        let ws_task = tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(serve_ws(stream, ws_recorded.clone(), script.clone()));
            }
        });
        Self {
            http_base,
            ws_url,
            recorded,
            server: handle,
            ws_task,
        }
    }

    pub fn status_url(&self) -> String {
        format!("{}/status?call_id=abc", self.http_base)
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.recorded.lock().unwrap().requests.clone()
    }

    pub fn callbacks_for(&self, sid: &str) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/status" && r.param("CallSid") == Some(sid))
            .collect()
    }

    pub fn twiml_requests_for(&self, sid: &str) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/status" && r.param("CallSid") == Some(sid))
            .collect()
    }

    pub fn sessions(&self) -> Vec<WsSession> {
        self.recorded.lock().unwrap().sessions.clone()
    }

    /// The session whose `start` names `sid`, once the socket has ended (waits up to 3 s).
    pub async fn ended_session_for(&self, sid: &str) -> WsSession {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let found = self.sessions().into_iter().find(|s| {
                s.messages
                    .iter()
                    .any(|(_, m)| m["event"] == "start" && m["start"]["callSid"] == sid)
            });
            match found {
                Some(session) if session.ended => return session,
                _ if Instant::now() > deadline => panic!("no ended stream session for {sid}"),
                _ => tokio::time::sleep(ms(10)).await,
            }
        }
    }

    pub async fn stop(self) {
        self.ws_task.abort();
        self.server.stop(false).await;
    }
}

// tungstenite's handshake callback type fixes the (large) error type.
#[allow(clippy::result_large_err)]
async fn serve_ws(
    stream: tokio::net::TcpStream,
    recorded: Arc<Mutex<Recorded>>,
    script: Arc<Vec<(Duration, Step)>>,
) {
    let handshake = Arc::new(Mutex::new((String::new(), None::<String>)));
    let captured = handshake.clone();
    let callback = move |request: &Request, response: Response| {
        let signature = request
            .headers()
            .get("X-Twilio-Signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        *captured.lock().unwrap() = (request.uri().path().to_owned(), signature);
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let index = {
        let (path, signature) = handshake.lock().unwrap().clone();
        let mut recorded = recorded.lock().unwrap();
        recorded.sessions.push(WsSession {
            path,
            signature,
            ..WsSession::default()
        });
        recorded.sessions.len() - 1
    };
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    let mut started = false;
    while let Some(Ok(message)) = incoming.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        if value["event"] == "start" && !started {
            started = true;
            let stream_sid = value["streamSid"].as_str().unwrap_or_default().to_owned();
            tokio::spawn(play_script(script.clone(), stream_sid, tx.clone()));
        }
        recorded.lock().unwrap().sessions[index]
            .messages
            .push((Instant::now(), value));
    }
    recorded.lock().unwrap().sessions[index].ended = true;
    drop(tx);
    let _ = writer.await;
}

async fn play_script(
    script: Arc<Vec<(Duration, Step)>>,
    stream_sid: String,
    tx: tokio::sync::mpsc::UnboundedSender<Message>,
) {
    let start = Instant::now();
    for (at, step) in script.iter() {
        tokio::time::sleep_until(start + *at).await;
        let message = match step {
            Step::Media(bytes) => json!({
                "event": "media",
                "streamSid": stream_sid,
                "media": {"payload": base64::engine::general_purpose::STANDARD.encode(vec![0x7F_u8; *bytes])},
            }),
            Step::Mark(name) => {
                json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
            }
            Step::Clear => json!({"event": "clear", "streamSid": stream_sid}),
            Step::Close => {
                let _ = tx.send(Message::Close(None));
                return;
            }
        };
        if tx.send(Message::text(message.to_string())).is_err() {
            return;
        }
    }
}

/// A reqwest client for the emulator's REST API.
pub struct Rest {
    pub client: reqwest::Client,
    pub base: String,
}

impl Rest {
    pub fn new(emulator: &TwilioEmulator) -> Self {
        Self {
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: emulator.base_url(),
        }
    }

    pub fn calls_url(&self, account: &str) -> String {
        format!("{}/2010-04-01/Accounts/{account}/Calls.json", self.base)
    }

    pub fn call_url(&self, sid: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
            self.base
        )
    }

    pub async fn post(
        &self,
        url: &str,
        credentials: Option<(&str, &str)>,
        form: &[(&str, String)],
    ) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let mut request = self
            .client
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, url: &str) -> (u16, Value) {
        let response = self
            .client
            .get(url)
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a call with the standard form (all four events) plus `extra`; returns its sid.
    pub async fn create(
        &self,
        fake: &FakeOutcall,
        to: &str,
        extra: &[(&'static str, String)],
    ) -> String {
        let (status, body) = self
            .post(
                &self.calls_url(ACCOUNT_SID),
                Some((ACCOUNT_SID, AUTH_TOKEN)),
                &standard_form(fake, to, extra),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["sid"].as_str().unwrap().to_owned()
    }

    pub async fn update(&self, sid: &str, status: &str) -> (u16, Value) {
        self.post(
            &self.call_url(sid),
            Some((ACCOUNT_SID, AUTH_TOKEN)),
            &[("Status", status.to_owned())],
        )
        .await
    }
}

/// To, From, Url (this fake's TwiML), StatusCallback (with a query), StatusCallbackMethod
/// POST, all four events. Fields named in `extra` replace the standard ones (`Twiml` replaces
/// `Url`; `NoEvents` drops the events).
pub fn standard_form(
    fake: &FakeOutcall,
    to: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let has = |name: &str| extra.iter().any(|(k, _)| *k == name);
    let mut form: Vec<(&'static str, String)> = vec![
        ("To", to.to_owned()),
        ("From", FROM.to_owned()),
        ("Url", format!("{}/twiml", fake.http_base)),
        ("StatusCallback", fake.status_url()),
        ("StatusCallbackMethod", "POST".to_owned()),
    ];
    for event in ["initiated", "ringing", "answered", "completed"] {
        form.push(("StatusCallbackEvent", event.to_owned()));
    }
    form.retain(|(k, _)| {
        let replaced = has(k)
            || (*k == "Url" && has("Twiml"))
            || (*k == "StatusCallbackEvent" && has("NoEvents"));
        !replaced
    });
    form.extend(extra.iter().filter(|(k, _)| *k != "NoEvents").cloned());
    form
}

pub fn statuses(requests: &[ReceivedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.param("CallStatus").unwrap_or("?").to_owned())
        .collect()
}

pub fn sequence_numbers(requests: &[ReceivedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.param("SequenceNumber").unwrap_or("?").to_owned())
        .collect()
}

pub fn params_map(request: &ReceivedRequest) -> HashMap<String, String> {
    request.params.iter().cloned().collect()
}

/// A loopback address nothing listens on.
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
