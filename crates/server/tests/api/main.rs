//! API integration tests: the real application (HTTP, argon2id, JWT, PostgreSQL) over HTTP.
//! Needs `DATABASE_URL` to point at a PostgreSQL server (the README test command starts one);
//! every test gets a database of its own.

mod auth;
mod calls;
mod clients;
mod helpers;
mod logs;
