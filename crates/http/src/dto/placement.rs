//! Bodies of call placement (`make-call`, `hangup`) and the fields of Twilio's status
//! callbacks.

use outcall_domain::call::limits;
use outcall_domain::services::{CallRequest, PlacedCallIds};
use outcall_domain::{
    BoundedText, CallSid, CallStatus, DynamicValue, DynamicVariables, PhoneNumber, StatusEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::calls::text;
use super::field::{Field, FieldError, Unknown, parse_with, unknown_paths};
use crate::error::{ApiError, Problem};

/// Members that would choose the caller id or the agent: a call always goes out from the
/// client's own Twilio number with the client's own agent.
const NOT_CHOOSABLE: [&str; 3] = ["from", "callerId", "agentId"];

/// `POST /secure/make-call` and `POST /admin/clients/{clientId}/make-call`.
///
/// The call always goes out from the client's own Twilio number with the client's own agent:
/// `from`, `callerId` and `agentId` are refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MakeCallRequest {
    /// The number to call (E.164).
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "+14155550100")]
    phone: Field,
    /// What the agent says first, instead of its configured greeting.
    #[serde(default)]
    #[schema(value_type = String)]
    first_message: Field,
    /// A flat object of strings, numbers and booleans handed to the agent. Absent and
    /// `null` both mean "none".
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    dynamic_variables: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

impl TryFrom<MakeCallRequest> for CallRequest {
    type Error = ApiError;

    fn try_from(req: MakeCallRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::CallRequest);
        if let Some(name) = NOT_CHOOSABLE
            .iter()
            .find(|name| req.unknown.contains_key(**name))
        {
            return Err(fail(FieldError::new(
                name,
                format_args!(
                    "{name} cannot be chosen: calls are placed from the client's own Twilio \
                     number with the client's own agent"
                ),
            )));
        }
        let unknown = unknown_paths(None, &req.unknown);
        if !unknown.is_empty() {
            return Err(fail(FieldError::unknown(&unknown)));
        }
        let Some(phone) = req.phone.non_empty_text("phone").map_err(fail)? else {
            return Err(ApiError::MissingFields(vec!["phone".to_owned()]));
        };
        let parsed = || -> Result<CallRequest, FieldError> {
            Ok(CallRequest {
                phone: PhoneNumber::parse(&phone).map_err(|err| FieldError::at("phone", err))?,
                first_message: text(req.first_message, "firstMessage", limits::FIRST_MESSAGE)?,
                dynamic_variables: dynamic_variables(req.dynamic_variables)?,
            })
        };
        parsed().map_err(fail)
    }
}

/// A flat object of strings, numbers and booleans, checked by the domain's rules.
fn dynamic_variables(member: Option<Value>) -> Result<DynamicVariables, FieldError> {
    const PATH: &str = "dynamicVariables";
    let entries = match member {
        None => return Ok(DynamicVariables::default()),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err(FieldError::must_be(PATH, "an object")),
    };
    let entries = entries
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => DynamicValue::Text(text),
                Value::Bool(flag) => DynamicValue::Bool(flag),
                Value::Number(number) => match (number.as_i64(), number.as_f64()) {
                    (Some(integer), _) => DynamicValue::Integer(integer),
                    (None, Some(float)) => DynamicValue::Number(float),
                    (None, None) => {
                        return Err(FieldError::must_be(
                            &format!("{PATH}.{key}"),
                            "a representable number",
                        ));
                    }
                },
                Value::Null | Value::Array(_) | Value::Object(_) => {
                    return Err(FieldError::must_be(
                        &format!("{PATH}.{key}"),
                        "a string, number or boolean",
                    ));
                }
            };
            Ok((key, value))
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    DynamicVariables::new(entries).map_err(|err| FieldError::new(PATH, err))
}

/// `{success: true, message, callSid, requestId, callId}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallPlacedResponse<'a> {
    success: bool,
    message: &'static str,
    call_sid: &'a str,
    request_id: &'a str,
    call_id: &'a str,
}

