//! Wire messages of both sides: parsing (borrowing from the received text, so an audio payload
//! is never copied) and building (JSON escaping done once, by hand on the per-frame paths).

use std::borrow::Cow;

use outcall_domain::services::StreamContext;
use outcall_domain::values::DynamicValue;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Why a message could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct ParseError(String);

/// One Twilio Media Streams message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioEvent<'a> {
    Connected,
    Start(StreamStart),
    /// The base64 μ-law payload, borrowed from the received text whenever it holds no escapes.
    Media(Cow<'a, str>),
    Stop,
    /// `mark`, `dtmf` and anything newer: nothing to do.
    Other,
}

/// What a `start` message tells the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub stream_sid: String,
    /// outcall's `callId` custom parameter.
    pub call_id: Option<String>,
    /// The optional `agentId` custom parameter.
    pub agent_id: Option<String>,
}

// One flat struct for every event: serde's internally tagged enums buffer the whole message
// into an intermediate tree first, which would cost an allocation per audio frame.
#[derive(Deserialize)]
struct TwilioFrame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    media: Option<TwilioMedia<'a>>,
    #[serde(default)]
    start: Option<TwilioStart>,
}

#[derive(Deserialize)]
struct TwilioMedia<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct TwilioStart {
    #[serde(rename = "streamSid")]
    stream_sid: String,
    #[serde(rename = "customParameters", default)]
    custom_parameters: CustomParameters,
}

#[derive(Deserialize, Default)]
struct CustomParameters {
    #[serde(rename = "callId")]
    call_id: Option<String>,
    #[serde(rename = "agentId")]
    agent_id: Option<String>,
}

/// Parses one text frame from Twilio.
///
/// # Errors
/// When the text is not JSON, has no `event`, or a `media`/`start` lacks its body.
pub fn parse_twilio(text: &str) -> Result<TwilioEvent<'_>, ParseError> {
    let frame: TwilioFrame<'_> =
        serde_json::from_str(text).map_err(|e| ParseError(e.to_string()))?;
    Ok(match frame.event.as_ref() {
        "media" => TwilioEvent::Media(
            frame
                .media
                .ok_or_else(|| ParseError("media without a body".into()))?
                .payload,
        ),
        "start" => {
            let start = frame
                .start
                .ok_or_else(|| ParseError("start without a body".into()))?;
            TwilioEvent::Start(StreamStart {
                stream_sid: start.stream_sid,
                call_id: start.custom_parameters.call_id,
                agent_id: start.custom_parameters.agent_id,
            })
        }
        "connected" => TwilioEvent::Connected,
        "stop" => TwilioEvent::Stop,
        _ => TwilioEvent::Other,
    })
}

/// One message of the agent's conversation protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent<'a> {
    Metadata {
        conversation_id: Option<String>,
        output_format: Option<String>,
        input_format: Option<String>,
    },
    /// Base64 audio in the agent's output format, borrowed when it holds no escapes.
    Audio {
        payload: Cow<'a, str>,
        event_id: Option<u64>,
    },
    Ping {
        event_id: serde_json::Number,
    },
    Interruption {
        event_id: Option<u64>,
    },
    AgentResponse(String),
    AgentResponseCorrection(String),
    UserTranscript(String),
    ClientToolCall {
        tool_call_id: String,
    },
    /// A known message the bridge has no use for (VAD scores, tentative responses, ...).
    Ignored,
    /// A `type` this bridge does not know.
    Unknown,
}

#[derive(Deserialize)]
struct AgentFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    audio_event: Option<AudioEvent<'a>>,
    #[serde(default)]
    ping_event: Option<PingEvent>,
    #[serde(default)]
    interruption_event: Option<InterruptionEvent>,
    #[serde(default)]
    conversation_initiation_metadata_event: Option<MetadataEvent>,
    #[serde(default)]
    agent_response_event: Option<AgentResponseEvent>,
    #[serde(default)]
    agent_response_correction_event: Option<CorrectionEvent>,
    #[serde(default)]
    user_transcription_event: Option<UserTranscriptionEvent>,
    #[serde(default)]
    client_tool_call: Option<ToolCall>,
}

