//! The read endpoints of the call-history API timed over HTTP against the real outcall
//! `Application` (PostgreSQL, real-provider mode with dummy Twilio/ElevenLabs settings that no
//! request reaches), on the data set of `bench_queries`: by default 1,000,000 calls over 1,000
//! clients in the database `outcall_bench` (`outcall_postgres::bench`).
//!
//! ```text
//! scripts/with-postgres cargo run --release -p outcall --example bench_api -- \
//!   --calls 1000000 --clients 1000 [--iterations 300] [--concurrency 16] [--seconds 5] \
//!   [--logins 50] [--reuse] [--skip-vacuum]
//! ```
//!
//! `DATABASE_URL` (or `--database-url`) names a server where the user may create databases.
//! The example seeds (or, with `--reuse`, keeps an existing) `outcall_bench`, starts the
//! application on a free loopback port with an admin, logs in as the admin, gives `--logins`
//! active seeded clients a new secret through `POST /admin/clients/{id}/reset-secret` and logs
//! each in with `POST /auth/login`. Then, with one keep-alive HTTP/1.1 connection and one
//! request at a time, each endpoint is requested `iterations / 10` times untimed and
//! `iterations` times timed (a random client per request where the endpoint has one): the
//! time from sending the request to the last byte of the body. Last, `--concurrency` requests
//! in flight for `--seconds` over a mix of the same endpoints: requests/s and latency.
//! The load generator runs in the same process, so it shares the CPU with the server (and
//! PostgreSQL, when local).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use config::Environment;
use outcall::{Application, Settings};
use outcall_domain::ClientStatus;
use outcall_e2e::api::Api;
use outcall_postgres::bench::{self, DataSet, Lcg, Timing, ms};
use serde_json::Value;

const ADMIN_USERNAME: &str = "admin";
const ADMIN_PASSWORD: &str = "bench horse battery staple";
const JWT_SECRET: &str = "bench-signing-key-0123456789abcdef0123456789";

struct Options {
    calls: i64,
    clients: i64,
    iterations: usize,
    concurrency: usize,
    seconds: u64,
    logins: usize,
    database_url: String,
    reuse: bool,
    skip_vacuum: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        calls: 1_000_000,
        clients: 1_000,
        iterations: 300,
        concurrency: 16,
        seconds: 5,
        logins: 50,
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        reuse: false,
        skip_vacuum: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--calls" => options.calls = value()?.parse().context("--calls")?,
            "--clients" => options.clients = value()?.parse().context("--clients")?,
            "--iterations" => options.iterations = value()?.parse().context("--iterations")?,
            "--concurrency" => options.concurrency = value()?.parse().context("--concurrency")?,
            "--seconds" => options.seconds = value()?.parse().context("--seconds")?,
            "--logins" => options.logins = value()?.parse().context("--logins")?,
            "--database-url" => options.database_url = value()?,
            "--reuse" => options.reuse = true,
            "--skip-vacuum" => options.skip_vacuum = true,
            other => bail!("unknown argument {other}"),
        }
    }
    if options.database_url.is_empty() {
        bail!("set DATABASE_URL or pass --database-url (a user that may create databases)");
    }
    if options.clients < 1 || options.calls < 0 || options.iterations < 1 {
        bail!("--clients and --iterations must be at least 1, --calls not negative");
    }
    if options.logins < 1 || options.concurrency < 1 {
        bail!("--logins and --concurrency must be at least 1");
    }
    Ok(options)
}

