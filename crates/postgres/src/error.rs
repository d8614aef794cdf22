//! The one place where `sqlx::Error` becomes a domain error.

use std::fmt::Display;

use outcall_domain::ports::{RepositoryError, UniqueField};

/// Unique constraints the domain has a name for (see `migrations/0001_initial_schema.sql`).
fn unique_field(constraint: &str) -> Option<UniqueField> {
    match constraint {
        "clients_pkey" => Some(UniqueField::ClientId),
        "clients_email_normalized_key" => Some(UniqueField::Email),
        "calls_pkey" => Some(UniqueField::CallId),
        "calls_call_sid_key" => Some(UniqueField::CallSid),
        "admins_pkey" => Some(UniqueField::AdminUsername),
        _ => None,
    }
}

/// A unique violation on a known constraint is `Duplicate`; anything else is `Unexpected`
/// with `context` saying what was being done.
pub(crate) fn classify<C>(err: sqlx::Error, context: C) -> RepositoryError
where
    C: Display + Send + Sync + 'static,
{
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
        && let Some(field) = db.constraint().and_then(unique_field)
    {
        return RepositoryError::Duplicate(field);
    }
    RepositoryError::Unexpected(anyhow::Error::new(err).context(context))
}

/// A row that cannot be turned into a domain value (corrupt data, schema drift).
pub(crate) fn corrupt<C>(err: anyhow::Error, context: C) -> RepositoryError
where
    C: Display + Send + Sync + 'static,
{
    RepositoryError::Unexpected(err.context(context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_unique_field_has_a_constraint() {
        let named = [
            "clients_pkey",
            "clients_email_normalized_key",
            "calls_pkey",
            "calls_call_sid_key",
            "admins_pkey",
        ]
        .map(unique_field);
        assert_eq!(
            named,
            [
                Some(UniqueField::ClientId),
                Some(UniqueField::Email),
                Some(UniqueField::CallId),
                Some(UniqueField::CallSid),
                Some(UniqueField::AdminUsername),
            ]
        );
        assert_eq!(unique_field("revoked_tokens_pkey"), None);
    }

    #[test]
    fn a_non_database_error_is_unexpected_with_its_context() {
        let err = classify(sqlx::Error::RowNotFound, "reading client c1");
        match err {
            RepositoryError::Unexpected(e) => assert_eq!(e.to_string(), "reading client c1"),
            RepositoryError::Duplicate(field) => panic!("not a duplicate: {field:?}"),
        }
    }
}
