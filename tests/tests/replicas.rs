//! Several stateless replicas behind a load balancer: three `outcall serve` processes share
//! one PostgreSQL database and one public URL, a round-robin TCP proxy (no sticky sessions).
//! Calls are placed through replica 1; Twilio's TwiML fetches, status callbacks and media
//! streams and the agent's post-call webhooks come in through the proxy and land on whichever
//! replica it picks, including replicas that did not place the call or did not prepare its
//! agent connection. Every call record must still end complete and consistent.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use outcall_e2e::api::Api;
use outcall_e2e::providers::{CallScript, EmulatedProviders, SCRIPTED_SUMMARY, short_conversation};
use outcall_e2e::proxy::RoundRobinProxy;
use outcall_e2e::{Launch, fresh_postgres_database, serve_together};
use outcall_sandbox::{ConversationEnd, ConversationStatus, EmulatedCallStatus};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", "replicated admin password");
const JWT_SECRET: &str = "e2e-replicas-signing-key-0123456789abcdef";
/// A multiple of three: the media streams are spread evenly.
const CALLS: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_sharing_one_database_complete_calls_whose_webhooks_and_streams_land_anywhere()
 {
    let started = Instant::now();
    let database = fresh_postgres_database().await.expect("a fresh database");
    let proxy = RoundRobinProxy::start().await.expect("the proxy starts");
    let providers = EmulatedProviders::start(
        &proxy.url(),
        CallScript {
            ring: Duration::from_millis(300),
            talk: Duration::from_secs(30),
            conversation: short_conversation(1, 300),
            webhook_delay: Duration::from_millis(200),
        },
    )
    .await
    .expect("the emulators start");

    let scratch = tempfile::tempdir().expect("tempdir");
    let mut env: HashMap<String, String> = [
        ("HOME", scratch.path().join("home").display().to_string()),
        ("OUTCALL__SERVER__PORT", "0".to_owned()),
        ("OUTCALL__SERVER__DRAIN_TIMEOUT_SECS", "10".to_owned()),
        ("OUTCALL__DATABASE__URL", database),
        ("OUTCALL__DATABASE__MAX_CONNECTIONS", "5".to_owned()),
        ("OUTCALL__AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
        ("OUTCALL__ADMIN__USERNAME", ADMIN.0.to_owned()),
        ("OUTCALL__ADMIN__PASSWORD", ADMIN.1.to_owned()),
        // Reports must come through the webhook, not the missed-report fetcher.
        (
            "OUTCALL__ANALYSIS__FETCH_MISSED_AFTER_MINUTES",
            "0".to_owned(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(providers.outcall_env());
    let launches: Vec<Launch<'_>> = (0..3)
        .map(|_| Launch {
            args: &["serve"],
            env: env.clone(),
            cwd: scratch.path(),
        })
        .collect();
    // All three start at once on the empty database (concurrent migrations and admin set-up).
    let replicas = tokio::task::block_in_place(|| serve_together(&launches))
        .expect("three replicas start together on one database");
    proxy.set_backends(
        replicas
            .iter()
            .map(|replica| replica.address().expect("an address"))
            .collect(),
    );
    let apis: Vec<Api> = replicas.iter().map(|r| Api::new(&r.base)).collect();
    for api in &apis {
        assert_eq!(api.get("/readyz", None).await.unwrap().status, 200);
    }

    // Everything the client does goes to replica 1.
    let token = apis[0]
        .client_token(ADMIN, "client_replicas", "agent_replicas")
        .await
        .expect("a client and its token");
    let placing = (0..CALLS).map(|n| {
        let api = apis[0].clone();
        let token = token.clone();
        async move {
            let reply = api
                .make_call(
                    &token,
                    json!({
                        "phone": format!("+1212555{:04}", 100 + n),
                        "firstMessage": format!("Hi, this is call {n}."),
                        "dynamicVariables": {"call_number": n}
                    }),
                )
                .await
                .expect("make-call answers");
            assert_eq!(reply.status, 200, "{}", reply.body);
            let call_id = reply.body["callId"].as_str().expect("callId").to_owned();
            let sid = reply.body["callSid"].as_str().expect("callSid").to_owned();
            (n, call_id, sid)
        }
    });
    let placed: Vec<(usize, String, String)> = spawn_all(placing).await;

    // Twilio's side: every call ran to completion, and every signed request it sent (TwiML,
    // status callbacks), whichever replica got it, was accepted.
    for (_, call_id, sid) in &placed {
        let record = providers
            .twilio
            .wait_for_status(sid, EmulatedCallStatus::Completed, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{call_id}: {e:#}"));
        let twiml = record.twiml.as_ref().expect("the TwiML was fetched");
        assert_eq!(
            twiml.request.as_ref().and_then(|r| r.http_status),
            Some(200),
            "{call_id}: {twiml:?}"
        );
        assert_eq!(
            record.callback_statuses(),
            ["initiated", "ringing", "in-progress", "completed"],
            "{call_id}"
        );
        for callback in &record.callbacks {
            assert!(
                callback
                    .http_status
                    .is_some_and(|s| (200..300).contains(&s)),
                "{call_id}: a status callback was refused: {callback:?}"
            );
        }
        let stream = record.stream.as_ref().expect("the media stream was opened");
        assert!(stream.connect_error.is_none(), "{call_id}: {stream:?}");
        assert!(
            stream.media_messages_received > 0,
            "{call_id}: no agent audio reached the callee"
        );
    }

    // Read everything back through replica 2, with the token replica 1 issued.
    let mut total_duration = 0;
    let mut conversations = BTreeSet::new();
    for (n, call_id, sid) in &placed {
        let call = apis[1]
            .wait_for_call(&token, call_id, Duration::from_secs(30), |call| {
                call["callData"]["status"] == "completed"
                    && call["callDetails"]["callSummary"].is_string()
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let data = &call["callData"];
        let details = &call["callDetails"];
        assert_eq!(data["callSid"], sid.as_str(), "{call}");
        let duration = data["duration"].as_u64().expect("a duration");
        let twilio_duration = providers.twilio.call(sid).and_then(|r| r.duration_secs);
        assert_eq!(Some(duration), twilio_duration, "{call}");
        assert!(duration > 0, "{call}");
        total_duration += duration;
        assert_eq!(
            data["endReason"], "the agent ended the conversation",
            "{call}"
        );
        assert_eq!(data["phone"], format!("+1212555{:04}", 100 + n), "{call}");
        assert_eq!(data["from"], "+18001234567", "{call}");
        assert_eq!(data["agentId"], "agent_replicas", "{call}");
        let start = data["startTime"].as_str().expect("startTime");
        let end = data["endTime"].as_str().expect("endTime");
        assert!(end > start, "{call}"); // same fixed-width UTC format
        assert_eq!(details["nextAction"], "demo", "{call}");
        assert_eq!(details["callSuccessful"], "success", "{call}");
        assert!(details["analysisAt"].is_string(), "{call}");
        let conversation_id = data["conversationId"]
            .as_str()
            .unwrap_or_else(|| panic!("no conversation id: {call}"))
            .to_owned();
        let transcript = details["callTranscript"].as_str().unwrap_or_default();
        for line in [
            format!("Agent: Hi, this is call {n}."),
            "User: Answer 1.".to_owned(),
            "Agent: Reply 1.".to_owned(),
        ] {
            assert!(transcript.contains(&line), "no {line:?} in {call}");
        }
        assert_eq!(details["callSummary"], SCRIPTED_SUMMARY, "{call}");
        assert_eq!(details["callOutcome"], "interested", "{call}");
        assert_eq!(details["callSentiment"], "positive", "{call}");

        // The agent's side of the same call: its own conversation, with this call's data.
        let agent = providers
            .elevenlabs
            .wait_for_finish(&conversation_id, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{call_id}: {e:#}"));
        assert_eq!(agent.status, ConversationStatus::Done, "{call_id}");
        assert_eq!(agent.end, Some(ConversationEnd::AgentEnded), "{call_id}");
        assert_eq!(
            agent.dynamic_variables.get("outcall_call_id"),
            Some(&Value::from(call_id.as_str())),
            "{call_id}"
        );
        assert_eq!(
            agent.dynamic_variables.get("call_number"),
            Some(&Value::from(*n)),
            "{call_id}"
        );
        assert_eq!(
            agent.first_message_override.as_deref(),
            Some(format!("Hi, this is call {n}.").as_str())
        );
        let webhook = agent
            .webhook
            .as_ref()
            .expect("a post-call webhook was sent");
        assert_eq!(webhook.http_status, Some(200), "{call_id}: {webhook:?}");
        conversations.insert(conversation_id);
    }
    assert_eq!(conversations.len(), CALLS, "one conversation per call");

    // Statistics through replica 3 count every call once.
    let stats = apis[2]
        .get("/secure/call-stats", Some(&token))
        .await
        .unwrap();
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats = &stats.body["stats"];
    assert_eq!(stats["totalCalls"], CALLS, "{stats}");
    assert_eq!(stats["callsByStatus"]["completed"], CALLS, "{stats}");
    assert_eq!(stats["callsByStatus"]["in-progress"], 0, "{stats}");
    assert_eq!(stats["callsByOutcome"]["interested"], CALLS, "{stats}");
    assert_eq!(stats["callsBySentiment"]["positive"], CALLS, "{stats}");
    assert_eq!(stats["totalDuration"], total_duration, "{stats}");
    let history = apis[2].get("/secure/calls", Some(&token)).await.unwrap();
    assert_eq!(
        history.body["callHistory"].as_array().map(Vec::len),
        Some(CALLS),
        "{}",
        history.body
    );

    // The load really was spread: every replica got proxied connections, and the media
    // streams went round the replicas, so two thirds of the calls placed by replica 1 were
    // bridged by another one (and every call ended complete, checked above).
    let per_replica = proxy.connections_per_backend();
    eprintln!("proxied connections per replica: {per_replica:?}");
    assert!(per_replica.iter().all(|&n| n > 0), "{per_replica:?}");
    let connections = proxy.connections();
    let mut streams_per_replica = [0; 3];
    for connection in &connections {
        if connection
            .first_line
            .starts_with("GET /twilio/media-stream ")
        {
            streams_per_replica[connection.backend] += 1;
        }
    }
    assert_eq!(streams_per_replica, [CALLS / 3; 3], "{connections:#?}");
    assert!(
        connections
            .iter()
            .any(|c| c.backend != 0 && c.first_line.starts_with("POST /twilio/status?")),
        "status callbacks reached other replicas: {connections:#?}"
    );
    assert!(
        connections.iter().any(|c| c
            .first_line
            .starts_with("POST /webhooks/elevenlabs/post-call ")),
        "the post-call reports came through the proxy: {connections:#?}"
    );
    // Serving the TwiML prepares an agent connection on that replica. A stream that lands on
    // another replica connects afresh, and the prepared connection stays unused: it is one
    // more conversation at the agent, never initiated.
    let unused_prepared = providers
        .elevenlabs
        .conversations()
        .iter()
        .filter(|c| !conversations.contains(&c.conversation_id))
        .count();
    eprintln!("{unused_prepared} of {CALLS} streams on another replica than their TwiML's");
    assert!(unused_prepared > 0);

    // Stopping: every replica exits 0, and every agent connection any replica opened was
    // closed by outcall (the unused prepared ones included), none left to time out.
    for mut replica in replicas {
        replica.terminate().expect("SIGTERM");
        let status = replica
            .wait_for_exit(Duration::from_secs(20))
            .await
            .expect("exits");
        assert!(status.success(), "{status:?}\n{}", replica.output());
    }
    for record in providers.elevenlabs.conversations() {
        let ended = providers
            .elevenlabs
            .wait_for_end(&record.conversation_id, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        if !conversations.contains(&ended.conversation_id) {
            assert!(
                ended.initiation_client_data.is_none(),
                "a second conversation was started for a call: {ended:?}"
            );
            assert!(
                matches!(ended.end, Some(ConversationEnd::ClientClosed { .. })),
                "an unused prepared agent connection was not closed: {:?}",
                ended.end
            );
        }
    }
    providers.shutdown().await;
    let elapsed = started.elapsed();
    eprintln!("the replicas test took {elapsed:?}");
}

/// Runs the futures concurrently (as separate tasks) and returns their outputs in order.
async fn spawn_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.expect("the task ran"));
    }
    results
}