impl<'a> CallPlacedResponse<'a> {
    pub fn new(ids: &'a PlacedCallIds) -> Self {
        Self {
            success: true,
            message: "Call initiated successfully",
            call_sid: ids.call_sid.as_str(),
            request_id: &ids.request_id,
            call_id: ids.call_id.as_str(),
        }
    }
}

/// The form parameters of a signed Twilio status callback, as received.
pub struct StatusCallbackForm<'a>(pub &'a [(String, String)]);

impl StatusCallbackForm<'_> {
    /// The first value of `name` that is not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// An optional extra: one that does not parse is left out with a warning (naming the
    /// parameter only), so that the rest of the callback still counts.
    fn extra<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = self.get(name)?;
        match parse(raw) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(
                    parameter = name,
                    reason = %err,
                    "ignoring an unreadable status callback parameter"
                );
                None
            }
        }
    }
}

impl TryFrom<StatusCallbackForm<'_>> for StatusEvent {
    type Error = ApiError;

    /// `CallStatus` must be one of Twilio's if present (async AMD callbacks carry none);
    /// `CallSid`, `CallDuration`, `AnsweredBy`, `RecordingUrl` and `SipResponseCode` are
    /// optional extras.
    fn try_from(form: StatusCallbackForm<'_>) -> Result<Self, ApiError> {
        let status = form
            .get("CallStatus")
            .map(|raw| parse_with("CallStatus", raw, CallStatus::parse))
            .transpose()
            .map_err(|err| err.into_api(Problem::StatusCallback))?;
        Ok(StatusEvent {
            status,
            call_sid: form.extra("CallSid", CallSid::parse),
            duration: form.extra("CallDuration", call_duration),
            answered_by: form.extra("AnsweredBy", |raw| {
                BoundedText::parse(raw, limits::ANSWERED_BY)
            }),
            recording_url: form.extra("RecordingUrl", |raw| {
                BoundedText::parse(raw, limits::RECORDING_URL)
            }),
            sip_response_code: form.extra("SipResponseCode", sip_response_code),
        })
    }
}

/// A SIP response code: three digits, 100 to 699 (storage refuses anything else).
fn sip_response_code(raw: &str) -> Result<u16, String> {
    match raw.parse::<u16>() {
        Ok(code) if (100..=699).contains(&code) => Ok(code),
        _ => Err("must be a SIP response code from 100 to 699".to_owned()),
    }
}

