//! ElevenLabs' post-call webhooks: the `ElevenLabs-Signature` check and the event parser.
//!
//! The header is `t=<unix seconds>,v0=<hex>` where hex is the lowercase HMAC-SHA256, keyed by
//! the webhook secret, of `"<t>."` followed by the raw body bytes exactly as received.

use std::time::Duration;

use anyhow::ensure;
use hmac::{Hmac, KeyInit as _, Mac as _};
use outcall_domain::Timestamp;
use outcall_domain::ports::{
    AgentWebhookEvent, AgentWebhooks, BodyVerifier, WebhookParseError, WebhookRejection,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq as _};

use crate::payload::{Conversation, FailureData, Number};

/// The name of the header ElevenLabs signs its webhooks with (match it case-insensitively).
pub const SIGNATURE_HEADER: &str = "ElevenLabs-Signature";

/// How old a signature may be: ElevenLabs' SDKs refuse timestamps older than 30 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(30 * 60);

/// A header carrying more signatures than this is not one ElevenLabs sent; the bound keeps
/// the work per request small.
const MAX_SIGNATURES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// The `ElevenLabs-Signature` header value ElevenLabs would send for `body` signed at
/// `timestamp` (unix seconds) with `secret`: `t=<timestamp>,v0=<lowercase hex>`. For
/// emulators and tests.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = new_mac(secret.as_bytes(), timestamp);
    mac.update(body);
    format!("t={timestamp},v0={}", to_hex(&mac.finalize().into_bytes()))
}

/// The MAC over the signed string's prefix, `"<t>."`.
fn new_mac(secret: &[u8], timestamp: i64) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC accepts keys of every length (long keys are hashed first).
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// The verifier of ElevenLabs' post-call webhooks and the parser of their events.
#[derive(Debug, Clone)]
pub struct ElevenLabsWebhooks {
    secret: SecretString,
    tolerance: Duration,
}

