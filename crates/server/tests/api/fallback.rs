//! The fallback for missed post-call webhooks, against the ElevenLabs emulator: a call that
//! ended with a conversation but no report gets its report fetched and applied, and a call
//! whose conversation the provider does not know is put off instead of blocking it.

use std::sync::Arc;
use std::time::Duration;

use outcall_domain::analysis::AnalysisMapping;
use outcall_domain::ports::{CallRepository, ClientRepository, Clock, VoiceAgent};
use outcall_domain::services::{MissedReportPolicy, MissedReportRound, PostCallAnalysis};
use outcall_domain::test_support::{call_fixture, client_fixture};
use outcall_domain::{AgentId, CallStatus, ConversationId, SecretHash};
use outcall_elevenlabs::{ElevenLabsClient, ElevenLabsConfig};
use outcall_sandbox::{ConversationScript, ElevenLabsEmulator, ElevenLabsEmulatorConfig};
use outcall_sqlite::SqliteStore;

struct Now;
impl Clock for Now {
    fn now(&self) -> outcall_domain::Timestamp {
        chrono::Utc::now()
    }
}

#[tokio::test]
async fn a_missed_report_is_fetched_from_the_provider_and_applied_once() {
    let emulator = ElevenLabsEmulator::start(ElevenLabsEmulatorConfig {
        api_key: "fallback-key".to_owned(),
        script: ConversationScript {
            turns: Vec::new(),
            end_after_turns: true,
            ..ConversationScript::default()
        },
        audio_realtime: false,
        webhook: None, // the webhook never comes
        ..ElevenLabsEmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let mut config = ElevenLabsConfig::new(secrecy::SecretString::from("fallback-key".to_owned()));
    config.api_base = emulator.base_url();
    let agent: Arc<dyn VoiceAgent> = Arc::new(ElevenLabsClient::new(config).expect("client"));

    // Hold a real conversation with the emulator's agent until it hangs up.
    let mut connection = agent
        .connect(&AgentId::parse("agent_1").expect("valid"))
        .await
        .expect("connects");
    connection
        .send(r#"{"type":"conversation_initiation_client_data","dynamic_variables":{}}"#.to_owned())
        .await
        .expect("sent");
    let mut conversation = None;
    while let Some(Ok(message)) = tokio::time::timeout(Duration::from_secs(20), connection.recv())
        .await
        .ok()
        .flatten()
    {
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&message)
            .ok()
            .and_then(|v| {
                v["conversation_initiation_metadata_event"]["conversation_id"]
                    .as_str()
                    .map(str::to_owned)
            })
        {
            conversation = Some(id);
        }
    }
    let conversation = conversation.expect("the agent announced its conversation");
    emulator
        .wait_for_end(&conversation, Duration::from_secs(10))
        .await
        .expect("ended");

    let store = SqliteStore::temporary().await.expect("store");
    let client = client_fixture("c_fallback");
    ClientRepository::insert(&store, &client, &SecretHash::from_phc("h".into()))
        .await
        .expect("client");
    let mut call = call_fixture("c_fallback", "call_fallback", CallStatus::Completed);
    call.data.end_time = Some(chrono::Utc::now() - chrono::Duration::minutes(30));
    call.data.conversation_id = Some(ConversationId::parse(&conversation).expect("valid"));
    CallRepository::insert(&store, &call).await.expect("call");
    // An older call whose conversation the provider does not know (404): it must not hold
    // back the other one, however small the batch.
    let mut lost = call_fixture("c_fallback", "call_lost", CallStatus::Completed);
    lost.data.end_time = Some(chrono::Utc::now() - chrono::Duration::minutes(40));
    lost.data.conversation_id = Some(ConversationId::parse("conv_never_existed").expect("valid"));
    CallRepository::insert(&store, &lost).await.expect("call");
    let calls: Arc<dyn CallRepository> = Arc::new(store);

    let analysis = PostCallAnalysis::new(
        calls.clone(),
        agent,
        Arc::new(Now),
        AnalysisMapping::default(),
    );
    let policy = MissedReportPolicy {
        grace: chrono::Duration::minutes(10),
        window: chrono::Duration::hours(72),
        max_attempts: 8,
        max_backoff: chrono::Duration::hours(24),
        batch: 50,
    };
    let round = analysis
        .fetch_missed_reports(&policy)
        .await
        .expect("fetched");
    assert_eq!(round.completed, 1, "{round:?}");
    let stored = calls
        .find_by_id(&call.id)
        .await
        .expect("read")
        .expect("exists");
    assert!(stored.details.summary.is_some(), "{stored:?}");
    assert!(
        stored
            .details
            .transcript
            .as_ref()
            .is_some_and(|t| t.as_str().starts_with("Agent: "))
    );
    assert!(stored.details.analysis_at.is_some());
    assert_eq!(
        analysis
            .fetch_missed_reports(&policy)
            .await
            .expect("fetched"),
        MissedReportRound::default(),
        "an analysed call is no longer waiting, and the lost one waits for its next try"
    );
}
