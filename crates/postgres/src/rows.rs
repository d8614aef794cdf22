//! Turning rows back into domain values. Every stored value is re-validated, so a corrupt row
//! is an error with the column's name, never a panic or an invalid value.

use anyhow::Context as _;
use outcall_domain::call::limits;
use outcall_domain::{
    AgentId, BoundedText, Call, CallData, CallDetails, CallId, CallOutcome, CallSid, CallStatus,
    Client, ClientId, ClientMeta, ClientStatus, ConversationId, Email, PhoneNumber, Sentiment,
    Timestamp,
};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

/// The columns [`client`] reads, in `SELECT` order.
macro_rules! client_columns {
    () => {
        "client_id, status, agent_id, twilio_phone_number, full_name, email, phone, \
         business_name, city, job_title, notes, token_version, created_at, updated_at"
    };
}
pub(crate) use client_columns;

/// The columns [`call`] reads, in `SELECT` order.
macro_rules! call_columns {
    () => {
        "call_id, client_id, call_sid, request_id, phone, from_number, agent_id, start_time, \
         end_time, duration, status, recording_url, error_code, error_message, \
         conversation_id, answered_by, sip_response_code, first_message, dynamic_variables, \
         end_reason, outcome, summary, transcript, sentiment, next_action, next_action_date, \
         agent_notes, call_successful, agent_duration_secs, analysis_at, created_at, \
         updated_at, version"
    };
}
pub(crate) use call_columns;

pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> anyhow::Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .with_context(|| format!("reading column {column}"))
}

/// Reads a required column and parses it with a domain constructor.
pub(crate) fn parsed<T, E>(
    row: &PgRow,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let raw: String = get(row, column)?;
    parse(&raw).with_context(|| format!("column {column} holds an invalid value"))
}

/// Reads a nullable column and parses it when present.
pub(crate) fn parsed_opt<T, E>(
    row: &PgRow,
    column: &str,
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

fn text(max: usize) -> impl FnOnce(&str) -> Result<BoundedText, outcall_domain::TextError> {
    move |raw| BoundedText::parse(raw, max)
}

/// `INTEGER` seconds back to the domain's `u32`.
fn duration(row: &PgRow, column: &str) -> anyhow::Result<Option<u32>> {
    let raw: Option<i32> = get(row, column)?;
    raw.map(u32::try_from)
        .transpose()
        .with_context(|| format!("column {column} holds a negative duration"))
}

/// The domain's `u32` seconds as an `INTEGER` (the column's range is that of `i32`); `what`
/// names the value in the error.
pub(crate) fn duration_param(duration: Option<u32>, what: &str) -> anyhow::Result<Option<i32>> {
    duration
        .map(i32::try_from)
        .transpose()
        .with_context(|| format!("{what} exceeds the storable range (2^31 - 1 seconds)"))
}

/// `INTEGER` SIP response code back to the domain's `u16`.
fn sip_response_code(row: &PgRow, column: &str) -> anyhow::Result<Option<u16>> {
    let raw: Option<i32> = get(row, column)?;
    raw.map(u16::try_from)
        .transpose()
        .with_context(|| format!("column {column} holds a value outside u16"))
}

/// The domain's SIP response code as an `INTEGER`, refusing what the column's CHECK would
/// (with a clearer message than a constraint violation).
pub(crate) fn sip_response_code_param(code: Option<u16>) -> anyhow::Result<Option<i32>> {
    match code {
        Some(code) if !(100..=699).contains(&code) => {
            anyhow::bail!("SIP response code {code} is outside 100..=699")
        }
        code => Ok(code.map(i32::from)),
    }
}

pub(crate) fn client(row: &PgRow) -> anyhow::Result<Client> {
    Ok(Client {
        id: parsed(row, "client_id", ClientId::parse)?,
        status: parsed(row, "status", ClientStatus::parse)?,
        agent_id: parsed(row, "agent_id", AgentId::parse)?,
        twilio_phone_number: parsed(row, "twilio_phone_number", PhoneNumber::parse)?,
        meta: ClientMeta {
            full_name: parsed(row, "full_name", text(ClientMeta::FULL_NAME_MAX))?,
            email: parsed(row, "email", Email::parse)?,
            phone: parsed(row, "phone", PhoneNumber::parse)?,
            business_name: parsed_opt(row, "business_name", text(ClientMeta::BUSINESS_NAME_MAX))?,
            city: parsed_opt(row, "city", text(ClientMeta::CITY_MAX))?,
            job_title: parsed_opt(row, "job_title", text(ClientMeta::JOB_TITLE_MAX))?,
            notes: parsed_opt(row, "notes", text(ClientMeta::NOTES_MAX))?,
        },
        token_version: get(row, "token_version")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn call(row: &PgRow) -> anyhow::Result<Call> {
    let start_time: Timestamp = get(row, "start_time")?;
    let mut data = CallData::new(
        parsed(row, "phone", PhoneNumber::parse)?,
        start_time,
        parsed(row, "status", CallStatus::parse)?,
    );
    data.call_sid = parsed_opt(row, "call_sid", CallSid::parse)?;
    data.request_id = parsed_opt(row, "request_id", text(limits::REQUEST_ID))?;
    data.from = parsed_opt(row, "from_number", PhoneNumber::parse)?;
    data.agent_id = parsed_opt(row, "agent_id", AgentId::parse)?;
    data.end_time = get(row, "end_time")?;
    data.duration = duration(row, "duration")?;
    data.recording_url = parsed_opt(row, "recording_url", text(limits::RECORDING_URL))?;
    data.error_code = parsed_opt(row, "error_code", text(limits::ERROR_CODE))?;
    data.error_message = parsed_opt(row, "error_message", text(limits::ERROR_MESSAGE))?;
    data.conversation_id = parsed_opt(row, "conversation_id", ConversationId::parse)?;
    data.answered_by = parsed_opt(row, "answered_by", text(limits::ANSWERED_BY))?;
    data.sip_response_code = sip_response_code(row, "sip_response_code")?;
    data.first_message = parsed_opt(row, "first_message", text(limits::FIRST_MESSAGE))?;
    let dynamic_variables: String = get(row, "dynamic_variables")?;
    data.dynamic_variables = outcall_domain::values::dynamic_json::from_json(&dynamic_variables)
        .context("column dynamic_variables holds an invalid value")?;
    data.end_reason = parsed_opt(row, "end_reason", text(limits::END_REASON))?;
    let details = CallDetails {
        outcome: parsed_opt(row, "outcome", CallOutcome::parse)?,
        summary: parsed_opt(row, "summary", text(limits::SUMMARY))?,
        transcript: parsed_opt(row, "transcript", text(limits::TRANSCRIPT))?,
        sentiment: parsed_opt(row, "sentiment", Sentiment::parse)?,
        next_action: parsed_opt(row, "next_action", text(limits::NEXT_ACTION))?,
        next_action_date: get(row, "next_action_date")?,
        agent_notes: parsed_opt(row, "agent_notes", text(limits::AGENT_NOTES))?,
        call_successful: parsed_opt(row, "call_successful", text(limits::CALL_SUCCESSFUL))?,
        agent_duration_secs: duration(row, "agent_duration_secs")?,
        analysis_at: get(row, "analysis_at")?,
    };
    Ok(Call {
        id: parsed(row, "call_id", CallId::parse)?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        data,
        details,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        version: get(row, "version")?,
    })
}

pub(crate) fn text_param(value: Option<&BoundedText>) -> Option<&str> {
    value.map(BoundedText::as_str)
}