#[derive(Deserialize)]
struct AudioEvent<'a> {
    #[serde(borrow)]
    audio_base_64: Cow<'a, str>,
    #[serde(default)]
    event_id: Option<u64>,
}

#[derive(Deserialize)]
struct PingEvent {
    event_id: serde_json::Number,
}

#[derive(Deserialize)]
struct InterruptionEvent {
    #[serde(default)]
    event_id: Option<u64>,
}

#[derive(Deserialize)]
struct MetadataEvent {
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    agent_output_audio_format: Option<String>,
    #[serde(default)]
    user_input_audio_format: Option<String>,
}

#[derive(Deserialize)]
struct AgentResponseEvent {
    agent_response: String,
}

#[derive(Deserialize)]
struct CorrectionEvent {
    corrected_agent_response: String,
}

#[derive(Deserialize)]
struct UserTranscriptionEvent {
    user_transcript: String,
}

#[derive(Deserialize)]
struct ToolCall {
    tool_call_id: String,
}

fn body<T>(value: Option<T>, kind: &str) -> Result<T, ParseError> {
    value.ok_or_else(|| ParseError(format!("{kind} without its event body")))
}

/// Parses one text message from the agent.
///
/// # Errors
/// When the text is not JSON, has no `type`, or a known type lacks its event body.
pub fn parse_agent(text: &str) -> Result<AgentEvent<'_>, ParseError> {
    let frame: AgentFrame<'_> =
        serde_json::from_str(text).map_err(|e| ParseError(e.to_string()))?;
    let kind = frame.kind.as_ref();
    Ok(match kind {
        "audio" => {
            let audio = body(frame.audio_event, kind)?;
            AgentEvent::Audio {
                payload: audio.audio_base_64,
                event_id: audio.event_id,
            }
        }
        "ping" => AgentEvent::Ping {
            event_id: body(frame.ping_event, kind)?.event_id,
        },
        "interruption" => AgentEvent::Interruption {
            event_id: frame.interruption_event.and_then(|e| e.event_id),
        },
        "conversation_initiation_metadata" => {
            let meta = body(frame.conversation_initiation_metadata_event, kind)?;
            AgentEvent::Metadata {
                conversation_id: meta.conversation_id,
                output_format: meta.agent_output_audio_format,
                input_format: meta.user_input_audio_format,
            }
        }
        "agent_response" => {
            AgentEvent::AgentResponse(body(frame.agent_response_event, kind)?.agent_response)
        }
        "agent_response_correction" => AgentEvent::AgentResponseCorrection(
            body(frame.agent_response_correction_event, kind)?.corrected_agent_response,
        ),
        "user_transcript" => {
            AgentEvent::UserTranscript(body(frame.user_transcription_event, kind)?.user_transcript)
        }
        "client_tool_call" => AgentEvent::ClientToolCall {
            tool_call_id: body(frame.client_tool_call, kind)?.tool_call_id,
        },
        "vad_score"
        | "internal_tentative_agent_response"
        | "agent_tool_response"
        | "agent_chat_response_part"
        | "contextual_update"
        | "agent_response_metadata"
        | "mcp_tool_call"
        | "mcp_connection_status"
        | "asr_initiation_metadata" => AgentEvent::Ignored,
        _ => AgentEvent::Unknown,
    })
}

