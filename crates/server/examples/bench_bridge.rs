//! Load benchmark of the media bridge: N concurrent calls through the real outcall
//! `Application` (real-provider mode, SQLite in a temp dir or PostgreSQL via DATABASE_URL),
//! each with a fake "Twilio" media-stream client and a fake ElevenLabs agent (both in this
//! process), 50 frames/s each way per call. Both peers stamp their send time into the first
//! bytes of each 160-byte µ-law payload (the bridge relays payloads untouched), so the relay
//! latency per direction is receive time − stamped time.
//!
//! `cargo run --release -p outcall --example bench_bridge -- --calls 200 --seconds 20`
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use config::Environment;
use futures_util::{SinkExt, StreamExt, stream};
use outcall::{Application, Settings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ADMIN_USERNAME: &str = "admin";
const ADMIN_PASSWORD: &str = "bench horse battery staple";
const JWT_SECRET: &str = "bench-signing-key-0123456789abcdef0123456789";
const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_AUTH_TOKEN: &str = "bench-twilio-auth-token";
const AGENT_ID: &str = "agent_bench";
const FRAME: Duration = Duration::from_millis(20);
/// After the stop, how long receivers keep counting frames still in flight.
const GRACE: Duration = Duration::from_millis(1500);

/// The generator's sockets read into a small buffer: tungstenite's default (128 KiB) is zeroed
/// on every read and made a quarter of the process's CPU memset (found with `perf`), starving
/// the bridge under test. outcall's own agent connections use a small buffer too.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    base().elapsed().as_micros() as u64
}

/// A 160-byte µ-law frame (20 ms at 8 kHz) whose first 8 bytes are the send time (µs).
fn stamped_payload() -> String {
    let mut frame = [0xFFu8; 160];
    frame[..8].copy_from_slice(&now_us().to_le_bytes());
    B64.encode(frame)
}

/// The stamp of a relayed payload found after `key` in `text` (no JSON parse on the hot path).
fn stamp_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let head = text.get(start..start + 12)?;
    let bytes = B64.decode(head).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[derive(Default)]
struct Stats {
    twilio_sent: AtomicU64,
    agent_received: AtomicU64,
    agent_sent: AtomicU64,
    twilio_received: AtomicU64,
    agents_connected: AtomicU64,
    calls_bridged: AtomicU64,
    signed_urls: AtomicU64,
    to_agent_us: Mutex<Vec<u32>>,
    to_twilio_us: Mutex<Vec<u32>>,
}

struct Window {
    /// Latency samples are kept for frames stamped at or after this (µs since base).
    measure_from: u64,
    /// Senders stop at this instant.
    stop_at: tokio::time::Instant,
}

struct Args {
    calls: usize,
    seconds: u64,
    warmup: u64,
}

fn args() -> Args {
    let mut parsed = Args {
        calls: 200,
        seconds: 20,
        warmup: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().expect("a value after each flag");
        match flag.as_str() {
            "--calls" => parsed.calls = value.parse().expect("--calls N"),
            "--seconds" => parsed.seconds = value.parse().expect("--seconds S"),
            "--warmup" => parsed.warmup = value.parse().expect("--warmup S"),
            other => panic!("unknown flag {other} (use --calls N --seconds S --warmup S)"),
        }
    }
    parsed
}

/// CPU ticks per thread-name group (actix workers = the app's HTTP/bridge threads).
fn cpu_ticks_by_group() -> HashMap<&'static str, u64> {
    let mut groups = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = entry.expect("task").path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let comm_end = stat.rfind(')').unwrap_or(0);
        let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..comm_end];
        let fields: Vec<&str> = stat[comm_end + 2..].split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the comm.
        let ticks: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        let group = if comm.starts_with("actix") {
            "app (actix workers)"
        } else {
            "load generator + app runtime"
        };
        *groups.entry(group).or_insert(0) += ticks;
    }
    groups
}

fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Answers `GET /v1/convai/conversation/get-signed-url` (keep-alive HTTP/1.1) with a ws:// URL
/// to the fake agent.
async fn signed_url_server(listener: TcpListener, ws_port: u16, stats: Arc<Stats>) {
    loop {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = socket.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    let id = stats.signed_urls.fetch_add(1, Ordering::Relaxed);
                    let body = format!(r#"{{"signed_url":"ws://127.0.0.1:{ws_port}/c/{id}"}}"#);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// The fake agent: confirms µ-law both ways, then talks at 50 frames/s until the stop while
/// timing the caller audio it receives.
async fn agent_server(listener: TcpListener, stats: Arc<Stats>, window: Arc<Window>) {
    let mut n = 0u64;
    loop {
        let (socket, _) = listener.accept().await.expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        n += 1;
        let (stats, window) = (stats.clone(), window.clone());
        tokio::spawn(async move {
            let Ok(ws) =
                tokio_tungstenite::accept_async_with_config(socket, Some(ws_config())).await
            else {
                return;
            };
            stats.agents_connected.fetch_add(1, Ordering::Relaxed);
            let (mut tx, mut rx) = ws.split();
            let meta = json!({"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":format!("conv_{n}"),"agent_output_audio_format":"ulaw_8000","user_input_audio_format":"ulaw_8000"}});
            if tx.send(Message::text(meta.to_string())).await.is_err() {
                return;
            }
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(FRAME);
            let mut sending = true;
            let end = window.stop_at + GRACE * 2;
            loop {
                tokio::select! {
                    _ = tick.tick(), if sending => {
                        if tokio::time::Instant::now() >= window.stop_at {
                            sending = false;
                            continue;
                        }
                        let text = format!(r#"{{"type":"audio","audio_event":{{"audio_base_64":"{}","event_id":1}}}}"#, stamped_payload());
                        if tx.send(Message::text(text)).await.is_err() { break; }
                        stats.agent_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    message = rx.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(stamp) = stamp_after(&text, r#""user_audio_chunk":""#) {
                                let at = now_us();
                                stats.agent_received.fetch_add(1, Ordering::Relaxed);
                                if stamp >= window.measure_from {
                                    samples.push(at.saturating_sub(stamp) as u32);
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    () = tokio::time::sleep_until(end) => break,
                }
            }
            let _ = tx.close().await;
            stats.to_agent_us.lock().unwrap().extend(samples);
        });
    }
}

/// The fake Twilio side of one call: signed upgrade, `start` naming the call, then caller
/// audio at 50 frames/s (from the first agent frame on) until the stop.
async fn twilio_call(
    port: u16,
    call_id: String,
    index: usize,
    stats: Arc<Stats>,
    window: Arc<Window>,
) {
    let url = format!("ws://127.0.0.1:{port}/twilio/media-stream");
    let signature = outcall_twilio::signature(TWILIO_AUTH_TOKEN, &url, &[]);
    let mut request = url.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("X-Twilio-Signature", signature.parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true)
        .await
        .expect("media-stream upgrade");
    let (mut tx, mut rx) = ws.split();
    let stream_sid = format!("MZ{index:032x}");
    let start = json!({"event":"start","sequenceNumber":"1","start":{"accountSid":TWILIO_ACCOUNT_SID,"streamSid":stream_sid,"callSid":format!("CA{index:032x}"),"tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callId":call_id}},"streamSid":stream_sid});
    tx.send(Message::text(
        json!({"event":"connected","protocol":"Call","version":"1.0.0"}).to_string(),
    ))
    .await
    .expect("connected");
    tx.send(Message::text(start.to_string()))
        .await
        .expect("start");
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(FRAME);
    let mut bridged = false;
    let mut seq = 1u64;
    let close_at = window.stop_at + GRACE;
    loop {
        tokio::select! {
            _ = tick.tick(), if bridged && tokio::time::Instant::now() < window.stop_at => {
                seq += 1;
                let text = format!(r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{}","payload":"{}"}},"streamSid":"{stream_sid}"}}"#, seq * 20, stamped_payload());
                if tx.send(Message::text(text)).await.is_err() { break; }
                stats.twilio_sent.fetch_add(1, Ordering::Relaxed);
            }
            message = rx.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(stamp) = stamp_after(&text, r#""payload":""#) {
                        let at = now_us();
                        stats.twilio_received.fetch_add(1, Ordering::Relaxed);
                        if !bridged {
                            bridged = true;
                            stats.calls_bridged.fetch_add(1, Ordering::Relaxed);
                        }
                        if stamp >= window.measure_from {
                            samples.push(at.saturating_sub(stamp) as u32);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            () = tokio::time::sleep_until(close_at) => {
                seq += 1;
                let stop = json!({"event":"stop","sequenceNumber":seq.to_string(),"stop":{"accountSid":TWILIO_ACCOUNT_SID,"callSid":format!("CA{index:032x}")},"streamSid":stream_sid});
                let _ = tx.send(Message::text(stop.to_string())).await;
                let _ = tx.close().await;
                break;
            }
        }
    }
    stats.to_twilio_us.lock().unwrap().extend(samples);
}

fn percentiles(mut v: Vec<u32>) -> String {
    if v.is_empty() {
        return "no samples".to_owned();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "n={} p50={:.2} ms p99={:.2} ms p99.9={:.2} ms max={:.2} ms",
        v.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        v[v.len() - 1] as f64 / 1000.0
    )
}

async fn api(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut request = http.post(format!("{base}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

#[tokio::main]
async fn main() {
    let args = args();
    base();
    let stats = Arc::new(Stats::default());

    // Fake ElevenLabs: an HTTP port for get-signed-url, a WebSocket port for conversations.
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elevenlabs_base = format!("http://{}", http_listener.local_addr().unwrap());
    let ws_port = ws_listener.local_addr().unwrap().port();
    tokio::spawn(signed_url_server(http_listener, ws_port, stats.clone()));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let public_url = format!("http://127.0.0.1:{port}");
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = std::env::var("DATABASE_URL").unwrap_or_default();
    let port_text = port.to_string();
    let data_dir_text = data_dir.path().display().to_string();
    let env: HashMap<String, String> = [
        ("OUTCALL__SERVER__PORT", port_text.as_str()),
        ("OUTCALL__SERVER__PUBLIC_URL", public_url.as_str()),
        ("OUTCALL__DATABASE__URL", database_url.as_str()),
        ("OUTCALL__STORAGE__DATA_DIR", data_dir_text.as_str()),
        ("OUTCALL__AUTH__JWT_SECRET", JWT_SECRET),
        ("OUTCALL__ADMIN__USERNAME", ADMIN_USERNAME),
        ("OUTCALL__ADMIN__PASSWORD", ADMIN_PASSWORD),
        ("OUTCALL__SANDBOX__ENABLED", "false"),
        ("OUTCALL__TWILIO__ACCOUNT_SID", TWILIO_ACCOUNT_SID),
        ("OUTCALL__TWILIO__AUTH_TOKEN", TWILIO_AUTH_TOKEN),
        // Nothing listens there: hang-ups (none expected) would fail fast.
        ("OUTCALL__TWILIO__API_BASE", "http://127.0.0.1:9"),
        ("OUTCALL__ELEVENLABS__API_KEY", "bench-elevenlabs-key"),
        ("OUTCALL__ELEVENLABS__API_BASE", elevenlabs_base.as_str()),
        (
            "OUTCALL__ELEVENLABS__WEBHOOK_SECRET",
            "bench-webhook-secret",
        ),
        ("OUTCALL__HTTP__LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
        ("OUTCALL__HTTP__LOGIN_PER_ADDRESS_PER_MINUTE", "1000"),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = Settings::load_from(None, Environment::default().source(Some(env)))
        .expect("valid bench settings");
    let app = Application::build(settings)
        .await
        .expect("application builds");
    assert_eq!(app.port(), port);
    tokio::spawn(app.run_until_stopped());
    let base_url = public_url.clone();

    // Admin, one client, N in-progress calls with the client's agent.
    let http = reqwest::Client::new();
    let admin = api(
        &http,
        &base_url,
        "/auth/admin/login",
        None,
        json!({"username":ADMIN_USERNAME,"password":ADMIN_PASSWORD}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    api(&http, &base_url, "/admin/clients", Some(&admin), json!({
        "clientId": "bench_client",
        "clientMeta": {"fullName":"Bench Owner","email":"bench@example.com","phone":"+12125551234","businessName":"Bench Corp"},
        "agentId": AGENT_ID, "twilioPhoneNumber": "+18001234567", "status": "Active"
    })).await;
    let setup = Instant::now();
    let call_ids: Vec<String> = stream::iter(0..args.calls)
        .map(|i| {
            let (http, base_url, admin) = (http.clone(), base_url.clone(), admin.clone());
            async move {
                let data = json!({"callSid": format!("CA{i:032x}"), "phone": format!("+1212555{:04}", i % 10000), "from": "+18001234567", "agentId": AGENT_ID, "status": "in-progress", "startTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
                api(&http, &base_url, "/admin/clients/bench_client/calls", Some(&admin), json!({"callData": data})).await["callId"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "created {} calls in {:.1} s",
        call_ids.len(),
        setup.elapsed().as_secs_f64()
    );

    let start = tokio::time::Instant::now();
    let window = Arc::new(Window {
        measure_from: now_us() + args.warmup * 1_000_000,
        stop_at: start + Duration::from_secs(args.warmup + args.seconds),
    });
    tokio::spawn(agent_server(ws_listener, stats.clone(), window.clone()));

    let rss_before = rss_kib();
    let mut calls = Vec::new();
    for (i, call_id) in call_ids.into_iter().enumerate() {
        calls.push(tokio::spawn(twilio_call(
            port,
            call_id,
            i,
            stats.clone(),
            window.clone(),
        )));
    }
    // CPU over the measured window only (after the warm-up's connection storm).
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let bridged_at_warmup = stats.calls_bridged.load(Ordering::Relaxed);
    let cpu_before = process_cpu_ticks();
    let groups_before = cpu_ticks_by_group();
    let wall = Instant::now();
    tokio::time::sleep_until(window.stop_at).await;
    let cpu_ticks = process_cpu_ticks() - cpu_before;
    let groups_after = cpu_ticks_by_group();
    let measured_s = wall.elapsed().as_secs_f64();
    let rss_during = rss_kib();
    for call in calls {
        let _ = call.await;
    }
    tokio::time::sleep(GRACE).await;

    let ticks_per_s = 100.0; // USER_HZ on Linux
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let n = args.calls as f64;
    println!(
        "calls: {} requested, {} agent sockets opened, {} bridged (agent audio reached Twilio), {} bridged by end of warm-up",
        args.calls,
        get(&stats.agents_connected),
        get(&stats.calls_bridged),
        bridged_at_warmup
    );
    let (ts, ar) = (get(&stats.twilio_sent), get(&stats.agent_received));
    let (asent, tr) = (get(&stats.agent_sent), get(&stats.twilio_received));
    println!(
        "twilio->agent: sent {ts}, received {ar}, lost {}",
        ts.saturating_sub(ar)
    );
    println!(
        "agent->twilio: sent {asent}, received {tr}, lost {}",
        asent.saturating_sub(tr)
    );
    println!(
        "latency twilio->agent: {}",
        percentiles(std::mem::take(&mut *stats.to_agent_us.lock().unwrap()))
    );
    println!(
        "latency agent->twilio: {}",
        percentiles(std::mem::take(&mut *stats.to_twilio_us.lock().unwrap()))
    );
    let cpu_s = cpu_ticks as f64 / ticks_per_s;
    println!(
        "process CPU over {measured_s:.1} s: {cpu_s:.2} s ({:.0}% of one core), {:.3} ms per call-second",
        100.0 * cpu_s / measured_s,
        1000.0 * cpu_s / measured_s / n
    );
    for (group, after) in &groups_after {
        let before = groups_before.get(group).copied().unwrap_or(0);
        let s = after.saturating_sub(before) as f64 / ticks_per_s;
        println!(
            "  {group}: {s:.2} s CPU ({:.0}% of one core), {:.3} ms per call-second",
            100.0 * s / measured_s,
            1000.0 * s / measured_s / n
        );
    }
    println!(
        "RSS: {rss_before} KiB before the calls, {rss_during} KiB during, {:.1} KiB per call (app + generator, 4 sockets per call)",
        (rss_during.saturating_sub(rss_before)) as f64 / n
    );
}
