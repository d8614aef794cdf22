//! Load benchmark of the media bridge: N concurrent calls through the real outcall
//! `Application` (real-provider mode, SQLite in a temp dir or PostgreSQL via DATABASE_URL),
//! each with a fake Twilio media-stream client and a fake ElevenLabs agent, 50 frames/s each
//! way per call. Both fakes stamp their send time into the first bytes of each 160-byte µ-law
//! payload (the bridge relays payloads untouched), so the relay latency per direction is
//! arrival time (the kernel's receive timestamp at the other fake's socket) − stamped time.
//!
//! This process runs outcall; the fakes run in a child process (this program again, with
//! `--generate`; see `load.rs`), single-threaded, so each side's CPU is measured on its own.
//! On a machine with two or more CPUs, outcall is confined to one CPU and the generator to
//! another (`--shared-cpus` lets both use all of them).
//! With `--prepare`, each call's TwiML is fetched before its stream opens, so the bridge
//! prepares the agent connection as in production.
//!
//! `cargo run --release -p outcall --example bench_bridge -- --calls 200 --seconds 20`
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod load;
mod wire;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use config::Environment;
use futures_util::{StreamExt, stream};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use outcall::{Application, Settings};
use outcall_e2e::api::Api;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const ADMIN_USERNAME: &str = "admin";
const ADMIN_PASSWORD: &str = "bench horse battery staple";
const JWT_SECRET: &str = "bench-signing-key-0123456789abcdef0123456789";
const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_AUTH_TOKEN: &str = "bench-twilio-auth-token";
const AGENT_ID: &str = "agent_bench";
/// After the stop, how long receivers keep counting frames still in flight.
const GRACE: Duration = Duration::from_millis(1500);

struct Args {
    calls: usize,
    seconds: u64,
    warmup: u64,
    /// outcall and the generator run on all CPUs instead of one CPU each.
    shared_cpus: bool,
    /// Each call's TwiML is fetched first, as Twilio does, so the bridge prepares the agent
    /// connection before the stream arrives (otherwise the stream connects its own).
    prepare: bool,
    /// Set in the generator process: the port of the outcall under test.
    generate_for: Option<u16>,
    /// Set in the generator process: the CPU it is confined to.
    generator_cpu: Option<usize>,
}

fn args() -> Args {
    let mut parsed = Args {
        calls: 200,
        seconds: 20,
        warmup: 3,
        shared_cpus: false,
        prepare: false,
        generate_for: None,
        generator_cpu: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--shared-cpus" => {
                parsed.shared_cpus = true;
                continue;
            }
            "--prepare" => {
                parsed.prepare = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().expect("a value after each flag");
        match flag.as_str() {
            "--calls" => parsed.calls = value.parse().expect("--calls N"),
            "--seconds" => parsed.seconds = value.parse().expect("--seconds S"),
            "--warmup" => parsed.warmup = value.parse().expect("--warmup S"),
            "--generate" => parsed.generate_for = Some(value.parse().expect("--generate PORT")),
            "--cpu" => parsed.generator_cpu = Some(value.parse().expect("--cpu N")),
            other => panic!(
                "unknown flag {other} (use --calls N --seconds S --warmup S [--shared-cpus] [--prepare])"
            ),
        }
    }
    parsed
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect()
}

/// Confines this thread, and every thread it starts from now on, to `cpu`.
fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("a CPU number in range");
    sched_setaffinity(Pid::from_raw(0), &set).expect("pinning to a CPU");
}

/// utime + stime, in clock ticks, from a `/proc/.../stat` file.
fn cpu_ticks(stat_path: &str) -> u64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the comm.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU ticks of this process's threads: the actix workers (the Twilio sockets, the bridge
/// sessions and their agent sockets) and the rest (the runtime outcall's background tasks and
/// the benchmark's setup run on).
fn cpu_ticks_by_group() -> HashMap<&'static str, u64> {
    let mut groups = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = entry.expect("task").path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let comm = stat
            .find('(')
            .zip(stat.rfind(')'))
            .and_then(|(open, close)| stat.get(open + 1..close))
            .unwrap_or_default();
        let group = if comm.starts_with("actix") {
            "actix workers"
        } else {
            "other threads"
        };
        *groups.entry(group).or_insert(0) += cpu_ticks(&dir.join("stat").display().to_string());
    }
    groups
}

