//! Seeds a database with many calls and times every read the API makes through the
//! `PgStore` port methods (median and p95 of many runs), plus the two call writes.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p outcall-postgres --example bench_queries -- \
//!   --calls 1000000 --clients 1000 [--iterations 300] [--reuse] [--skip-vacuum]
//! ```
//!
//! `DATABASE_URL` (or `--database-url`) names a server where the user may create databases;
//! the benchmark (re)creates the database `outcall_bench` there. `--reuse` keeps an existing,
//! already seeded `outcall_bench` and only runs the timings. `--skip-vacuum` times the state
//! right after the bulk load, before (auto)vacuum has set the visibility map.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use outcall_domain::ports::{CallRepository, CasOutcome, ClientRepository};
use outcall_domain::queries::{CallListQuery, ClientListQuery, SearchTerm};
use outcall_domain::{
    AgentId, BoundedText, Call, CallData, CallDetails, CallId, CallStatus, Client, ClientId,
    ClientMeta, ClientStatus, Email, PhoneNumber, SecretHash,
};
use outcall_postgres::PgStore;
use sqlx::Row as _;

const DATABASE: &str = "outcall_bench";
const SEED_BATCH: i64 = 100_000;

struct Options {
    calls: i64,
    clients: i64,
    iterations: usize,
    database_url: String,
    reuse: bool,
    skip_vacuum: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        calls: 1_000_000,
        clients: 1_000,
        iterations: 300,
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
    Ok(options)
}

