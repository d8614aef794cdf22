//! OpenAPI schemas of wire values the DTOs cannot derive one for: instants and the names of
//! the domain's enumerations, listed from the domain itself (`ALL`) so the document cannot
//! drift from what the API accepts and writes.

use outcall_domain::{CallOutcome, CallStatus, ClientStatus, Sentiment};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{RefOr, schema};

use crate::time::Millis;

impl utoipa::PartialSchema for Millis {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("An instant: RFC 3339, UTC, milliseconds, `Z`."))
            .examples(["2025-03-20T12:00:00.000Z"])
            .into()
    }
}

impl utoipa::ToSchema for Millis {
    fn name() -> std::borrow::Cow<'static, str> {
        "Instant".into()
    }
}

fn names(names: impl IntoIterator<Item = &'static str>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
}

/// `Active`, `Inactive` or `Suspended`.
pub fn client_status() -> Schema {
    names(
        ClientStatus::ALL.map(ClientStatus::as_str),
        "The client's status.",
    )
    .build()
    .into()
}

/// One of the call statuses (`initiated`, `ringing`, ... `completed`).
pub fn call_status() -> Schema {
    names(
        CallStatus::ALL.map(CallStatus::as_str),
        "The call's status.",
    )
    .build()
    .into()
}

pub fn call_outcome() -> Schema {
    names(
        CallOutcome::ALL.map(CallOutcome::as_str),
        "What the call achieved.",
    )
    .build()
    .into()
}

pub fn sentiment() -> Schema {
    names(
        Sentiment::ALL.map(Sentiment::as_str),
        "The callee's sentiment.",
    )
    .build()
    .into()
}

/// A count per name: every name of the set is present (0 when none).
fn tally(keys: impl IntoIterator<Item = &'static str>, what: &str) -> Schema {
    let count = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
    };
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!("Calls per {what}; every key is present.")))
        .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)));
    for key in keys {
        object = object.property(key, count()).required(key);
    }
    object.build().into()
}

pub fn calls_by_status() -> Schema {
    tally(CallStatus::ALL.map(CallStatus::as_str), "status")
}

pub fn calls_by_outcome() -> Schema {
    tally(CallOutcome::ALL.map(CallOutcome::as_str), "outcome")
}

pub fn calls_by_sentiment() -> Schema {
    tally(Sentiment::ALL.map(Sentiment::as_str), "sentiment")
}