/// Starts the real application on a free loopback port against `database_url`, in
/// real-provider mode: the Twilio and ElevenLabs settings are dummies on a closed port, and
/// none of the timed endpoints calls a provider.
async fn start_application(database_url: &str) -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let public_url = format!("http://127.0.0.1:{port}");
    let port_text = port.to_string();
    let env: HashMap<String, String> = [
        ("OUTCALL__SERVER__PORT", port_text.as_str()),
        ("OUTCALL__SERVER__PUBLIC_URL", public_url.as_str()),
        ("OUTCALL__DATABASE__URL", database_url),
        ("OUTCALL__AUTH__JWT_SECRET", JWT_SECRET),
        ("OUTCALL__ADMIN__USERNAME", ADMIN_USERNAME),
        ("OUTCALL__ADMIN__PASSWORD", ADMIN_PASSWORD),
        ("OUTCALL__SANDBOX__ENABLED", "false"),
        (
            "OUTCALL__TWILIO__ACCOUNT_SID",
            "AC0123456789abcdef0123456789abcdef",
        ),
        ("OUTCALL__TWILIO__AUTH_TOKEN", "bench-twilio-auth-token"),
        // Nothing listens on port 9: a provider call (none is expected) fails at once.
        ("OUTCALL__TWILIO__API_BASE", "http://127.0.0.1:9"),
        ("OUTCALL__ELEVENLABS__API_KEY", "bench-elevenlabs-key"),
        ("OUTCALL__ELEVENLABS__API_BASE", "http://127.0.0.1:9"),
        (
            "OUTCALL__ELEVENLABS__WEBHOOK_SECRET",
            "bench-webhook-secret",
        ),
        // The seeded completed calls carry a conversation id but no report (`analysis_at`):
        // the fallback that fetches missed reports would see 550,000 of them as a backlog and
        // ask the dummy ElevenLabs every minute. Off, so it cannot disturb the timings.
        ("OUTCALL__ANALYSIS__FETCH_MISSED_AFTER_MINUTES", "0"),
        // `--logins` client logins plus the admin's, within seconds.
        ("OUTCALL__HTTP__LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
        ("OUTCALL__HTTP__LOGIN_PER_ADDRESS_PER_MINUTE", "100000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = Settings::load_from(None, Environment::default().source(Some(env)))
        .map_err(|e| anyhow::anyhow!("bench settings: {e}"))?;
    println!(
        "application: PostgreSQL pool of {} connections (database.max_connections)",
        settings.database.max_connections
    );
    let app = Application::build(settings).await?;
    ensure!(app.port() == port, "the application bound another port");
    tokio::spawn(app.run_until_stopped());
    Ok(public_url)
}

/// What a timed request needs: who asks, what, and how to check a sample answer.
#[derive(Clone, Copy)]
struct Endpoint {
    name: &'static str,
    /// The path and query; `{id}` is replaced by a seeded client id.
    path: &'static str,
    who: Who,
    check: fn(&Value) -> bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The admin token.
    Admin,
    /// The token of a random logged-in client.
    Client,
    /// The admin token, `{id}` a random seeded client (any status).
    AdminForClient,
    Nobody,
}

fn endpoints() -> Vec<Endpoint> {
    let calls_page = |v: &Value| {
        v["total"].as_u64().is_some_and(|t| t > 0) && v["callHistory"].as_array().is_some()
    };
    vec![
        Endpoint {
            name: "GET /healthz (no database: the HTTP floor)",
            path: "/healthz",
            who: Who::Nobody,
            check: |v| v["status"] == "ok",
        },
        Endpoint {
            name: "GET /admin/dashboard",
            path: "/admin/dashboard",
            who: Who::Admin,
            check: |v| v["calls"]["total"].as_u64().is_some_and(|t| t > 0),
        },
        Endpoint {
            name: "GET /admin/activity (7 days, 10)",
            path: "/admin/activity",
            who: Who::Admin,
            check: |v| v["count"] == 10,
        },
        Endpoint {
            name: "GET /secure/call-stats",
            path: "/secure/call-stats",
            who: Who::Client,
            check: |v| v["stats"]["totalCalls"].as_u64().is_some_and(|t| t > 0),
        },
        Endpoint {
            name: "GET /secure/calls (first page, 20)",
            path: "/secure/calls",
            who: Who::Client,
            check: calls_page,
        },
        Endpoint {
            name: "GET /secure/calls?status=completed",
            path: "/secure/calls?status=completed",
            who: Who::Client,
            check: calls_page,
        },
        Endpoint {
            name: "GET /secure/calls?offset=500",
            path: "/secure/calls?offset=500",
            who: Who::Client,
            check: calls_page,
        },
        Endpoint {
            name: "GET /admin/clients/{id}/calls (first page)",
            path: "/admin/clients/{id}/calls",
            who: Who::AdminForClient,
            check: calls_page,
        },
        Endpoint {
            name: "GET /admin/clients (first page, 10)",
            path: "/admin/clients",
            who: Who::Admin,
            check: |v| v.to_string().contains("bench-client-"),
        },
        Endpoint {
            name: "GET /admin/clients?search=business%204",
            path: "/admin/clients?search=business%204",
            who: Who::Admin,
            check: |v| v.to_string().contains("bench-client-"),
        },
    ]
}

/// Everything a request needs, shared by the sequential and the concurrent runs.
struct Target {
    http: reqwest::Client,
    base: String,
    admin: String,
    /// Tokens of logged-in active clients.
    clients: Vec<String>,
    /// How many clients were seeded.
    seeded: i64,
}

impl Target {
    /// Builds a request to `endpoint` for a random client, sends it, reads the whole body.
    /// Returns the time from send to the last byte, and the body.
    async fn request(
        &self,
        endpoint: &Endpoint,
        rng: &mut Lcg,
    ) -> anyhow::Result<(Duration, Vec<u8>)> {
        let mut path = endpoint.path.to_owned();
        let token = match endpoint.who {
            Who::Admin => Some(self.admin.as_str()),
            Who::Nobody => None,
            Who::Client => {
                let i = rng.below(i64::try_from(self.clients.len())?);
                Some(self.clients[usize::try_from(i)?].as_str())
            }
            Who::AdminForClient => {
                let id = bench::client_id(rng.below(self.seeded))?;
                path = path.replace("{id}", id.as_str());
                Some(self.admin.as_str())
            }
        };
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let request = request.build()?;
        let started = Instant::now();
        let response = self.http.execute(request).await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        ensure!(
            status.is_success(),
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok((elapsed, body.to_vec()))
    }
}

/// Logs the admin in, then gives `count` active seeded clients a new secret and logs each in.
async fn tokens(base: &str, seeded: i64, count: usize) -> anyhow::Result<(String, Vec<String>)> {
    let api = Api::new(base);
    let admin = api.admin_login(ADMIN_USERNAME, ADMIN_PASSWORD).await?;
    let started = Instant::now();
    let mut rng = Lcg(7);
    let mut chosen = Vec::new();
    // Distinct active clients, spread over the whole range.
    let active = (0..seeded)
        .filter(|n| bench::client_status(*n) == ClientStatus::Active)
        .count();
    ensure!(active > 0, "no active client among the seeded ones");
    while chosen.len() < count.min(active) {
        let n = rng.below(seeded);
        if bench::client_status(n) == ClientStatus::Active && !chosen.contains(&n) {
            chosen.push(n);
        }
    }
    let mut tokens = Vec::with_capacity(chosen.len());
    for n in chosen {
        let id = bench::client_id(n)?;
        let id = id.as_str();
        let reset = api
            .send(
                reqwest::Method::POST,
                &format!("/admin/clients/{id}/reset-secret"),
                Some(&admin),
                None,
            )
            .await?;
        ensure!(
            reset.status == 200,
            "reset-secret {id}: {} {}",
            reset.status,
            reset.body
        );
        let secret = reset.body["client"]["clientSecret"]
            .as_str()
            .context("reset-secret: no clientSecret")?;
        let token = api.client_login(id, secret).await?;
        tokens.push(token);
    }
    println!(
        "admin logged in; {} clients given a new secret and logged in, in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((admin, tokens))
}

/// Each endpoint alone, one request at a time over one keep-alive connection.
async fn sequential(target: &Target, iterations: usize) -> anyhow::Result<Vec<(Timing, usize)>> {
    let mut rng = Lcg(42);
    let mut results = Vec::new();
    for endpoint in endpoints() {
        let mut bytes = 0;
        for _ in 0..iterations.div_ceil(10) {
            let (_, body) = target.request(&endpoint, &mut rng).await?;
            let value: Value = serde_json::from_slice(&body)
                .with_context(|| format!("{}: not JSON", endpoint.name))?;
            ensure!(
                (endpoint.check)(&value),
                "{}: unexpected answer {value}",
                endpoint.name
            );
            bytes = body.len();
        }
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            samples.push(target.request(&endpoint, &mut rng).await?.0);
        }
        results.push((
            Timing {
                name: endpoint.name.to_owned(),
                samples,
            },
            bytes,
        ));
    }
    Ok(results)
}

/// `concurrency` loops, each sending the next request as soon as the previous answered,
/// cycling through the database endpoints, for `seconds`.
async fn concurrent(
    target: Arc<Target>,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<(Duration, Vec<Timing>)> {
    let mix: Vec<Endpoint> = endpoints()
        .into_iter()
        .filter(|e| e.who != Who::Nobody)
        .collect();
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (target, mix) = (target.clone(), mix.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Lcg(1000 + worker as u64);
            let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); mix.len()];
            let mut next = worker % mix.len();
            while Instant::now() < stop {
                let (elapsed, _) = target.request(&mix[next], &mut rng).await?;
                samples[next].push(elapsed);
                next = (next + 1) % mix.len();
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); mix.len()];
    for worker in workers {
        for (i, samples) in worker.await??.into_iter().enumerate() {
            all[i].extend(samples);
        }
    }
    let wall = started.elapsed();
    let mut timings: Vec<Timing> = mix
        .iter()
        .zip(all)
        .map(|(e, samples)| Timing {
            name: e.name.to_owned(),
            samples,
        })
        .collect();
    timings.insert(
        0,
        Timing {
            name: "all requests".to_owned(),
            samples: timings.iter().flat_map(|t| t.samples.clone()).collect(),
        },
    );
    Ok((wall, timings))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let data = DataSet {
        calls: options.calls,
        clients: options.clients,
        vacuum: !options.skip_vacuum,
    };
    let store = bench::open(&options.database_url, &data, options.reuse, 1).await?;
    println!("{}", bench::describe(&store).await?);
    store.pool().close().await;

    let base = start_application(&bench::database_url(&options.database_url)?).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency.max(1))
        .tcp_nodelay(true)
        .build()?;
    let (admin, clients) = tokens(&base, options.clients, options.logins).await?;
    let target = Arc::new(Target {
        http,
        base,
        admin,
        clients,
        seeded: options.clients,
    });

    println!(
        "\n{} CPUs, load average before the timings: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let results = sequential(&target, options.iterations).await?;
    println!();
    println!("| endpoint (over HTTP, one at a time) | median ms | p95 ms | max ms | body bytes |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (timing, bytes) in &results {
        println!("{} {bytes} |", timing.table_row());
    }
    println!(
        "\n{} timed requests each, after {} untimed; load average: {}",
        options.iterations,
        options.iterations.div_ceil(10),
        load_average()
    );

    let (wall, timings) = concurrent(target.clone(), options.concurrency, options.seconds).await?;
    let total = timings.first().map_or(0, |t| t.samples.len());
    println!(
        "\n{} in flight for {:.1} s over the {} database endpoints in turn: {} requests, {:.0} requests/s",
        options.concurrency,
        wall.as_secs_f64(),
        timings.len() - 1,
        total,
        total as f64 / wall.as_secs_f64()
    );
    println!();
    println!("| endpoint (concurrent) | requests | median ms | p95 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for t in &timings {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            t.name,
            t.samples.len(),
            ms(t.percentile(0.5)),
            ms(t.percentile(0.95)),
            ms(t.max())
        );
    }
    println!("\nload average after: {}", load_average());
    Ok(())
}
