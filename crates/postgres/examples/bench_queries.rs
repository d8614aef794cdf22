//! Seeds a database with many calls and times every read the API makes through the
//! `PgStore` port methods (median and p95 of many runs), plus the two call writes.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p outcall-postgres --features bench --example bench_queries -- \
//!   --calls 1000000 --clients 1000 [--iterations 300] [--reuse] [--skip-vacuum]
//! ```
//!
//! `DATABASE_URL` (or `--database-url`) names a server where the user may create databases;
//! the benchmark (re)creates the database `outcall_bench` there. `--reuse` keeps an existing,
//! already seeded `outcall_bench` and only runs the timings. `--skip-vacuum` times the state
//! right after the bulk load, before (auto)vacuum has set the visibility map. The data set
//! itself is `outcall_postgres::bench` (feature `bench`), shared with the server's `bench_api`.

use anyhow::{Context as _, bail};
use chrono::Utc;
use outcall_domain::ports::{CallRepository, CasOutcome, ClientRepository};
use outcall_domain::queries::{CallListQuery, ClientListQuery, SearchTerm};
use outcall_domain::{Call, CallData, CallDetails, CallId, CallStatus, ClientStatus, PhoneNumber};
use outcall_postgres::PgStore;
use outcall_postgres::bench::{self, DataSet, Lcg, Timing, client_id, time};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let data = DataSet {
        calls: options.calls,
        clients: options.clients,
        vacuum: !options.skip_vacuum,
    };
    let store = bench::open(&options.database_url, &data, options.reuse, 4).await?;
    println!("{}", bench::describe(&store).await?);

    let timings = run_timings(&store, &options).await?;
    println!();
    println!("| query (through PgStore) | median ms | p95 ms | max ms |");
    println!("| --- | ---: | ---: | ---: |");
    for t in &timings {
        println!("{}", t.table_row());
    }
    println!(
        "\n{} timed runs each, after {} untimed.",
        options.iterations,
        options.iterations.div_ceil(10)
    );
    Ok(())
}