impl ElevenLabsWebhooks {
    /// Webhooks signed with `secret` (the one ElevenLabs shows when the webhook is created),
    /// accepted up to [`DEFAULT_TOLERANCE`] after they were signed.
    ///
    /// # Errors
    /// When the secret is empty: anyone could sign with it.
    pub fn new(secret: SecretString) -> anyhow::Result<Self> {
        ensure!(
            !secret.expose_secret().trim().is_empty(),
            "elevenlabs webhook_secret must not be empty"
        );
        Ok(Self {
            secret,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// The same with another tolerance for the signature's age.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

/// The parsed header: its timestamp and every well-formed `v0` signature.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<[u8; 32]>,
}

/// Reads `t=<unix>,v0=<hex>[,v0=<hex>...]`. Elements may be surrounded by whitespace and
/// come in any order; elements of other schemes are ignored, and so is a `v0` that is not 64
/// hex digits (it could never match). `None`: no single readable `t`, or no usable `v0`.
fn parse_header(header: &str) -> Option<SignatureHeader> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for element in header.split(',').map(str::trim) {
        if let Some(t) = element.strip_prefix("t=") {
            // Two timestamps make it ambiguous which one was signed.
            if timestamp.is_some() {
                return None;
            }
            timestamp = Some(t.trim().parse::<i64>().ok()?);
        } else if let Some(hex) = element.strip_prefix("v0=")
            && let Some(bytes) = decode_hex(hex.trim())
            && signatures.len() < MAX_SIGNATURES
        {
            signatures.push(bytes);
        }
    }
    if signatures.is_empty() {
        return None;
    }
    Some(SignatureHeader {
        timestamp: timestamp?,
        signatures,
    })
}

/// 64 hex digits (either case) as 32 bytes.
fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut bytes = [0_u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

/// Feeds the body into the MAC as it streams in; compares at the end.
struct HmacVerifier {
    mac: HmacSha256,
    signatures: Vec<[u8; 32]>,
}

impl BodyVerifier for HmacVerifier {
    fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    fn finish(self: Box<Self>) -> Result<(), WebhookRejection> {
        let expected = self.mac.finalize().into_bytes();
        // Every candidate is compared, in constant time, whatever the earlier ones gave.
        let mut matched = Choice::from(0);
        for signature in &self.signatures {
            matched |= expected.as_slice().ct_eq(signature.as_slice());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(WebhookRejection::Mismatch)
        }
    }
}

impl AgentWebhooks for ElevenLabsWebhooks {
    /// Future timestamps are accepted, as ElevenLabs' own SDKs do: a receiver whose clock is
    /// behind must not refuse fresh events. Replays stay bounded by the tolerance.
    fn verifier(
        &self,
        signature_header: Option<&str>,
        now: Timestamp,
    ) -> Result<Box<dyn BodyVerifier>, WebhookRejection> {
        let header = signature_header
            .filter(|h| !h.trim().is_empty())
            .ok_or(WebhookRejection::MissingSignature)?;
        let parsed = parse_header(header).ok_or(WebhookRejection::MalformedSignature)?;
        let signed_ms = parsed
            .timestamp
            .checked_mul(1000)
            .ok_or(WebhookRejection::MalformedSignature)?;
        let tolerance_ms = i64::try_from(self.tolerance.as_millis()).unwrap_or(i64::MAX);
        if signed_ms < now.timestamp_millis().saturating_sub(tolerance_ms) {
            return Err(WebhookRejection::Stale);
        }
        Ok(Box::new(HmacVerifier {
            mac: new_mac(self.secret.expose_secret().as_bytes(), parsed.timestamp),
            signatures: parsed.signatures,
        }))
    }

    fn parse(&self, body: &[u8]) -> Result<AgentWebhookEvent, WebhookParseError> {
        parse_event(body)
    }
}

/// The envelope's type alone; `data` is skipped without being built (an audio event carries
/// megabytes of base64).
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Event<D> {
    event_timestamp: Option<Number>,
    data: D,
}

/// Parses a (verified) webhook body.
fn parse_event(body: &[u8]) -> Result<AgentWebhookEvent, WebhookParseError> {
    // serde also reads structs from arrays, by position; an event is always an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(WebhookParseError("not a JSON object".to_owned()));
    }
    let Kind { kind } = serde_json::from_slice(body).map_err(reason)?;
    match kind.as_str() {
        "post_call_transcription" => {
            let event: Event<Conversation> = serde_json::from_slice(body).map_err(reason)?;
            let at = event_time(event.event_timestamp.as_ref())?;
            event
                .data
                .into_report(at)
                .map(AgentWebhookEvent::PostCall)
                .map_err(WebhookParseError)
        }
        "call_initiation_failure" => {
            let event: Event<FailureData> = serde_json::from_slice(body).map_err(reason)?;
            let at = event_time(event.event_timestamp.as_ref())?;
            Ok(AgentWebhookEvent::InitiationFailure(
                event.data.into_failure(at),
            ))
        }
        "post_call_audio" => Ok(AgentWebhookEvent::Audio),
        _ => Ok(AgentWebhookEvent::Other(kind)),
    }
}

fn event_time(raw: Option<&Number>) -> Result<Timestamp, WebhookParseError> {
    raw.and_then(Number::as_timestamp).ok_or_else(|| {
        WebhookParseError("event_timestamp is missing or not a unix time".to_owned())
    })
}

/// A short reason that never quotes the body: serde_json's own messages can repeat the
/// offending value (`invalid type: string "..."`), so only the position is kept, except for
/// a missing field whose name comes from our own types.
fn reason(error: serde_json::Error) -> WebhookParseError {
    use serde_json::error::Category;
    let (line, column) = (error.line(), error.column());
    let text = match error.classify() {
        Category::Eof => "body ends in the middle of the JSON".to_owned(),
        Category::Syntax | Category::Io => {
            format!("not valid JSON (line {line}, column {column})")
        }
        Category::Data => {
            let message = error.to_string();
            match message.strip_prefix("missing field `") {
                Some(rest) => {
                    let field = rest.split('`').next().unwrap_or_default();
                    format!("missing field {field}")
                }
                None => format!("unexpected value (line {line}, column {column})"),
            }
        }
    };
    WebhookParseError(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use outcall_domain::analysis::{Speaker, TranscriptTurn};

    const SECRET: &str = "test_secret";
    const VECTOR_BODY: &[u8] =
        br#"{"type":"post_call_transcription","event_timestamp":1700000000,"data":{"conversation_id":"conv_1"}}"#;
    const VECTOR_HEADER: &str =
        "t=1700000000,v0=0803716dec0e1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f";

    fn webhooks(secret: &str) -> ElevenLabsWebhooks {
        ElevenLabsWebhooks::new(SecretString::from(secret)).expect("secret")
    }

    fn at(secs: i64) -> Timestamp {
        DateTime::from_timestamp(secs, 0).expect("time")
    }

    /// Verifies `body` fed in chunks of `chunk` bytes.
    fn verify(
        hooks: &ElevenLabsWebhooks,
        header: Option<&str>,
        now: Timestamp,
        body: &[u8],
        chunk: usize,
    ) -> Result<(), WebhookRejection> {
        let mut verifier = hooks.verifier(header, now)?;
        for part in body.chunks(chunk) {
            verifier.update(part);
        }
        verifier.finish()
    }

    #[test]
    fn the_documented_vector_verifies_whatever_the_chunking() {
        let hooks = webhooks(SECRET);
        for chunk in [1, 7, 32, VECTOR_BODY.len()] {
            assert_eq!(
                verify(
                    &hooks,
                    Some(VECTOR_HEADER),
                    at(1_700_000_060),
                    VECTOR_BODY,
                    chunk
                ),
                Ok(()),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn signing_reproduces_the_documented_vector() {
        assert_eq!(sign(SECRET, 1_700_000_000, VECTOR_BODY), VECTOR_HEADER);
    }

    #[test]
    fn a_missing_or_blank_header_is_missing_signature() {
        let hooks = webhooks(SECRET);
        for header in [None, Some(""), Some("  ")] {
            assert_eq!(
                verify(&hooks, header, at(1_700_000_000), VECTOR_BODY, 16),
                Err(WebhookRejection::MissingSignature)
            );
        }
    }

    #[test]
    fn headers_without_a_usable_timestamp_or_v0_are_malformed() {
        let hooks = webhooks(SECRET);
        let hex = "0803716dec0e1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f";
        for header in [
            "t=1700000000".to_owned(),
            format!("v0={hex}"),
            format!("t=soon,v0={hex}"),
            format!("t=1700000000,v1={hex}"),
            "t=1700000000,v0=zz03716dec0e1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f"
                .to_owned(),
            "t=1700000000,v0=0803716d".to_owned(),
            format!("t=1700000000,t=1700000001,v0={hex}"),
            format!("t=9223372036854775807,v0={hex}"),
            "garbage".to_owned(),
        ] {
            assert_eq!(
                hooks.verifier(Some(&header), at(1_700_000_000)).err(),
                Some(WebhookRejection::MalformedSignature),
                "{header}"
            );
        }
    }

    #[test]
    fn whitespace_order_and_extra_signatures_are_tolerated() {
        let hooks = webhooks(SECRET);
        let other = "0".repeat(64);
        let header = format!(
            " v0={other} , v1=abc,  t=1700000000 ,v0=0803716DEC0E1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f "
        );
        assert_eq!(
            verify(&hooks, Some(&header), at(1_700_000_000), VECTOR_BODY, 10),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let hooks = webhooks("another_secret");
        assert_eq!(
            verify(
                &hooks,
                Some(VECTOR_HEADER),
                at(1_700_000_000),
                VECTOR_BODY,
                16
            ),
            Err(WebhookRejection::Mismatch)
        );
    }

    #[test]
    fn a_body_altered_by_one_byte_is_a_mismatch() {
        let hooks = webhooks(SECRET);
        let mut body = VECTOR_BODY.to_vec();
        body[60] ^= 0x01;
        assert_eq!(
            verify(&hooks, Some(VECTOR_HEADER), at(1_700_000_000), &body, 16),
            Err(WebhookRejection::Mismatch)
        );
        let mut longer = VECTOR_BODY.to_vec();
        longer.push(b'\n');
        assert_eq!(
            verify(&hooks, Some(VECTOR_HEADER), at(1_700_000_000), &longer, 16),
            Err(WebhookRejection::Mismatch)
        );
    }

    #[test]
    fn a_timestamp_not_covered_by_the_signature_is_a_mismatch() {
        let hooks = webhooks(SECRET);
        let header = VECTOR_HEADER.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(&hooks, Some(&header), at(1_700_000_000), VECTOR_BODY, 16),
            Err(WebhookRejection::Mismatch)
        );
    }

    #[test]
    fn a_signature_older_than_thirty_minutes_is_stale() {
        let hooks = webhooks(SECRET);
        let signed = 1_700_000_000;
        assert!(
            hooks
                .verifier(Some(VECTOR_HEADER), at(signed + 30 * 60))
                .is_ok(),
            "exactly 30 minutes is still inside the tolerance"
        );
        assert_eq!(
            hooks
                .verifier(Some(VECTOR_HEADER), at(signed + 31 * 60))
                .err(),
            Some(WebhookRejection::Stale)
        );
    }

    #[test]
    fn the_tolerance_can_be_changed() {
        let hooks = webhooks(SECRET).with_tolerance(Duration::from_secs(60));
        assert_eq!(
            hooks.verifier(Some(VECTOR_HEADER), at(1_700_000_061)).err(),
            Some(WebhookRejection::Stale)
        );
    }

    #[test]
    fn a_future_timestamp_is_accepted_as_the_sdks_do() {
        let hooks = webhooks(SECRET);
        assert_eq!(
            verify(
                &hooks,
                Some(VECTOR_HEADER),
                at(1_700_000_000 - 3600),
                VECTOR_BODY,
                16
            ),
            Ok(())
        );
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert!(ElevenLabsWebhooks::new(SecretString::from(" ")).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let shown = format!("{:?}", webhooks("s3cr3t-value"));
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }

    const TRANSCRIPTION: &str = r#"{
      "type": "post_call_transcription",
      "event_timestamp": 1739537297,
      "data": {
        "agent_id": "xyz",
        "conversation_id": "abc",
        "status": "done",
        "user_id": "user123",
        "has_audio": true,
        "transcript": [
          {"role": "agent", "message": "Hey there angelo. How are you?", "tool_calls": null, "tool_results": null, "feedback": null, "time_in_call_secs": 0, "conversation_turn_metrics": null},
          {"role": "user", "message": "Hey, can you tell me ...?", "tool_calls": null, "tool_results": null, "feedback": null, "time_in_call_secs": 2, "conversation_turn_metrics": null},
          {"role": "user", "message": null, "time_in_call_secs": 5},
          {"role": "agent", "message": "  ", "time_in_call_secs": 6},
          {"role": "agent", "message": "Sure, here it is.", "time_in_call_secs": 9,
           "conversation_turn_metrics": {"convai_llm_service_ttfb": {"elapsed_time": 0.37}, "convai_llm_service_ttf_sentence": {"elapsed_time": 0.55}}}
        ],
        "metadata": {
          "start_time_unix_secs": 1739537297,
          "call_duration_secs": 22,
          "cost": 296,
          "deletion_settings": {"deletion_time_unix_secs": 1802609320, "deleted_logs_at_time_unix_secs": null, "deleted_audio_at_time_unix_secs": null, "deleted_transcript_at_time_unix_secs": null, "delete_transcript_and_pii": true, "delete_audio": true},
          "feedback": {"overall_score": null, "likes": 0, "dislikes": 0},
          "authorization_method": "authorization_header",
          "charging": {"dev_discount": true},
          "termination_reason": ""
        },
        "analysis": {
          "evaluation_criteria_results": {},
          "data_collection_results": {
            "call_outcome": {"data_collection_id": "call_outcome", "value": "interested", "json_schema": {"type": "string"}, "rationale": "..."},
            "score": {"data_collection_id": "score", "value": 7.5, "rationale": "..."},
            "callback_requested": {"data_collection_id": "callback_requested", "value": true, "rationale": "..."},
            "attempts": {"data_collection_id": "attempts", "value": 2, "rationale": "..."},
            "next_action_date": {"data_collection_id": "next_action_date", "value": null, "rationale": "..."}
          },
          "call_successful": "success",
          "transcript_summary": "The user asked about pricing.",
          "call_summary_title": "Pricing"
        },
        "conversation_initiation_client_data": {
          "conversation_config_override": {"agent": {"prompt": null, "first_message": null, "language": "en"}, "tts": {"voice_id": null}},
          "custom_llm_extra_body": {},
          "dynamic_variables": {"user_name": "angelo", "outcall_call_id": "call_0042", "vip": true}
        }
      }
    }"#;

    #[test]
    fn a_transcription_event_becomes_a_post_call_report() {
        let AgentWebhookEvent::PostCall(report) = webhooks(SECRET)
            .parse(TRANSCRIPTION.as_bytes())
            .expect("parses")
        else {
            panic!("not a post-call report");
        };
        assert_eq!(report.conversation_id.as_str(), "abc");
        assert_eq!(
            report.call_id.as_ref().map(|c| c.as_str()),
            Some("call_0042")
        );
        assert_eq!(report.event_at, at(1_739_537_297));
        assert_eq!(
            report.summary.as_deref(),
            Some("The user asked about pricing.")
        );
        assert_eq!(report.call_successful.as_deref(), Some("success"));
        assert_eq!(report.duration_secs, Some(22));
        let turn = |speaker, text: &str| TranscriptTurn {
            speaker,
            text: text.to_owned(),
        };
        assert_eq!(
            report.transcript,
            vec![
                turn(Speaker::Agent, "Hey there angelo. How are you?"),
                turn(Speaker::User, "Hey, can you tell me ...?"),
                turn(Speaker::Agent, "Sure, here it is."),
            ]
        );
        let collected: Vec<(&str, &str)> = report
            .data_collection
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            collected,
            vec![
                ("attempts", "2"),
                ("call_outcome", "interested"),
                ("callback_requested", "true"),
                ("score", "7.5"),
            ]
        );
    }

    #[test]
    fn the_documented_vector_body_parses_to_a_minimal_report() {
        let AgentWebhookEvent::PostCall(report) =
            webhooks(SECRET).parse(VECTOR_BODY).expect("parses")
        else {
            panic!("not a post-call report");
        };
        assert_eq!(report.conversation_id.as_str(), "conv_1");
        assert_eq!(report.event_at, at(1_700_000_000));
        assert_eq!(report.call_id, None);
        assert!(report.transcript.is_empty() && report.data_collection.is_empty());
        assert_eq!((report.summary, report.duration_secs), (None, None));
    }

    #[test]
    fn a_string_timestamp_and_an_invalid_call_id_are_tolerated() {
        let body = r#"{"data":{"conversation_id":"conv_2","conversation_initiation_client_data":{"dynamic_variables":{"outcall_call_id":"not valid!"}}},"event_timestamp":"1739537297","type":"post_call_transcription"}"#;
        let AgentWebhookEvent::PostCall(report) =
            webhooks(SECRET).parse(body.as_bytes()).expect("parses")
        else {
            panic!("not a post-call report");
        };
        assert_eq!(report.event_at, at(1_739_537_297));
        assert_eq!(report.call_id, None);
    }

    #[test]
    fn an_initiation_failure_carries_its_ids_and_reason() {
        let body = r#"{"type":"call_initiation_failure","event_timestamp":1739537300,"data":{
            "agent_id":"xyz","conversation_id":"conv_9","failure_reason":"busy",
            "metadata":{"type":"twilio","body":{"CallSid":"CA0123456789abcdef0123456789abcdef","CallStatus":"busy"}},
            "conversation_initiation_client_data":{"dynamic_variables":{"outcall_call_id":"call_7"}}}}"#;
        let event = webhooks(SECRET).parse(body.as_bytes()).expect("parses");
        let AgentWebhookEvent::InitiationFailure(failure) = event else {
            panic!("not an initiation failure: {event:?}");
        };
        assert_eq!(
            failure.conversation_id.as_ref().map(|c| c.as_str()),
            Some("conv_9")
        );
        assert_eq!(failure.call_id.as_ref().map(|c| c.as_str()), Some("call_7"));
        assert_eq!(
            failure.call_sid.as_ref().map(|c| c.as_str()),
            Some("CA0123456789abcdef0123456789abcdef")
        );
        assert_eq!(failure.reason, "busy");
        assert_eq!(failure.event_at, at(1_739_537_300));
    }

    #[test]
    fn a_bare_initiation_failure_has_an_unknown_reason() {
        let body = r#"{"type":"call_initiation_failure","event_timestamp":1739537300,"data":{"metadata":{"type":"sip","body":"opaque"}}}"#;
        let event = webhooks(SECRET).parse(body.as_bytes()).expect("parses");
        let AgentWebhookEvent::InitiationFailure(failure) = event else {
            panic!("not an initiation failure: {event:?}");
        };
        assert_eq!(failure.reason, "unknown");
        assert_eq!(
            (failure.conversation_id, failure.call_id, failure.call_sid),
            (None, None, None)
        );
    }

    #[test]
    fn audio_and_unknown_events_are_recognised_by_type() {
        let hooks = webhooks(SECRET);
        let audio = br#"{"type":"post_call_audio","event_timestamp":1,"data":{"agent_id":"a","conversation_id":"c","full_audio":"SUQzBAAAAAAA"}}"#;
        assert_eq!(hooks.parse(audio), Ok(AgentWebhookEvent::Audio));
        let other = br#"{"type":"voice_removal_notice","event_timestamp":1,"data":{}}"#;
        assert_eq!(
            hooks.parse(other),
            Ok(AgentWebhookEvent::Other("voice_removal_notice".to_owned()))
        );
    }

    #[test]
    fn malformed_bodies_are_refused_without_echoing_them() {
        let hooks = webhooks(SECRET);
        let cases: [&[u8]; 7] = [
            b"",
            b"{\"type\":\"post_call_transcription\"",
            b"not json SECRET-ISH",
            b"[\"SECRET-ISH\"]",
            br#"{"type":"post_call_transcription","event_timestamp":1,"data":{"conversation_id":"SECRET-ISH ?"}}"#,
            br#"{"type":"post_call_transcription","event_timestamp":1,"data":{"conversation_id":"c","transcript":"SECRET-ISH"}}"#,
            br#"{"type":"post_call_transcription","data":{"conversation_id":"c"}}"#,
        ];
        for body in cases {
            let error = hooks.parse(body).expect_err("malformed");
            assert!(!error.0.contains("SECRET-ISH"), "{error}");
            assert!(!error.0.is_empty());
        }
        assert_eq!(
            hooks.parse(br#"{"event_timestamp":1}"#),
            Err(WebhookParseError("missing field type".to_owned()))
        );
    }
}