/// Appends `value` as a JSON string literal (with quotes), escaped per RFC 8259.
pub fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    // Base64 payloads never need escaping: one scan, then a plain copy. The scan folds
    // instead of stopping at the first hit so that it compiles to vector compares (an
    // early-exit `any` ran byte by byte, 2% of the bridge's CPU in `perf`).
    let needs_escaping = value.bytes().fold(false, |found, b| {
        found | (b == b'"') | (b == b'\\') | (b < 0x20)
    });
    if !needs_escaping {
        out.push_str(value);
        out.push('"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[n >> 4]));
                out.push(char::from(HEX[n & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const USER_AUDIO_PREFIX: &str = "{\"user_audio_chunk\":";

/// `{"user_audio_chunk":"<payload>"}`.
pub fn user_audio_chunk(payload: &str) -> String {
    let mut out = String::with_capacity(USER_AUDIO_PREFIX.len() + payload.len() + 3);
    out.push_str(USER_AUDIO_PREFIX);
    push_json_string(&mut out, payload);
    out.push('}');
    out
}

/// Builds Twilio `media` and `clear` messages for one stream; the escaped stream sid is
/// prepared once so that each frame is two copies.
#[derive(Debug, Clone)]
pub struct TwilioWriter {
    media_prefix: String,
    clear: String,
}

impl TwilioWriter {
    pub fn new(stream_sid: &str) -> Self {
        let mut sid = String::with_capacity(stream_sid.len() + 2);
        push_json_string(&mut sid, stream_sid);
        Self {
            media_prefix: format!(
                "{{\"event\":\"media\",\"streamSid\":{sid},\"media\":{{\"payload\":"
            ),
            clear: format!("{{\"event\":\"clear\",\"streamSid\":{sid}}}"),
        }
    }

    /// `{"event":"media","streamSid":..,"media":{"payload":"<payload>"}}`.
    pub fn media(&self, payload: &str) -> String {
        let mut out = String::with_capacity(self.media_prefix.len() + payload.len() + 4);
        out.push_str(&self.media_prefix);
        push_json_string(&mut out, payload);
        out.push_str("}}");
        out
    }

    /// `{"event":"clear","streamSid":..}`.
    pub fn clear(&self) -> String {
        self.clear.clone()
    }
}

/// `{"type":"pong","event_id":<same>}`.
pub fn pong(event_id: &serde_json::Number) -> String {
    json!({"type": "pong", "event_id": event_id}).to_string()
}

/// Refuses a client tool call: outcall's agents have no client-side tools, and an unanswered
/// call would leave the agent waiting.
pub fn client_tool_refusal(tool_call_id: &str) -> String {
    json!({
        "type": "client_tool_result",
        "tool_call_id": tool_call_id,
        "result": "client tools are not available on phone calls",
        "is_error": true,
    })
    .to_string()
}

fn dynamic_value(value: &DynamicValue) -> Value {
    match value {
        DynamicValue::Text(text) => Value::String(text.clone()),
        DynamicValue::Integer(n) => Value::from(*n),
        // DynamicVariables refuses non-finite numbers, so `from_f64` cannot fail here.
        DynamicValue::Number(n) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        DynamicValue::Bool(b) => Value::Bool(*b),
    }
}

/// `conversation_initiation_client_data`: the call's dynamic variables, and the first message
/// override only when the call has one.
pub fn client_data(context: &StreamContext) -> String {
    let variables: Map<String, Value> = context
        .dynamic_variables
        .iter()
        .map(|(key, value)| (key.to_owned(), dynamic_value(value)))
        .collect();
    let mut message = json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": variables,
    });
    if let (Some(first), Some(object)) = (&context.first_message, message.as_object_mut()) {
        object.insert(
            "conversation_config_override".into(),
            json!({"agent": {"first_message": first.as_str()}}),
        );
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use outcall_domain::values::{AgentId, BoundedText, CallId, DynamicVariables};

    use super::*;

    #[test]
    fn a_media_payload_is_borrowed_from_the_received_text() {
        let text = r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzS/w=="},"streamSid":"MZ1"}"#;
        match parse_twilio(text) {
            Ok(TwilioEvent::Media(Cow::Borrowed(payload))) => {
                assert_eq!(payload, "no+JhoaJjpzS/w==");
            }
            other => panic!("expected a borrowed payload, got {other:?}"),
        }
    }

    #[test]
    fn an_escaped_payload_is_still_understood() {
        let text = r#"{"event":"media","media":{"payload":"ab\/cd=="}}"#;
        assert_eq!(
            parse_twilio(text),
            Ok(TwilioEvent::Media(Cow::Owned("ab/cd==".into())))
        );
    }

    #[test]
    fn a_start_gives_the_stream_sid_and_outcalls_parameters() {
        let text = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ9","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callId":"call_1","agentId":"agent_1"}},"streamSid":"MZ9"}"#;
        assert_eq!(
            parse_twilio(text),
            Ok(TwilioEvent::Start(StreamStart {
                stream_sid: "MZ9".into(),
                call_id: Some("call_1".into()),
                agent_id: Some("agent_1".into()),
            }))
        );
    }

    #[test]
    fn twilio_messages_without_what_they_need_are_malformed() {
        for text in [
            "",
            "not json",
            "[]",
            r#"{"sequenceNumber":"1"}"#,
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"start","start":{}}"#,
        ] {
            assert!(parse_twilio(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_twilio(r#"{"event":"dtmf","dtmf":{"digit":"1"}}"#),
            Ok(TwilioEvent::Other)
        );
    }

    #[test]
    fn agent_messages_of_every_used_type_are_parsed() {
        let cases = [
            (
                r#"{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"conv_1","agent_output_audio_format":"ulaw_8000","user_input_audio_format":"pcm_16000"}}"#,
                AgentEvent::Metadata {
                    conversation_id: Some("conv_1".into()),
                    output_format: Some("ulaw_8000".into()),
                    input_format: Some("pcm_16000".into()),
                },
            ),
            (
                r#"{"type":"audio","audio_event":{"audio_base_64":"AAA=","event_id":3,"alignment":{"chars":["a"]}}}"#,
                AgentEvent::Audio {
                    payload: Cow::Borrowed("AAA="),
                    event_id: Some(3),
                },
            ),
            (
                r#"{"type":"ping","ping_event":{"event_id":12345,"ping_ms":null}}"#,
                AgentEvent::Ping {
                    event_id: 12345.into(),
                },
            ),
            (
                r#"{"type":"interruption","interruption_event":{"event_id":7}}"#,
                AgentEvent::Interruption { event_id: Some(7) },
            ),
            (
                r#"{"type":"interruption","interruption_event":{"reason":"barge-in"}}"#,
                AgentEvent::Interruption { event_id: None },
            ),
            (
                r#"{"type":"agent_response","agent_response_event":{"agent_response":"Hi \"there\""}}"#,
                AgentEvent::AgentResponse("Hi \"there\"".into()),
            ),
            (
                r#"{"type":"agent_response_correction","agent_response_correction_event":{"original_agent_response":"a b","corrected_agent_response":"a"}}"#,
                AgentEvent::AgentResponseCorrection("a".into()),
            ),
            (
                r#"{"type":"user_transcript","user_transcription_event":{"user_transcript":"hello"}}"#,
                AgentEvent::UserTranscript("hello".into()),
            ),
            (
                r#"{"type":"client_tool_call","client_tool_call":{"tool_name":"x","tool_call_id":"t1","parameters":{}}}"#,
                AgentEvent::ClientToolCall {
                    tool_call_id: "t1".into(),
                },
            ),
            (
                r#"{"type":"vad_score","vad_score_event":{"vad_score":0.9}}"#,
                AgentEvent::Ignored,
            ),
            (r#"{"type":"brand_new_event"}"#, AgentEvent::Unknown),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_agent(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn agent_messages_without_what_they_need_are_malformed() {
        for text in [
            "{",
            r#"{"audio_event":{"audio_base_64":"AAA="}}"#,
            r#"{"type":"audio"}"#,
            r#"{"type":"audio","audio_event":{"event_id":1}}"#,
            r#"{"type":"audio","audio_event":{"audio_base_64":"AAA=","event_id":-1}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","ping_event":{}}"#,
            r#"{"type":"conversation_initiation_metadata"}"#,
            r#"{"type":"user_transcript","user_transcription_event":{}}"#,
        ] {
            assert!(parse_agent(text).is_err(), "{text}");
        }
    }

    #[test]
    fn hand_built_json_strings_match_serde_json_for_every_ascii_and_some_unicode() {
        let mut samples: Vec<String> = (0u8..=127).map(|b| char::from(b).to_string()).collect();
        samples.push("MZ\"}, \"event\":\"stop".into());
        samples.push("tab\there\\back\u{1f}\u{7f}é€😀".into());
        samples.push(String::new());
        for sample in samples {
            let mut built = String::new();
            push_json_string(&mut built, &sample);
            let parsed: String = serde_json::from_str(&built).expect("a JSON string");
            assert_eq!(parsed, sample);
            assert_eq!(
                built,
                serde_json::to_string(&sample).expect("serialisable"),
                "same text as serde_json for {sample:?}"
            );
        }
    }

    #[test]
    fn outgoing_audio_messages_carry_the_payload_unchanged() {
        let payload = "no+JhoaJjpzS/w==";
        let chunk: Value = serde_json::from_str(&user_audio_chunk(payload)).expect("valid JSON");
        assert_eq!(chunk, json!({"user_audio_chunk": payload}));

        let writer = TwilioWriter::new("MZ\"evil");
        let media: Value = serde_json::from_str(&writer.media(payload)).expect("valid JSON");
        assert_eq!(
            media,
            json!({"event": "media", "streamSid": "MZ\"evil", "media": {"payload": payload}})
        );
        let clear: Value = serde_json::from_str(&writer.clear()).expect("valid JSON");
        assert_eq!(clear, json!({"event": "clear", "streamSid": "MZ\"evil"}));
    }

    #[test]
    fn pong_echoes_the_event_id_and_tool_calls_are_refused() {
        let pong: Value = serde_json::from_str(&pong(&12345.into())).expect("valid JSON");
        assert_eq!(pong, json!({"type": "pong", "event_id": 12345}));
        let refusal: Value =
            serde_json::from_str(&client_tool_refusal("t\"1")).expect("valid JSON");
        assert_eq!(refusal["tool_call_id"], "t\"1");
        assert_eq!(refusal["is_error"], true);
    }

    fn context(first_message: Option<&str>) -> StreamContext {
        StreamContext {
            call_id: CallId::parse("call_1").expect("valid"),
            agent_id: AgentId::parse("agent_1").expect("valid"),
            dynamic_variables: DynamicVariables::new([
                ("name".to_owned(), DynamicValue::Text("Jane \"J\"".into())),
                ("age".to_owned(), DynamicValue::Integer(42)),
                ("balance".to_owned(), DynamicValue::Number(12.5)),
                ("vip".to_owned(), DynamicValue::Bool(true)),
            ])
            .expect("valid"),
            first_message: first_message.map(|m| BoundedText::parse(m, 1000).expect("valid")),
        }
    }

    #[test]
    fn client_data_carries_typed_variables_and_the_first_message_only_when_set() {
        let with: Value = serde_json::from_str(&client_data(&context(Some("Hi, it's Acme"))))
            .expect("valid JSON");
        assert_eq!(
            with,
            json!({
                "type": "conversation_initiation_client_data",
                "dynamic_variables": {"name": "Jane \"J\"", "age": 42, "balance": 12.5, "vip": true},
                "conversation_config_override": {"agent": {"first_message": "Hi, it's Acme"}},
            })
        );
        let without: Value =
            serde_json::from_str(&client_data(&context(None))).expect("valid JSON");
        assert!(without.get("conversation_config_override").is_none());
        assert_eq!(without["dynamic_variables"]["age"], 42);
    }
}
