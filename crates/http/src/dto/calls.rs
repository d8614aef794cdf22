//! Bodies of the call-history, statistics and dashboard endpoints.

use outcall_domain::call::limits;
use outcall_domain::queries::{CallActivity, CallStats, Tally};
use outcall_domain::services::Dashboard;
use outcall_domain::{
    AgentId, BoundedText, Call, CallData, CallDetails, CallId, CallOutcome, CallPatch, CallSid,
    CallStatus, ClientId, ConversationId, NewCall, PhoneNumber, Sentiment, TextError, Timestamp,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::field::{Field, FieldError, Obj, Unknown, parse_with, unknown_paths};
use crate::error::{ApiError, Problem};
use crate::time::{self, Millis};

/// `callDetails` in an add or an update. Empty strings mean "not set".
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailsRequest {
    #[serde(default)]
    #[schema(schema_with = super::schema::call_outcome)]
    call_outcome: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    call_summary: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    call_transcript: Field,
    #[serde(default)]
    #[schema(schema_with = super::schema::sentiment)]
    call_sentiment: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    next_action: Field,
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    next_action_date: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    agent_notes: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

/// `callData` in `POST /admin/clients/{clientId}/calls`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddCallData {
    #[serde(default)]
    #[schema(value_type = String)]
    call_sid: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    request_id: Field,
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "+14155550100")]
    phone: Field,
    #[serde(default)]
    #[schema(value_type = String, example = "+14155550100")]
    from: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    agent_id: Field,
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    start_time: Field,
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    end_time: Field,
    #[serde(default)]
    #[schema(value_type = u32, maximum = 604800)]
    duration: Field,
    #[serde(default)]
    #[schema(schema_with = super::schema::call_status)]
    status: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    recording_url: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    error_code: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    error_message: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    conversation_id: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    answered_by: Field,
    /// Sent by the original system; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    #[schema(value_type = u32)]
    call_count: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddCallRequest {
    #[serde(default)]
    #[schema(value_type = AddCallData, required = true)]
    call_data: Obj<AddCallData>,
    #[serde(default)]
    #[schema(value_type = DetailsRequest)]
    call_details: Obj<DetailsRequest>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

/// Reads a text member where absent, `null`, `""` and blanks mean "not set".
pub(super) fn text(
    member: Field,
    path: &str,
    max: usize,
) -> Result<Option<BoundedText>, FieldError> {
    match member.non_empty_text(path)? {
        None => Ok(None),
        Some(raw) => match BoundedText::parse(&raw, max) {
            Ok(text) => Ok(Some(text)),
            Err(TextError::Empty) => Ok(None),
            Err(err) => Err(FieldError::new(path, err)),
        },
    }
}

/// Reads a member with a domain parser; absent, `null` and `""` mean "not set".
fn value<T, E: std::fmt::Display>(
    member: Field,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, FieldError> {
    member
        .non_empty_text(path)?
        .map(|raw| parse_with(path, &raw, parse))
        .transpose()
}

fn instant(member: Field, path: &str) -> Result<Option<Timestamp>, FieldError> {
    value(member, path, time::parse)
}

impl DetailsRequest {
    fn into_details(self) -> Result<CallDetails, FieldError> {
        Ok(CallDetails {
            outcome: value(
                self.call_outcome,
                "callDetails.callOutcome",
                CallOutcome::parse,
            )?,
            summary: text(
                self.call_summary,
                "callDetails.callSummary",
                limits::SUMMARY,
            )?,
            transcript: text(
                self.call_transcript,
                "callDetails.callTranscript",
                limits::TRANSCRIPT,
            )?,
            sentiment: value(
                self.call_sentiment,
                "callDetails.callSentiment",
                Sentiment::parse,
            )?,
            next_action: text(
                self.next_action,
                "callDetails.nextAction",
                limits::NEXT_ACTION,
            )?,
            next_action_date: instant(self.next_action_date, "callDetails.nextActionDate")?,
            agent_notes: text(
                self.agent_notes,
                "callDetails.agentNotes",
                limits::AGENT_NOTES,
            )?,
            // Only the voice agent's post-call report sets these.
            call_successful: None,
            agent_duration_secs: None,
            analysis_at: None,
        })
    }
}

impl TryFrom<AddCallRequest> for NewCall {
    type Error = ApiError;

    fn try_from(req: AddCallRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::CallData);
        let data = req
            .call_data
            .object("callData")
            .map_err(fail)?
            .unwrap_or_default();
        let details = req
            .call_details
            .object("callDetails")
            .map_err(fail)?
            .unwrap_or_default();
        let mut unknown = unknown_paths(None, &req.unknown);
        unknown.extend(unknown_paths(Some("callData"), &data.unknown));
        unknown.extend(unknown_paths(Some("callDetails"), &details.unknown));
        if !unknown.is_empty() {
            return Err(fail(FieldError::unknown(&unknown)));
        }
        let Some(phone) = data.phone.non_empty_text("callData.phone").map_err(fail)? else {
            return Err(ApiError::MissingFields(vec!["callData.phone".to_owned()]));
        };
        let parsed = || -> Result<NewCall, FieldError> {
            let phone = parse_with("callData.phone", &phone, PhoneNumber::parse)?;
            let start = instant(data.start_time, "callData.startTime")?.unwrap_or_else(time::now);
            let status = value(data.status, "callData.status", CallStatus::parse)?
                .unwrap_or(CallStatus::Initiated);
            let mut call = CallData::new(phone, start, status);
            call.call_sid = value(data.call_sid, "callData.callSid", CallSid::parse)?;
            call.request_id = text(data.request_id, "callData.requestId", limits::REQUEST_ID)?;
            call.from = value(data.from, "callData.from", PhoneNumber::parse)?;
            call.agent_id = value(data.agent_id, "callData.agentId", AgentId::parse)?;
            call.end_time = instant(data.end_time, "callData.endTime")?;
            call.duration = duration(data.duration)?;
            call.recording_url = text(
                data.recording_url,
                "callData.recordingUrl",
                limits::RECORDING_URL,
            )?;
            call.error_code = text(data.error_code, "callData.errorCode", limits::ERROR_CODE)?;
            call.error_message = text(
                data.error_message,
                "callData.errorMessage",
                limits::ERROR_MESSAGE,
            )?;
            call.conversation_id = value(
                data.conversation_id,
                "callData.conversationId",
                ConversationId::parse,
            )?;
            call.answered_by = text(data.answered_by, "callData.answeredBy", limits::ANSWERED_BY)?;
            Ok(NewCall {
                data: call,
                details: details.into_details()?,
            })
        };
        parsed().map_err(fail)
    }
}

/// `callData` in `PUT /admin/clients/{clientId}/calls/{callId}`: what may change after the
/// call was recorded.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCallData {
    #[serde(default)]
    #[schema(value_type = String)]
    call_sid: Field,
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    end_time: Field,
    #[serde(default)]
    #[schema(value_type = u32, maximum = 604800)]
    duration: Field,
    #[serde(default)]
    #[schema(schema_with = super::schema::call_status)]
    status: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    recording_url: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    conversation_id: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCallRequest {
    #[serde(default)]
    #[schema(value_type = UpdateCallData)]
    call_data: Obj<UpdateCallData>,
    #[serde(default)]
    #[schema(value_type = DetailsRequest)]
    call_details: Obj<DetailsRequest>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

impl TryFrom<UpdateCallRequest> for CallPatch {
    type Error = ApiError;

    fn try_from(req: UpdateCallRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::UpdateData);
        let data = req
            .call_data
            .object("callData")
            .map_err(fail)?
            .unwrap_or_default();
        let details = req
            .call_details
            .object("callDetails")
            .map_err(fail)?
            .unwrap_or_default();
        let mut fixed = unknown_paths(None, &req.unknown);
        fixed.extend(unknown_paths(Some("callData"), &data.unknown));
        fixed.extend(unknown_paths(Some("callDetails"), &details.unknown));
        if !fixed.is_empty() {
            return Err(fail(FieldError::not_updatable(&fixed)));
        }
        let patch = || -> Result<CallPatch, FieldError> {
            let details = details.into_details()?;
            Ok(CallPatch {
                call_sid: value(data.call_sid, "callData.callSid", CallSid::parse)?,
                status: value(data.status, "callData.status", CallStatus::parse)?,
                end_time: instant(data.end_time, "callData.endTime")?,
                duration: duration(data.duration)?,
                recording_url: text(
                    data.recording_url,
                    "callData.recordingUrl",
                    limits::RECORDING_URL,
                )?,
                conversation_id: value(
                    data.conversation_id,
                    "callData.conversationId",
                    ConversationId::parse,
                )?,
                outcome: details.outcome,
                summary: details.summary,
                transcript: details.transcript,
                sentiment: details.sentiment,
                next_action: details.next_action,
                next_action_date: details.next_action_date,
                agent_notes: details.agent_notes,
            })
        };
        patch().map_err(fail)
    }
}

fn text_of(text: &Option<BoundedText>) -> Option<&str> {
    text.as_ref().map(BoundedText::as_str)
}

/// One call as every read shows it; unset optional members are omitted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView<'a> {
    call_id: &'a str,
    call_data: CallDataView<'a>,
    call_details: CallDetailsView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallDataView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    call_sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    start_time: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u32>,
    #[schema(schema_with = super::schema::call_status)]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_response_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_message: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    /// The dynamic variables the call was placed with (strings, numbers, booleans).
    #[schema(value_type = Object)]
    dynamic_variables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallDetailsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::call_outcome)]
    call_outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_transcript: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::sentiment)]
    call_sentiment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_action_date: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_notes: Option<&'a str>,
    /// The agent provider's verdict (`success`, `failure`, `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    call_successful: Option<&'a str>,
    /// The agent provider's measure of the conversation, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_duration: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_at: Option<Millis>,
}

