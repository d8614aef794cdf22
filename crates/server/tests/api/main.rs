//! API integration tests: the real application (HTTP, argon2id, JWT, PostgreSQL) over HTTP.
//! Needs `DATABASE_URL` to point at a PostgreSQL server (the README test command starts one);
//! every test gets a database of its own.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod auth;
mod bridge;
mod calls;
mod clients;
mod fallback;
mod helpers;
mod logs;
mod metrics;
mod post_call;
mod twilio;
