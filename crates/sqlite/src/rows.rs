//! Conversions between rows and domain values, and the one mapping of `sqlx::Error`.
//!
//! Stored strings are parsed back through the domain's constructors, so a corrupt row
//! surfaces as `RepositoryError::Unexpected` naming the record and column, never a panic.

use anyhow::{Context, anyhow};
use chrono::DateTime;
use outcall_domain::Timestamp;
use outcall_domain::ports::{RepositoryError, UniqueField};
use outcall_domain::values::BoundedText;
use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

/// Timestamps are stored as milliseconds since the Unix epoch (the domain's precision).
pub(crate) fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn opt_millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(millis)
}

/// Maps a database error to the port's error: a unique violation names its field, anything
/// else becomes `Unexpected` with `doing` as context.
pub(crate) fn db_error(err: sqlx::Error, doing: &'static str) -> RepositoryError {
    match unique_field(&err) {
        Some(field) => RepositoryError::Duplicate(field),
        None => RepositoryError::Unexpected(anyhow::Error::new(err).context(doing)),
    }
}

/// Which unique field a violation hit. SQLite reports it only in the message:
/// `UNIQUE constraint failed: <table>.<column>`.
fn unique_field(err: &sqlx::Error) -> Option<UniqueField> {
    let db = err.as_database_error()?;
    if !matches!(db.kind(), ErrorKind::UniqueViolation) {
        return None;
    }
    match db.message().strip_prefix("UNIQUE constraint failed: ")? {
        "clients.client_id" => Some(UniqueField::ClientId),
        "clients.email_normalized" => Some(UniqueField::Email),
        "calls.call_id" => Some(UniqueField::CallId),
        "calls.call_sid" => Some(UniqueField::CallSid),
        "admins.username" => Some(UniqueField::AdminUsername),
        _ => None,
    }
}

/// A row that could not be turned back into domain values.
pub(crate) fn corrupt(err: anyhow::Error) -> RepositoryError {
    RepositoryError::Unexpected(err)
}

/// One column, typed.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> anyhow::Result<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column)
        .with_context(|| format!("column {column} has an unexpected type"))
}

/// A required string column parsed by a domain constructor.
pub(crate) fn parse<T, E>(
    row: &SqliteRow,
    column: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let raw: String = get(row, column)?;
    parse(&raw).with_context(|| format!("column {column} holds an invalid value"))
}

/// A nullable string column parsed by a domain constructor.
pub(crate) fn parse_opt<T, E>(
    row: &SqliteRow,
    column: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> anyhow::Result<Option<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let raw: Option<String> = get(row, column)?;
    raw.map(|raw| parse(&raw))
        .transpose()
        .with_context(|| format!("column {column} holds an invalid value"))
}

pub(crate) fn text(
    row: &SqliteRow,
    column: &'static str,
    max: usize,
) -> anyhow::Result<BoundedText> {
    parse(row, column, |raw| BoundedText::parse(raw, max))
}

pub(crate) fn text_opt(
    row: &SqliteRow,
    column: &'static str,
    max: usize,
) -> anyhow::Result<Option<BoundedText>> {
    parse_opt(row, column, |raw| BoundedText::parse(raw, max))
}

pub(crate) fn timestamp(row: &SqliteRow, column: &'static str) -> anyhow::Result<Timestamp> {
    let ms: i64 = get(row, column)?;
    from_millis(ms).with_context(|| format!("column {column} is out of range"))
}

pub(crate) fn timestamp_opt(
    row: &SqliteRow,
    column: &'static str,
) -> anyhow::Result<Option<Timestamp>> {
    let ms: Option<i64> = get(row, column)?;
    ms.map(from_millis)
        .transpose()
        .with_context(|| format!("column {column} is out of range"))
}

fn from_millis(ms: i64) -> anyhow::Result<Timestamp> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| anyhow!("{ms} ms is not a valid instant"))
}

/// A count or sum read from SQL (`i64`) as the domain's `u64`.
pub(crate) fn count(row: &SqliteRow, column: &'static str) -> anyhow::Result<u64> {
    let n: i64 = get(row, column)?;
    u64::try_from(n).with_context(|| format!("column {column} is negative: {n}"))
}

/// A `u64` (offset) as SQLite's `i64`; offsets beyond `i64::MAX` are past any table's end.
pub(crate) fn sql_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}