/// Dynamic variables as the JSON object the client sent.
fn variables_json(
    vars: &outcall_domain::DynamicVariables,
) -> serde_json::Map<String, serde_json::Value> {
    use outcall_domain::DynamicValue;
    vars.iter()
        .map(|(key, value)| {
            let json = match value {
                DynamicValue::Text(text) => serde_json::Value::from(text.as_str()),
                DynamicValue::Integer(n) => serde_json::Value::from(*n),
                DynamicValue::Number(n) => serde_json::Value::from(*n),
                DynamicValue::Bool(b) => serde_json::Value::from(*b),
            };
            (key.to_owned(), json)
        })
        .collect()
}

impl<'a> From<&'a Call> for CallView<'a> {
    fn from(call: &'a Call) -> Self {
        let data = &call.data;
        let details = &call.details;
        Self {
            call_id: call.id.as_str(),
            call_data: CallDataView {
                call_sid: data.call_sid.as_ref().map(CallSid::as_str),
                request_id: text_of(&data.request_id),
                phone: data.phone.as_str(),
                from: data.from.as_ref().map(PhoneNumber::as_str),
                agent_id: data.agent_id.as_ref().map(AgentId::as_str),
                start_time: Millis(data.start_time),
                end_time: data.end_time.map(Millis),
                duration: data.duration,
                status: data.status().as_str(),
                recording_url: text_of(&data.recording_url),
                error_code: text_of(&data.error_code),
                error_message: text_of(&data.error_message),
                conversation_id: data.conversation_id.as_ref().map(ConversationId::as_str),
                answered_by: text_of(&data.answered_by),
                sip_response_code: data.sip_response_code,
                end_reason: text_of(&data.end_reason),
                first_message: text_of(&data.first_message),
                dynamic_variables: variables_json(&data.dynamic_variables),
            },
            call_details: CallDetailsView {
                call_outcome: details.outcome.map(CallOutcome::as_str),
                call_summary: text_of(&details.summary),
                call_transcript: text_of(&details.transcript),
                call_sentiment: details.sentiment.map(Sentiment::as_str),
                next_action: text_of(&details.next_action),
                next_action_date: details.next_action_date.map(Millis),
                agent_notes: text_of(&details.agent_notes),
                call_successful: text_of(&details.call_successful),
                agent_duration: details.agent_duration_secs,
                analysis_at: details.analysis_at.map(Millis),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallListResponse<'a> {
    client_id: &'a str,
    total: u64,
    filtered: u64,
    limit: u32,
    offset: u64,
    call_history: Vec<CallView<'a>>,
}

impl<'a> CallListResponse<'a> {
    pub fn new(
        client_id: &'a ClientId,
        query: &outcall_domain::queries::CallListQuery,
        page: &'a outcall_domain::queries::CallPage,
    ) -> Self {
        Self {
            client_id: client_id.as_str(),
            total: page.total,
            filtered: page.filtered,
            limit: query.limit,
            offset: query.offset,
            call_history: page.calls.iter().map(CallView::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallAddedResponse<'a> {
    message: &'static str,
    call_id: &'a str,
}

impl<'a> CallAddedResponse<'a> {
    pub fn new(call_id: &'a CallId) -> Self {
        Self {
            message: "Call added to history successfully",
            call_id: call_id.as_str(),
        }
    }
}

/// A tally as a JSON object with every key of its set, in the domain's order.
struct TallyView<'a, K: Ord> {
    tally: &'a Tally<K>,
    name: fn(K) -> &'static str,
}

impl<K: Ord + Copy> Serialize for TallyView<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.tally.iter().map(|(key, n)| ((self.name)(key), n)))
    }
}

fn statuses(tally: &Tally<CallStatus>) -> TallyView<'_, CallStatus> {
    TallyView {
        tally,
        name: CallStatus::as_str,
    }
}