/// Whole seconds on the line, at most [`limits::MAX_DURATION_SECS`].
fn call_duration(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(secs) if secs <= limits::MAX_DURATION_SECS => Ok(secs),
        Ok(_) => Err(format!(
            "must be at most {} seconds",
            limits::MAX_DURATION_SECS
        )),
        Err(_) => Err("must be a non-negative integer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<CallRequest, ApiError> {
        CallRequest::try_from(serde_json::from_value::<MakeCallRequest>(body).expect("object"))
    }

    fn details_of(result: Result<impl Sized, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid {
                problem: Problem::CallRequest,
                details,
            }) => details,
            Err(other) => panic!("expected an invalid call request, got {other:?}"),
            Ok(_) => panic!("expected an invalid call request"),
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_call_request_reads_phone_first_message_and_typed_dynamic_variables() {
        let req = request(json!({
            "phone": "+12125550123",
            "firstMessage": "  Hi Jane  ",
            "dynamicVariables": {"name": "Jane", "visits": 3, "score": 4.5, "vip": true, "big": 18446744073709551615u64}
        }))
        .expect("valid");
        assert_eq!(req.phone.as_str(), "+12125550123");
        assert_eq!(
            req.first_message.as_ref().map(BoundedText::as_str),
            Some("Hi Jane")
        );
        let vars = &req.dynamic_variables;
        assert_eq!(vars.get("name"), Some(&DynamicValue::Text("Jane".into())));
        assert_eq!(vars.get("visits"), Some(&DynamicValue::Integer(3)));
        assert_eq!(vars.get("score"), Some(&DynamicValue::Number(4.5)));
        assert_eq!(vars.get("vip"), Some(&DynamicValue::Bool(true)));
        assert_eq!(
            vars.get("big"),
            Some(&DynamicValue::Number(18_446_744_073_709_551_615_f64))
        );
    }

    #[test]
    fn absent_null_and_empty_optional_members_mean_none() {
        let req =
            request(json!({"phone": "+12125550123", "firstMessage": "", "dynamicVariables": null}))
                .expect("valid");
        assert!(req.first_message.is_none());
        assert!(req.dynamic_variables.is_empty());
    }

    #[test]
    fn a_call_request_without_a_phone_names_it_as_missing() {
        for body in [
            json!({}),
            json!({"phone": ""}),
            json!({"phone": null, "firstMessage": "x"}),
        ] {
            match request(body) {
                Err(ApiError::MissingFields(fields)) => assert_eq!(fields, vec!["phone"]),
                other => panic!("expected missing phone, got {:?}", other.err()),
            }
        }
    }

    #[test]
    fn members_that_choose_the_caller_id_or_agent_are_refused_by_name() {
        for name in NOT_CHOOSABLE {
            let mut body = json!({"phone": "+12125550123"});
            body[name] = json!("+18005550000");
            let details = details_of(request(body));
            assert!(
                details.starts_with(&format!("{name} cannot be chosen")),
                "{details}"
            );
        }
        assert_eq!(
            details_of(request(json!({"phone": "+12125550123", "priority": 1}))),
            "unknown fields: priority"
        );
    }

    #[test]
    fn status_callbacks_keep_the_known_fields_and_skip_unreadable_extras() {
        let params = form(&[
            ("CallStatus", "completed"),
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("CallDuration", "42"),
            ("AnsweredBy", "human"),
            ("SipResponseCode", "200"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE1"),
            ("CallStatus", "ringing"),
        ]);
        let event = StatusEvent::try_from(StatusCallbackForm(&params)).expect("valid");
        assert_eq!(
            event.status,
            Some(CallStatus::Completed),
            "the first value counts"
        );
        assert_eq!(
            event.call_sid.as_ref().map(CallSid::as_str),
            Some("CA0123456789abcdef0123456789abcdef")
        );
        assert_eq!(event.duration, Some(42));
        assert_eq!(event.sip_response_code, Some(200));
        assert_eq!(
            event.answered_by.as_ref().map(BoundedText::as_str),
            Some("human")
        );
        assert_eq!(
            event.recording_url.as_ref().map(BoundedText::as_str),
            Some("https://api.twilio.com/rec/RE1")
        );

        let sloppy = form(&[
            ("CallStatus", "busy"),
            ("CallSid", "not-a-sid"),
            ("CallDuration", "-3"),
            ("SipResponseCode", "700"),
            ("AnsweredBy", &"m".repeat(limits::ANSWERED_BY + 1)),
        ]);
        let event = StatusEvent::try_from(StatusCallbackForm(&sloppy)).expect("still valid");
        assert_eq!(
            event,
            StatusEvent {
                status: Some(CallStatus::Busy),
                ..StatusEvent::default()
            }
        );
        let too_long = (limits::MAX_DURATION_SECS + 1).to_string();
        let event =
            StatusEvent::try_from(StatusCallbackForm(&form(&[("CallDuration", &too_long)])))
                .expect("valid");
        assert_eq!(event.duration, None);
        assert_eq!(event.status, None);
    }

    #[test]
    fn an_unknown_call_status_is_refused() {
        let params = form(&[("CallStatus", "exploded")]);
        match StatusEvent::try_from(StatusCallbackForm(&params)) {
            Err(ApiError::Invalid {
                problem: Problem::StatusCallback,
                details,
            }) => assert!(
                details.starts_with("CallStatus: status must be one of"),
                "{details}"
            ),
            other => panic!("expected an invalid callback, got {:?}", other.err()),
        }
    }
}
