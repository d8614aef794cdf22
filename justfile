# Thin aliases for the commands in README.md and docs/. Install just with `pip install rust-just`.

# Run the service on the embedded SQLite default.
run *ARGS:
    cargo run --release -p outcall -- serve {{ARGS}}

# The whole test suite with a throw-away PostgreSQL (README test command).
test *ARGS:
    scripts/test {{ARGS}}

# Walk through the product against a running server (start it with `just run` first).
demo *ARGS:
    cargo run --release -p outcall -- demo {{ARGS}}

# What CI runs: fmt, clippy, dependency rules, tests.
ci:
    .ci/run

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    scripts/check-deps

fmt:
    cargo fmt --all

# A shell (or any command) with DATABASE_URL pointing at a throw-away PostgreSQL.
db-up *CMD="bash":
    scripts/with-postgres {{CMD}}

# Repository query benchmark on 1,000,000 calls (see docs/benchmarks.md).
bench-db *ARGS:
    scripts/with-postgres cargo run --release -p outcall-postgres --features bench --example bench_queries -- {{ARGS}}

# The same data set through HTTP against the real server (see docs/benchmarks.md).
bench-api *ARGS:
    scripts/with-postgres cargo run --release -p outcall --example bench_api -- {{ARGS}}

# Media bridge under load: N concurrent emulated calls at 50 frames/s each way (see docs/benchmarks.md).
bench-bridge *ARGS:
    cargo run --release -p outcall --example bench_bridge -- {{ARGS}}

# The same at several loads, interleaved over rounds, with the spread of p99 per load.
bench-bridge-sweep *ARGS:
    scripts/bench-bridge-sweep {{ARGS}}