fn database_url(server: &str) -> anyhow::Result<String> {
    // Replace the path of postgres://user@host:port/path?query with our database.
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let scheme_end = base.find("://").context("DATABASE_URL has no scheme")? + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{DATABASE}", &base[..host_end]);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

fn client_id(n: i64) -> anyhow::Result<ClientId> {
    Ok(ClientId::parse(&format!("bench-client-{n:05}"))?)
}

fn bench_client(n: i64, now: DateTime<Utc>) -> anyhow::Result<Client> {
    Ok(Client {
        id: client_id(n)?,
        status: match n % 10 {
            0 => ClientStatus::Inactive,
            1 => ClientStatus::Suspended,
            _ => ClientStatus::Active,
        },
        agent_id: AgentId::parse("agent_bench")?,
        twilio_phone_number: PhoneNumber::parse("+18005550100")?,
        meta: ClientMeta {
            full_name: BoundedText::parse(&format!("Owner {n}"), 200)?,
            email: Email::parse(&format!("owner{n}@bench.example"))?,
            phone: PhoneNumber::parse(&format!("+1212555{:04}", n % 10_000))?,
            business_name: Some(BoundedText::parse(&format!("Business {}", n % 97), 200)?),
            city: None,
            job_title: None,
            notes: None,
        },
        token_version: 0,
        created_at: now - chrono::Duration::minutes(n),
        updated_at: now,
    })
}

/// One statement per batch: every value is derived from the row number with `hashint8`, so
/// the data set is the same on every run. Start times spread evenly over the last 180 days in
/// insertion order (calls are recorded as they happen), with up to two minutes of jitter; about
/// 55% of calls completed (with duration, outcome, sentiment and summary), the rest spread
/// over the other statuses.
const SEED_CALLS: &str = "
    INSERT INTO calls (call_id, client_id, call_sid, phone, from_number, agent_id, start_time,
        end_time, duration, status, conversation_id, outcome, summary, sentiment,
        created_at, updated_at, version)
    SELECT 'bench-call-' || g.i,
           'bench-client-' || lpad((g.i % $3)::TEXT, 5, '0'),
           CASE WHEN s.status <> 'queued' THEN 'CA' || md5(g.i::TEXT) END,
           '+1415555' || lpad((g.i % 10000)::TEXT, 4, '0'),
           '+18005550100', 'agent_bench', t.start_time,
           CASE WHEN s.done THEN t.start_time + make_interval(secs => d.seconds) END,
           CASE WHEN s.status = 'completed' THEN d.seconds END,
           s.status,
           CASE WHEN s.status = 'completed' THEN 'conv_' || g.i END,
           CASE WHEN s.status = 'completed' THEN (ARRAY['interested', 'not-interested',
                'callback', 'unavailable', 'unknown'])[1 + (h.c % 5)] END,
           CASE WHEN s.status = 'completed' THEN 'Bench call summary ' || g.i END,
           CASE WHEN s.status = 'completed' AND h.d % 10 < 8 THEN (ARRAY['positive',
                'neutral', 'negative', 'unknown'])[1 + (h.d % 4)] END,
           t.start_time, t.start_time, 0
    FROM generate_series($1::BIGINT, $2::BIGINT) AS g(i)
    CROSS JOIN LATERAL (SELECT
        (hashint8(g.i * 4)::BIGINT + 2147483648) AS a,
        (hashint8(g.i * 4 + 1)::BIGINT + 2147483648) AS b,
        (hashint8(g.i * 4 + 2)::BIGINT + 2147483648) AS c,
        (hashint8(g.i * 4 + 3)::BIGINT + 2147483648) AS d) h
    CROSS JOIN LATERAL (SELECT $4::TIMESTAMPTZ - make_interval(secs =>
        (($5::BIGINT - g.i) * (180 * 86400.0) / $5::BIGINT + h.a % 120)::DOUBLE PRECISION)
        AS start_time) t
    CROSS JOIN LATERAL (SELECT (10 + h.c % 600)::INTEGER AS seconds) d
    CROSS JOIN LATERAL (SELECT x.status, x.status NOT IN
            ('queued', 'initiated', 'ringing', 'in-progress') AS done
        FROM (SELECT CASE
            WHEN h.b % 100 < 55 THEN 'completed'
            WHEN h.b % 100 < 65 THEN 'no-answer'
            WHEN h.b % 100 < 72 THEN 'busy'
            WHEN h.b % 100 < 78 THEN 'failed'
            WHEN h.b % 100 < 81 THEN 'canceled'
            WHEN h.b % 100 < 84 THEN 'in-progress'
            WHEN h.b % 100 < 88 THEN 'ringing'
            WHEN h.b % 100 < 92 THEN 'initiated'
            ELSE 'queued' END AS status) x) s";

async fn seed(store: &PgStore, options: &Options, now: DateTime<Utc>) -> anyhow::Result<()> {
    let hash = SecretHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$YmVuY2g$YmVuY2g".into());
    let started = Instant::now();
    for n in 0..options.clients {
        ClientRepository::insert(store, &bench_client(n, now)?, &hash).await?;
    }
    println!(
        "seeded {} clients in {:.1} s",
        options.clients,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut from = 1;
    while from <= options.calls {
        let to = (from + SEED_BATCH - 1).min(options.calls);
        sqlx::query(SEED_CALLS)
            .bind(from)
            .bind(to)
            .bind(options.clients)
            .bind(now)
            .bind(options.calls)
            .execute(store.pool())
            .await
            .context("seeding calls")?;
        eprint!("\r  {to} calls");
        from = to + 1;
    }
    eprintln!();
    println!(
        "seeded {} calls in {:.1} s (tallies kept by the triggers)",
        options.calls,
        started.elapsed().as_secs_f64()
    );
    if options.skip_vacuum {
        // Only statistics: the state right after a bulk load, before autovacuum caught up.
        sqlx::raw_sql("ANALYZE clients, calls, call_tallies")
            .execute(store.pool())
            .await
            .context("analyzing")?;
        println!("ANALYZE only (--skip-vacuum): visibility map not set");
        return Ok(());
    }
    let started = Instant::now();
    // As autovacuum eventually would: a set visibility map and fresh statistics. VACUUM marks
    // a page all-visible only once its rows' commit records are flushed (hint bits); with
    // synchronous_commit=off (as in scripts/with-postgres) CHECKPOINT makes sure of that, and
    // ANALYZE comes after VACUUM because its own asynchronous commit would delay it again.
    for sql in [
        "CHECKPOINT",
        "VACUUM clients, calls, call_tallies",
        "ANALYZE clients, calls, call_tallies",
    ] {
        sqlx::raw_sql(sql)
            .execute(store.pool())
            .await
            .with_context(|| format!("running {sql}"))?;
    }
    println!(
        "CHECKPOINT, VACUUM, ANALYZE in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        i64::try_from((self.0 >> 33) % n.unsigned_abs()).unwrap_or(0)
    }
}

struct Timing {
    name: &'static str,
    samples: Vec<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Timing {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = (p * (sorted.len() - 1) as f64).round() as usize;
        sorted.get(rank).copied().unwrap_or_default()
    }
}

/// Runs `op` a few times untimed, then `iterations` times timed.
async fn time<F, Fut>(
    name: &'static str,
    iterations: usize,
    rng: &mut Lcg,
    mut op: F,
) -> anyhow::Result<Timing>
where
    F: FnMut(&mut Lcg) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..iterations.div_ceil(10) {
        op(rng).await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        op(rng).await?;
        samples.push(started.elapsed());
    }
    Ok(Timing { name, samples })
}

async fn run_timings(store: &PgStore, options: &Options) -> anyhow::Result<Vec<Timing>> {
    let now = Utc::now();
    let week_ago = now - chrono::Duration::days(7);
    let n = options.iterations;
    let clients = options.clients;
    let mut rng = Lcg(42);
    let page = |status, offset| CallListQuery {
        status,
        limit: 20,
        offset,
    };
    let mut timings = Vec::new();

    timings.push(
        time("call history page (limit 20, offset 0)", n, &mut rng, |r| {
            let id = client_id(r.below(clients));
            async move {
                let page = store.list_for_client(&id?, &page(None, 0)).await?;
                anyhow::ensure!(page.total == 0 || !page.calls.is_empty(), "empty page");
                Ok(())
            }
        })
        .await?,
    );
    timings.push(
        time("call history page, status=completed", n, &mut rng, |r| {
            let id = client_id(r.below(clients));
            async move {
                let query = page(Some(CallStatus::Completed), 0);
                store.list_for_client(&id?, &query).await?;
                Ok(())
            }
        })
        .await?,
    );
    timings.push(
        time("call history page, offset 500", n, &mut rng, |r| {
            let id = client_id(r.below(clients));
            async move {
                store.list_for_client(&id?, &page(None, 500)).await?;
                Ok(())
            }
        })
        .await?,
    );
    timings.push(
        time("stats_for_client (/secure/call-stats)", n, &mut rng, |r| {
            let id = client_id(r.below(clients));
            async move {
                store.stats_for_client(&id?).await?;
                Ok(())
            }
        })
        .await?,
    );
    timings.push(
        time(
            "dashboard: calls (tallies + recent count)",
            n,
            &mut rng,
            |_| async move {
                store.dashboard(week_ago).await?;
                Ok(())
            },
        )
        .await?,
    );
    timings.push(
        time(
            "dashboard: clients by status",
            n,
            &mut rng,
            |_| async move {
                store.count_by_status().await?;
                Ok(())
            },
        )
        .await?,
    );
    timings.push(
        time(
            "/admin/dashboard (both, in sequence)",
            n,
            &mut rng,
            |_| async move {
                store.count_by_status().await?;
                store.dashboard(week_ago).await?;
                Ok(())
            },
        )
        .await?,
    );
    timings.push(
        time("recent_activity(7 days, 10)", n, &mut rng, |_| async move {
            let activity = store.recent_activity(week_ago, 10).await?;
            anyhow::ensure!(activity.len() == 10, "expected 10 activities");
            Ok(())
        })
        .await?,
    );
    timings.push(
        time(
            "list clients, search \"business 4\"",
            n,
            &mut rng,
            |_| async move {
                let query = ClientListQuery {
                    status: None,
                    search: SearchTerm::parse("business 4")?,
                    limit: 10,
                    offset: 0,
                };
                store.list(&query).await?;
                Ok(())
            },
        )
        .await?,
    );
    timings.push(
        time(
            "list clients, status Active, page 3",
            n,
            &mut rng,
            |_| async move {
                let query = ClientListQuery {
                    status: Some(ClientStatus::Active),
                    search: None,
                    limit: 10,
                    offset: 20,
                };
                store.list(&query).await?;
                Ok(())
            },
        )
        .await?,
    );

    // Writes: each fires the tally trigger.
    let mut inserted = Vec::with_capacity(n + n / 10 + 1);
    let mut counter = 0_i64;
    timings.push(
        time("insert a call", n, &mut rng, |r| {
            counter += 1;
            let call = (|| -> anyhow::Result<Call> {
                let id = CallId::parse(&format!("bench-new-{}-{counter}", now.timestamp()))?;
                Ok(Call {
                    id,
                    client_id: client_id(r.below(clients))?,
                    data: CallData::new(
                        PhoneNumber::parse("+14155550000")?,
                        now,
                        CallStatus::Queued,
                    ),
                    details: CallDetails::default(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                })
            })();
            if let Ok(call) = &call {
                inserted.push(call.clone());
            }
            async move {
                CallRepository::insert(store, &call?).await?;
                Ok(())
            }
        })
        .await?,
    );
    let mut next = inserted.into_iter();
    timings.push(
        time("update a call (compare-and-set)", n, &mut rng, |_| {
            let call = next.next();
            async move {
                let mut call = call.context("ran out of inserted calls")?;
                call.apply_status(CallStatus::Completed, now);
                call.data.duration = Some(61);
                let outcome = CallRepository::update(store, &call).await?;
                anyhow::ensure!(outcome == CasOutcome::Updated, "CAS {outcome:?}");
                Ok(())
            }
        })
        .await?,
    );
    Ok(timings)
}

async fn sizes(store: &PgStore) -> anyhow::Result<String> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM calls) AS calls, \
                (SELECT round(100.0 * relallvisible / greatest(relpages, 1)) FROM pg_class \
                 WHERE relname = 'calls')::BIGINT AS all_visible, \
                (SELECT COUNT(*) FROM call_tallies) AS tallies, \
                pg_size_pretty(pg_total_relation_size('calls')) AS calls_size, \
                pg_size_pretty(pg_total_relation_size('call_tallies')) AS tallies_size, \
                current_setting('server_version') AS version",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(format!(
        "PostgreSQL {}: {} calls ({} with indexes, {}% of pages all-visible), {} tally rows ({})",
        row.try_get::<String, _>("version")?,
        row.try_get::<i64, _>("calls")?,
        row.try_get::<String, _>("calls_size")?,
        row.try_get::<i64, _>("all_visible")?,
        row.try_get::<i64, _>("tallies")?,
        row.try_get::<String, _>("tallies_size")?,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let url = database_url(&options.database_url)?;
    let server = PgStore::connect(&options.database_url, 1).await?;
    let exists: bool =
        sqlx::query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present")
            .bind(DATABASE)
            .fetch_one(server.pool())
            .await?
            .try_get("present")?;
    let seed_needed = !(options.reuse && exists);
    if seed_needed {
        // The name is a constant of this program. Two statements: neither may run inside
        // the implicit transaction of a multi-statement query.
        for sql in [
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(server.pool())
                .await
                .context("recreating the bench database")?;
        }
    }
    server.pool().close().await;

    let store = PgStore::connect(&url, 4).await?;
    store.migrate().await?;
    if seed_needed {
        seed(&store, &options, Utc::now()).await?;
    }
    println!("{}", sizes(&store).await?);

    let timings = run_timings(&store, &options).await?;
    println!();
    println!("| query (through PgStore) | median ms | p95 ms | max ms |");
    println!("| --- | ---: | ---: | ---: |");
    for t in &timings {
        let max = t.samples.iter().max().copied().unwrap_or_default();
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            t.name,
            ms(t.percentile(0.5)),
            ms(t.percentile(0.95)),
            ms(max)
        );
    }
    println!(
        "\n{} timed runs each, after {} untimed.",
        options.iterations,
        options.iterations.div_ceil(10)
    );
    Ok(())
}
