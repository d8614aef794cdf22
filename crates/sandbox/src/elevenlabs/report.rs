//! The conversation as ElevenLabs reports it after the call (protocols 7.3, 7.6), and the
//! signed post-call webhook that carries it.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::signature::elevenlabs_signature;
use super::state::{Shared, after};
use super::{
    ConversationEnd, ConversationRecord, ConversationStatus, ScriptedAnalysis, WebhookDelivery,
    WebhookTarget,
};

/// The `GetConversationResponseModel` body, also the webhook's `data`. `analysis` is null until
/// the conversation is done.
pub(crate) fn conversation_data(record: &ConversationRecord, analysis: &ScriptedAnalysis) -> Value {
    let initiation = record.initiation_client_data.as_ref();
    let field = |name: &str| initiation.and_then(|i| i.get(name)).cloned();
    let transcript: Vec<Value> = record
        .transcript
        .iter()
        .map(|entry| {
            json!({
                "role": entry.role.as_str(),
                "message": entry.message,
                "tool_calls": null,
                "tool_results": null,
                "feedback": null,
                "llm_override": null,
                "time_in_call_secs": entry.time_in_call_secs,
                "conversation_turn_metrics": null,
                "rag_retrieval_info": null,
                "llm_usage": null,
                "interrupted": entry.interrupted,
                "original_message": entry.original_message,
                "source_medium": null,
            })
        })
        .collect();
    let duration_secs = match record.duration {
        Some(duration) => duration.as_millis().div_ceil(1000) as u64,
        None => (Utc::now() - record.started_at).num_seconds().max(0) as u64,
    };
    let start = record.started_at.timestamp();
    let source = initiation
        .and_then(|i| i.pointer("/source_info/source"))
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let analysis = (record.status == ConversationStatus::Done).then(|| {
        let results: Map<String, Value> = analysis
            .data_collection
            .iter()
            .map(|(id, value)| {
                let result = json!({
                    "data_collection_id": id,
                    "value": value,
                    "json_schema": null,
                    "rationale": "Scripted by the ElevenLabs emulator.",
                });
                (id.clone(), result)
            })
            .collect();
        json!({
            "evaluation_criteria_results": {},
            "data_collection_results": results,
            "call_successful": analysis.call_successful,
            "transcript_summary": analysis.summary,
            "call_summary_title": "Emulated call",
        })
    });
    let client_data = initiation.map(|_| {
        let mut data = Map::new();
        data.insert(
            "conversation_config_override".to_owned(),
            field("conversation_config_override").unwrap_or_else(|| json!({})),
        );
        data.insert(
            "custom_llm_extra_body".to_owned(),
            field("custom_llm_extra_body").unwrap_or_else(|| json!({})),
        );
        data.insert(
            "dynamic_variables".to_owned(),
            Value::Object(record.dynamic_variables.clone()),
        );
        for optional in ["user_id", "source_info"] {
            if let Some(value) = field(optional) {
                data.insert(optional.to_owned(), value);
            }
        }
        Value::Object(data)
    });
    json!({
        "agent_id": record.agent_id,
        "conversation_id": record.conversation_id,
        "status": record.status.as_str(),
        "user_id": field("user_id").filter(Value::is_string),
        "transcript": transcript,
        "metadata": {
            "start_time_unix_secs": start,
            "accepted_time_unix_secs": start,
            "call_duration_secs": duration_secs,
            "cost": 0,
            "deletion_settings": {
                "deletion_time_unix_secs": null,
                "deleted_logs_at_time_unix_secs": null,
                "deleted_audio_at_time_unix_secs": null,
                "deleted_transcript_at_time_unix_secs": null,
                "delete_transcript_and_pii": false,
                "delete_audio": false,
            },
            "feedback": {"overall_score": null, "likes": 0, "dislikes": 0},
            "authorization_method": "signed_url",
            "charging": {"dev_discount": false},
            "termination_reason": termination_reason(record.end.as_ref()),
            "main_language": "en",
            "text_only": false,
            "conversation_initiation_source": source,
            "error": null,
        },
        "analysis": analysis,
        "conversation_initiation_client_data": client_data,
        "has_audio": false,
        "has_user_audio": false,
        "has_response_audio": false,
    })
}

fn termination_reason(end: Option<&ConversationEnd>) -> String {
    match end {
        None => String::new(),
        Some(ConversationEnd::ClientClosed {
            code: Some(code), ..
        }) => format!("Client disconnected: {code}"),
        Some(ConversationEnd::ClientClosed { code: None, .. }) => {
            "Client disconnected: no status code".to_owned()
        }
        Some(ConversationEnd::AgentEnded) => "end_call tool was called.".to_owned(),
        Some(ConversationEnd::Killed) => "Connection to the agent was lost.".to_owned(),
        Some(ConversationEnd::Dropped { .. }) => {
            "Client disconnected without a close frame.".to_owned()
        }
        Some(ConversationEnd::NoInitiation) => {
            "No conversation initiation client data was received.".to_owned()
        }
    }
}

/// After `target.delay`, POSTs the signed `post_call_transcription` once and records the
/// outcome; the conversation is `finished` afterwards.
pub(crate) async fn deliver_webhook(shared: Arc<Shared>, id: String, target: WebhookTarget) {
    tokio::time::sleep_until(after(tokio::time::Instant::now(), target.delay)).await;
    let analysis = &shared.config.script.analysis;
    let Some(data) = shared.read(&id, |record| conversation_data(record, analysis)) else {
        return;
    };
    let timestamp = Utc::now().timestamp();
    let envelope = json!({
        "type": "post_call_transcription",
        "event_timestamp": timestamp,
        "data": data,
    });
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let signature = elevenlabs_signature(&target.secret, timestamp, &body);
    let mut delivery = WebhookDelivery {
        url: target.url.clone(),
        timestamp,
        signature: signature.clone(),
        body_bytes: body.len(),
        http_status: None,
        error: None,
    };
    let sent = shared
        .http
        .post(&target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("ElevenLabs-Signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => delivery.http_status = Some(response.status().as_u16()),
        Err(error) => {
            tracing::debug!(conversation_id = id, error = %error_chain(&error), "post-call webhook failed");
            delivery.error = Some(error_chain(&error));
        }
    }
    shared.update(&id, |record| {
        record.webhook = Some(delivery);
        record.finished = true;
    });
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