fn outcomes(tally: &Tally<CallOutcome>) -> TallyView<'_, CallOutcome> {
    TallyView {
        tally,
        name: CallOutcome::as_str,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallStatsResponse<'a> {
    client_id: &'a str,
    stats: StatsView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatsView<'a> {
    total_calls: u64,
    #[schema(schema_with = super::schema::calls_by_status)]
    calls_by_status: TallyView<'a, CallStatus>,
    #[schema(schema_with = super::schema::calls_by_outcome)]
    calls_by_outcome: TallyView<'a, CallOutcome>,
    #[schema(schema_with = super::schema::calls_by_sentiment)]
    calls_by_sentiment: TallyView<'a, Sentiment>,
    total_duration: u64,
    average_duration: u64,
}

impl<'a> CallStatsResponse<'a> {
    pub fn new(client_id: &'a ClientId, stats: &'a CallStats) -> Self {
        Self {
            client_id: client_id.as_str(),
            stats: StatsView {
                total_calls: stats.total,
                calls_by_status: statuses(&stats.by_status),
                calls_by_outcome: outcomes(&stats.by_outcome),
                calls_by_sentiment: TallyView {
                    tally: &stats.by_sentiment,
                    name: Sentiment::as_str,
                },
                total_duration: stats.total_duration,
                average_duration: stats.average_duration(),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DashboardResponse<'a> {
    clients: ClientCountsView,
    calls: CallCountsView<'a>,
}

#[derive(Serialize, ToSchema)]
struct ClientCountsView {
    active: u64,
    /// Inactive and Suspended together, as the contract's dashboard counts them.
    inactive: u64,
    suspended: u64,
    total: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallCountsView<'a> {
    recent: u64,
    total: u64,
    #[schema(schema_with = super::schema::calls_by_outcome)]
    by_outcome: TallyView<'a, CallOutcome>,
    #[schema(schema_with = super::schema::calls_by_status)]
    by_status: TallyView<'a, CallStatus>,
}

impl<'a> DashboardResponse<'a> {
    pub fn new(dashboard: &'a Dashboard) -> Self {
        let clients = &dashboard.clients;
        Self {
            clients: ClientCountsView {
                active: clients.active,
                inactive: clients.inactive + clients.suspended,
                suspended: clients.suspended,
                total: clients.total(),
            },
            calls: CallCountsView {
                recent: dashboard.calls.recent,
                total: dashboard.calls.total,
                by_outcome: outcomes(&dashboard.calls.by_outcome),
                by_status: statuses(&dashboard.calls.by_status),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActivityResponse<'a> {
    #[schema(example = "7 days")]
    period: String,
    count: usize,
    activities: Vec<ActivityView<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ActivityView<'a> {
    client_id: &'a str,
    client_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_name: Option<&'a str>,
    call_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_sid: Option<&'a str>,
    phone: &'a str,
    #[schema(schema_with = super::schema::call_status)]
    status: &'static str,
    start_time: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::call_outcome)]
    outcome: Option<&'static str>,
}

impl<'a> ActivityResponse<'a> {
    pub fn new(days: u32, activities: &'a [CallActivity]) -> Self {
        Self {
            // The original system's wording, kept for callers that parse it.
            period: format!("{days} days"),
            count: activities.len(),
            activities: activities
                .iter()
                .map(|a| ActivityView {
                    client_id: a.client_id.as_str(),
                    client_name: a.client_name.as_str(),
                    business_name: text_of(&a.business_name),
                    call_id: a.call_id.as_str(),
                    call_sid: a.call_sid.as_ref().map(CallSid::as_str),
                    phone: a.phone.as_str(),
                    status: a.status.as_str(),
                    start_time: Millis(a.start_time),
                    duration: a.duration,
                    outcome: a.outcome.map(CallOutcome::as_str),
                })
                .collect(),
        }
    }
}

/// `callData.duration`: whole seconds, at most a week.
fn duration(field: Field) -> Result<Option<u32>, FieldError> {
    const PATH: &str = "callData.duration";
    match field.count(PATH)? {
        Some(secs) if secs > limits::MAX_DURATION_SECS => Err(FieldError::new(
            PATH,
            format_args!("must be at most {} seconds", limits::MAX_DURATION_SECS),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn add(body: serde_json::Value) -> Result<NewCall, ApiError> {
        NewCall::try_from(serde_json::from_value::<AddCallRequest>(body).expect("object"))
    }

    fn patch(body: serde_json::Value) -> Result<CallPatch, ApiError> {
        CallPatch::try_from(serde_json::from_value::<UpdateCallRequest>(body).expect("object"))
    }

    fn details_of(result: Result<impl Sized, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid { details, .. }) => details,
            Err(other) => panic!("expected a validation error, got {other:?}"),
            Ok(_) => panic!("expected a validation error"),
        }
    }

    #[test]
    fn an_added_call_defaults_to_initiated_and_treats_empty_details_as_unset() {
        let new = add(json!({
            "callData": {"phone": "+12125551234", "startTime": "2025-03-20T13:00:00+01:00", "callCount": 1},
            "callDetails": {"callOutcome": "", "callSummary": "", "callTranscript": "  "}
        }))
        .expect("valid");
        assert_eq!(new.data.status(), CallStatus::Initiated);
        assert_eq!(
            Millis(new.data.start_time).format(),
            "2025-03-20T12:00:00.000Z"
        );
        assert_eq!(new.details, CallDetails::default());
    }

    #[test]
    fn an_added_call_needs_a_phone() {
        for body in [json!({}), json!({"callData": {"phone": ""}})] {
            match add(body) {
                Err(ApiError::MissingFields(fields)) => assert_eq!(fields, vec!["callData.phone"]),
                _ => panic!("expected missing phone"),
            }
        }
    }

    #[test]
    fn bad_call_values_are_named() {
        let cases = [
            (
                json!({"duration": -5}),
                "callData.duration must be a non-negative integer",
            ),
            (
                json!({"startTime": "yesterday"}),
                "callData.startTime: must be an RFC 3339",
            ),
            (
                json!({"status": "done"}),
                "callData.status: status must be one of",
            ),
        ];
        for (data, expected) in cases {
            let mut data = data;
            data["phone"] = json!("+12125551234");
            let details = details_of(add(json!({"callData": data})));
            assert!(details.starts_with(expected), "{details}");
        }
        let details = details_of(add(json!({
            "callData": {"phone": "+12125551234"},
            "callDetails": {"callOutcome": "maybe"}
        })));
        assert!(details.starts_with("callDetails.callOutcome"), "{details}");
        let details = details_of(patch(json!({"callDetails": {"nextActionDate": "soon"}})));
        assert!(
            details.starts_with("callDetails.nextActionDate"),
            "{details}"
        );
        let details = details_of(patch(json!({"callDetails": {"callSentiment": "happy"}})));
        assert!(
            details.starts_with("callDetails.callSentiment"),
            "{details}"
        );
    }

    #[test]
    fn a_call_update_names_members_that_cannot_change() {
        assert_eq!(
            details_of(patch(
                json!({"callData": {"phone": "+12125551234", "status": "completed"}})
            )),
            "These fields cannot be updated: callData.phone"
        );
        let ok =
            patch(json!({"callData": {"status": "completed", "duration": 900}})).expect("valid");
        assert_eq!(ok.status, Some(CallStatus::Completed));
        assert_eq!(ok.duration, Some(900));
    }
}
