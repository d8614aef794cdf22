//! The benchmark data set (cargo feature `bench`, off by default; not part of the service):
//! a database `outcall_bench` with many deterministic calls over many clients, and the small
//! timing helpers the benchmarks share. Used by this crate's `bench_queries` example (the
//! repository queries) and by the server's `bench_api` example (the same reads over HTTP).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use outcall_domain::ports::ClientRepository;
use outcall_domain::{
    AgentId, BoundedText, Client, ClientId, ClientMeta, ClientStatus, Email, PhoneNumber,
    SecretHash,
};
use sqlx::Row as _;

use crate::PgStore;

/// The database the benchmarks (re)create on the server they are pointed at.
pub const DATABASE: &str = "outcall_bench";
const SEED_BATCH: i64 = 100_000;

/// How big the data set is, and whether to leave it as autovacuum eventually would.
#[derive(Debug, Clone, Copy)]
pub struct DataSet {
    pub calls: i64,
    pub clients: i64,
    /// `CHECKPOINT`, `VACUUM`, `ANALYZE` after the load; `false` runs `ANALYZE` only (the
    /// state right after a bulk load, before autovacuum has set the visibility map).
    pub vacuum: bool,
}

/// `server` (`postgres://user@host:port/any?query`) with the path replaced by [`DATABASE`].
///
/// # Errors
/// When the URL has no scheme.
pub fn database_url(server: &str) -> anyhow::Result<String> {
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

/// The id of seeded client number `n` (`0..clients`).
///
/// # Errors
/// Never for `n >= 0`.
pub fn client_id(n: i64) -> anyhow::Result<ClientId> {
    Ok(ClientId::parse(&format!("bench-client-{n:05}"))?)
}

/// The status of seeded client number `n`: one in ten Inactive, one in ten Suspended.
pub fn client_status(n: i64) -> ClientStatus {
    match n % 10 {
        0 => ClientStatus::Inactive,
        1 => ClientStatus::Suspended,
        _ => ClientStatus::Active,
    }
}

fn bench_client(n: i64, now: DateTime<Utc>) -> anyhow::Result<Client> {
    Ok(Client {
        id: client_id(n)?,
        status: client_status(n),
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

/// Opens [`DATABASE`] on the server `server_url` points at (a user that may create
/// databases), migrated and seeded with `data`: recreated and seeded unless `reuse` is set
/// and the database already exists (then it is taken as it is). The pool has at most
/// `max_connections` connections.
///
/// # Errors
/// When the server cannot be reached or a statement fails.
pub async fn open(
    server_url: &str,
    data: &DataSet,
    reuse: bool,
    max_connections: u32,
) -> anyhow::Result<PgStore> {
    let server = PgStore::connect(server_url, 1).await?;
    let exists: bool =
        sqlx::query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present")
            .bind(DATABASE)
            .fetch_one(server.pool())
            .await?
            .try_get("present")?;
    let seed_needed = !(reuse && exists);
    if seed_needed {
        // The name is a constant of this module. Two statements: neither may run inside the
        // implicit transaction of a multi-statement query.
        for sql in [
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(server.pool())
                .await
                .context("recreating the bench database")?;
        }
    } else {
        println!("reusing the existing database {DATABASE} (--reuse)");
    }
    server.pool().close().await;

    let store = PgStore::connect(&database_url(server_url)?, max_connections).await?;
    store.migrate().await?;
    if seed_needed {
        seed(&store, data, Utc::now()).await?;
    }
    Ok(store)
}

async fn seed(store: &PgStore, data: &DataSet, now: DateTime<Utc>) -> anyhow::Result<()> {
    let hash = SecretHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$YmVuY2g$YmVuY2g".into());
    let started = Instant::now();
    for n in 0..data.clients {
        ClientRepository::insert(store, &bench_client(n, now)?, &hash).await?;
    }
    println!(
        "seeded {} clients in {:.1} s",
        data.clients,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut from = 1;
    while from <= data.calls {
        let to = (from + SEED_BATCH - 1).min(data.calls);
        sqlx::query(SEED_CALLS)
            .bind(from)
            .bind(to)
            .bind(data.clients)
            .bind(now)
            .bind(data.calls)
            .execute(store.pool())
            .await
            .context("seeding calls")?;
        eprint!("\r  {to} calls");
        from = to + 1;
    }
    eprintln!();
    println!(
        "seeded {} calls in {:.1} s (tallies kept by the triggers)",
        data.calls,
        started.elapsed().as_secs_f64()
    );
    if !data.vacuum {
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

/// One line on what the database holds: server version, calls, sizes, visibility.
///
/// # Errors
/// When the query fails.
pub async fn describe(store: &PgStore) -> anyhow::Result<String> {
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

/// A small deterministic generator, so runs are comparable.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        i64::try_from((self.0 >> 33) % n.unsigned_abs()).unwrap_or(0)
    }
}

/// The timed runs of one operation.
#[derive(Debug, Clone)]
pub struct Timing {
    pub name: String,
    pub samples: Vec<Duration>,
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Timing {
    /// The sample at rank `p` (0..=1) of the sorted samples (nearest rank).
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = (p * (sorted.len().saturating_sub(1)) as f64).round() as usize;
        sorted.get(rank).copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.samples.iter().max().copied().unwrap_or_default()
    }

    /// `| name | median | p95 | max |`, in milliseconds.
    pub fn table_row(&self) -> String {
        format!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            self.name,
            ms(self.percentile(0.5)),
            ms(self.percentile(0.95)),
            ms(self.max())
        )
    }
}

/// Runs `op` `iterations / 10` (rounded up) times untimed, then `iterations` times timed, one
/// at a time.
///
/// # Errors
/// The first error of `op`.
pub async fn time<F, Fut>(
    name: impl Into<String>,
    iterations: usize,
    rng: &mut Lcg,
    mut op: F,
) -> anyhow::Result<Timing>
where
    F: FnMut(&mut Lcg) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = name.into();
    for _ in 0..iterations.div_ceil(10) {
        op(rng)
            .await
            .with_context(|| format!("warming up {name}"))?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        op(rng).await.with_context(|| format!("timing {name}"))?;
        samples.push(started.elapsed());
    }
    Ok(Timing { name, samples })
}