/// Asks for each call's TwiML as Twilio does when the callee answers (signed POST), which
/// makes the bridge start connecting the call's agent.
async fn fetch_twiml(public_url: &str, call_ids: &[String]) {
    let started = Instant::now();
    let http = reqwest::Client::new();
    stream::iter(call_ids.iter().enumerate())
        .for_each_concurrent(16, |(i, call_id)| {
            let http = http.clone();
            async move {
                let url = format!("{public_url}/twilio/twiml?callId={call_id}");
                let params = vec![
                    ("CallSid".to_owned(), format!("CA{i:032x}")),
                    ("CallStatus".to_owned(), "in-progress".to_owned()),
                ];
                let signature = outcall_twilio::signature(TWILIO_AUTH_TOKEN, &url, &params);
                let reply = http
                    .post(&url)
                    .header("X-Twilio-Signature", signature)
                    .form(&params)
                    .send()
                    .await
                    .expect("the TwiML answer");
                assert_eq!(reply.status(), 200, "TwiML for {call_id}");
            }
        })
        .await;
    println!(
        "fetched {} TwiML documents in {:.1} s (agent connections prepared)",
        call_ids.len(),
        started.elapsed().as_secs_f64()
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
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

fn main() {
    let args = args();
    if let Some(app_port) = args.generate_for {
        if let Some(cpu) = args.generator_cpu {
            pin_to(cpu);
        }
        load::run(load::LoadArgs {
            app_port,
            seconds: args.seconds,
            warmup: args.warmup,
        });
        return;
    }
    // Unless told otherwise, outcall and the generator each get a CPU of their own, so that
    // neither waits for the other to be descheduled. outcall then has one core: the actix
    // workers and the runtime size themselves from the affinity mask (one each).
    let cpus = allowed_cpus();
    let split = match (args.shared_cpus, cpus.as_slice()) {
        (false, [app, generator, ..]) => {
            pin_to(*app);
            println!(
                "cpus: outcall on CPU {app} (one actix worker), the generator on CPU {generator}"
            );
            Some(*generator)
        }
        _ => {
            println!("cpus: outcall and the generator share {} CPUs", cpus.len());
            None
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run_app(args, split));
}

async fn run_app(args: Args, generator_cpu: Option<usize>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut generator = Command::new(std::env::current_exe().expect("this program"));
    generator.args([
        "--generate",
        &port.to_string(),
        "--seconds",
        &args.seconds.to_string(),
        "--warmup",
        &args.warmup.to_string(),
    ]);
    if let Some(cpu) = generator_cpu {
        generator.args(["--cpu", &cpu.to_string()]);
    }
    let mut generator = generator
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the generator process starts");
    let mut to_generator = generator.stdin.take().unwrap();
    let mut from_generator = BufReader::new(generator.stdout.take().unwrap()).lines();
    let ready = from_generator.next_line().await.unwrap().expect("ready");
    let ports: Vec<u16> = ready
        .strip_prefix("ready ")
        .expect("ready <http port> <ws port>")
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    let elevenlabs_base = format!("http://127.0.0.1:{}", ports[0]);

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
    let api = Api::new(&base_url);
    let admin = api
        .admin_login(ADMIN_USERNAME, ADMIN_PASSWORD)
        .await
        .expect("admin login");
    api.create_client(&admin, "bench_client", AGENT_ID)
        .await
        .expect("the bench client");
    let setup = Instant::now();
    let call_ids: Vec<String> = stream::iter(0..args.calls)
        .map(|i| {
            let (api, admin) = (api.clone(), admin.clone());
            async move {
                let data = json!({"callSid": format!("CA{i:032x}"), "phone": format!("+1212555{:04}", i % 10000), "from": "+18001234567", "agentId": AGENT_ID, "status": "in-progress", "startTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
                let reply = api
                    .post("/admin/clients/bench_client/calls", Some(&admin), json!({"callData": data}))
                    .await
                    .expect("an answer");
                assert_eq!(reply.status, 200, "adding a call: {}", reply.body);
                reply.body["callId"].as_str().expect("a callId").to_owned()
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

    if args.prepare {
        fetch_twiml(&public_url, &call_ids).await;
    }
    let mut ids = call_ids.join("\n");
    ids.push('\n');
    to_generator.write_all(ids.as_bytes()).await.unwrap();
    drop(to_generator);

    let rss_before = rss_kib();
    let mut window = None;
    let mut cpu_before = (0, HashMap::new());
    let mut report = Vec::new();
    while let Some(line) = from_generator.next_line().await.unwrap() {
        match line.as_str() {
            "window-start" => {
                cpu_before = (cpu_ticks("/proc/self/stat"), cpu_ticks_by_group());
                window = Some(Instant::now());
            }
            "window-end" => {
                let measured_s = window.expect("window-start first").elapsed().as_secs_f64();
                let ticks = cpu_ticks("/proc/self/stat") - cpu_before.0;
                let groups = cpu_ticks_by_group();
                let rss_during = rss_kib();
                let n = args.calls as f64;
                let cpu_s = ticks as f64 / 100.0; // USER_HZ on Linux
                report.push(format!(
                    "outcall process: {cpu_s:.2} s CPU over {measured_s:.1} s ({:.0}% of one core), {:.3} ms per call-second",
                    100.0 * cpu_s / measured_s,
                    1000.0 * cpu_s / measured_s / n
                ));
                let mut groups: Vec<_> = groups.into_iter().collect();
                groups.sort();
                for (group, after) in groups {
                    let before = cpu_before.1.get(group).copied().unwrap_or(0);
                    let s = after.saturating_sub(before) as f64 / 100.0;
                    report.push(format!(
                        "  {group}: {s:.2} s CPU ({:.0}% of one core), {:.3} ms per call-second",
                        100.0 * s / measured_s,
                        1000.0 * s / measured_s / n
                    ));
                }
                report.push(format!(
                    "outcall RSS: {rss_before} KiB before the calls, {rss_during} KiB during, {:.1} KiB per call (2 sockets per call)",
                    rss_during.saturating_sub(rss_before) as f64 / n
                ));
            }
            "done" => break,
            other => println!("{other}"),
        }
    }
    for line in report {
        println!("{line}");
    }
    let _ = generator.wait().await;
}
