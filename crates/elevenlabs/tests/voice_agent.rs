//! The `VoiceAgent` port against local fakes: wiremock for the REST API and a real
//! tokio-tungstenite server for the conversation socket.

// Helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::expect_used)]
// tungstenite's handshake callback returns an `http::Response` as its error: not ours to box.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use outcall_domain::ports::{AgentConnection, VoiceAgent, VoiceAgentError};
use outcall_domain::values::{AgentId, ConversationId};
use outcall_elevenlabs::{ElevenLabsClient, ElevenLabsConfig};
use secrecy::SecretString;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "xi-test-key-5f2c";
const SIGNATURE: &str = "sig-abc123";
/// Long enough for a loaded CI machine, short enough to keep failures quick.
const WAIT: Duration = Duration::from_secs(5);

type ServerSocket = WebSocketStream<TcpStream>;

fn agent() -> AgentId {
    AgentId::parse("agent_01").expect("agent id")
}

fn client(
    api_base: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> ElevenLabsClient {
    ElevenLabsClient::new(ElevenLabsConfig {
        api_key: SecretString::from(KEY),
        api_base: api_base.to_owned(),
        request_timeout,
        connect_timeout,
    })
    .expect("client")
}

fn client_for(server: &MockServer) -> ElevenLabsClient {
    client(&server.uri(), WAIT, WAIT)
}

/// A signed URL as ElevenLabs hands it out, pointing at `addr`.
fn signed_url(addr: SocketAddr) -> String {
    format!(
        "ws://{addr}/v1/convai/conversation?agent_id=agent_01&conversation_signature={SIGNATURE}"
    )
}

/// Serves get-signed-url for `agent_01` (only with the right key) pointing at `addr`.
async fn mount_signed_url(server: &MockServer, addr: SocketAddr) {
    Mock::given(method("GET"))
        .and(path("/v1/convai/conversation/get-signed-url"))
        .and(query_param("agent_id", "agent_01"))
        .and(header("xi-api-key", KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"signed_url": signed_url(addr)})),
        )
        .expect(1)
        .mount(server)
        .await;
}

/// A one-connection WebSocket server running `script` on the accepted socket. The handle
/// yields the request's path and query, then the script's result.
async fn ws_server<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<(String, T)>)
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (uri_tx, uri_rx) = oneshot::channel();
        let socket =
            tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
                let _ = uri_tx.send(request.uri().to_string());
                Ok(response)
            })
            .await
            .expect("upgrade");
        let uri = uri_rx.await.expect("uri");
        (uri, script(socket).await)
    });
    (addr, handle)
}

async fn connect(client: &ElevenLabsClient) -> Box<dyn AgentConnection> {
    match tokio::time::timeout(WAIT, client.connect(&agent())).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!("connect failed: {error}"),
        Err(_) => panic!("connect hung"),
    }
}

async fn recv(
    connection: &mut Box<dyn AgentConnection>,
) -> Option<Result<String, VoiceAgentError>> {
    tokio::time::timeout(WAIT, connection.recv())
        .await
        .expect("recv hung")
}

async fn server_next(socket: &mut ServerSocket) -> Option<Message> {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("server read hung")
        .map(|m| m.expect("server read"))
}

#[tokio::test]
async fn connect_opens_the_signed_url_and_relays_text_both_ways() {
    let (addr, server_task) = ws_server(|mut socket| async move {
        socket
            .send(Message::text(
                r#"{"type":"conversation_initiation_metadata"}"#,
            ))
            .await
            .expect("send");
        let from_client = server_next(&mut socket).await;
        // Ping, then frames the client must skip, then text: the pong must come back.
        socket
            .send(Message::Ping(Bytes::from_static(b"are-you-there")))
            .await
            .expect("ping");
        socket
            .send(Message::Binary(Bytes::from_static(b"\x00\x01")))
            .await
            .expect("binary");
        socket
            .send(Message::Pong(Bytes::from_static(b"unsolicited")))
            .await
            .expect("pong");
        socket
            .send(Message::text("after ping"))
            .await
            .expect("send");
        let answer_to_ping = server_next(&mut socket).await;
        socket
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .expect("close");
        while server_next(&mut socket).await.is_some() {}
        (from_client, answer_to_ping)
    })
    .await;
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let mut connection = connect(&client_for(&api)).await;

    let first = recv(&mut connection).await.expect("message").expect("text");
    assert_eq!(first, r#"{"type":"conversation_initiation_metadata"}"#);
    connection
        .send(r#"{"user_audio_chunk":"AAAA"}"#.to_owned())
        .await
        .expect("send");
    let second = recv(&mut connection).await.expect("message").expect("text");
    assert_eq!(second, "after ping");
    assert!(
        recv(&mut connection).await.is_none(),
        "a normal close ends the stream"
    );
    assert!(recv(&mut connection).await.is_none(), "and it stays ended");
    assert!(matches!(
        connection.send("late".to_owned()).await,
        Err(VoiceAgentError::Closed(_))
    ));

    let (uri, (from_client, answer_to_ping)) = server_task.await.expect("server");
    assert_eq!(
        uri,
        format!("/v1/convai/conversation?agent_id=agent_01&conversation_signature={SIGNATURE}"),
        "the signed URL is opened as given"
    );
    assert_eq!(
        from_client,
        Some(Message::text(r#"{"user_audio_chunk":"AAAA"}"#))
    );
    assert_eq!(
        answer_to_ping,
        Some(Message::Pong(Bytes::from_static(b"are-you-there")))
    );
}

#[tokio::test]
async fn close_sends_a_normal_close_frame_once() {
    let (addr, server_task) = ws_server(|mut socket| async move {
        let first = server_next(&mut socket).await;
        // Reading on lets tungstenite answer the close and end the stream.
        let mut rest = Vec::new();
        while let Some(message) = server_next(&mut socket).await {
            rest.push(message);
        }
        (first, rest)
    })
    .await;
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let mut connection = connect(&client_for(&api)).await;

    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, connection.close())
        .await
        .expect("close hung");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "close waits only for the agent's answer, not its grace period"
    );
    tokio::time::timeout(WAIT, connection.close())
        .await
        .expect("second close hung");
    assert!(recv(&mut connection).await.is_none());
    assert!(matches!(
        connection.send("late".to_owned()).await,
        Err(VoiceAgentError::Closed(_))
    ));

    let (_, (first, rest)) = server_task.await.expect("server");
    match first {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame with code 1000, got {other:?}"),
    }
    assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
}

#[tokio::test]
async fn an_abnormal_close_is_reported_with_its_code_and_reason() {
    let (addr, server_task) = ws_server(|mut socket| async move {
        socket
            .close(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "agent crashed".into(),
            }))
            .await
            .expect("close");
        while server_next(&mut socket).await.is_some() {}
    })
    .await;
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let mut connection = connect(&client_for(&api)).await;

    match recv(&mut connection).await {
        Some(Err(VoiceAgentError::Closed(reason))) => {
            assert!(
                reason.contains("1011") && reason.contains("agent crashed"),
                "{reason}"
            );
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(recv(&mut connection).await.is_none());
    server_task.await.expect("server");
}

#[tokio::test]
async fn a_dropped_socket_is_a_closed_error() {
    let (addr, server_task) = ws_server(|socket| async move {
        // Gone without a close handshake.
        drop(socket);
    })
    .await;
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let mut connection = connect(&client_for(&api)).await;
    server_task.await.expect("server");

    assert!(matches!(
        recv(&mut connection).await,
        Some(Err(VoiceAgentError::Closed(_)))
    ));
    assert!(recv(&mut connection).await.is_none());
}

/// The error of a connect that is expected to fail.
async fn connect_error(client: &ElevenLabsClient) -> VoiceAgentError {
    match tokio::time::timeout(WAIT, client.connect(&agent())).await {
        Ok(Ok(_)) => panic!("connect unexpectedly succeeded"),
        Ok(Err(error)) => error,
        Err(_) => panic!("connect hung"),
    }
}

/// Neither the key nor the signed URL's credential may appear in an error.
fn assert_no_secrets(error: &VoiceAgentError) {
    let shown = match error {
        VoiceAgentError::Unavailable(cause) => format!("{cause:?} {cause:#}"),
        other => format!("{other:?} {other}"),
    };
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains(SIGNATURE), "{shown}");
}

#[tokio::test]
async fn refusals_of_the_signed_url_are_rejected_with_their_status() {
    for status in [401_u16, 403, 404, 422] {
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/convai/conversation/get-signed-url"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "detail": {"status": "invalid_api_key", "message": "Key xi-test-key-5f2c is invalid"}
            })))
            .mount(&api)
            .await;
        let error = connect_error(&client_for(&api)).await;
        match &error {
            VoiceAgentError::Rejected(reason) => {
                assert!(reason.contains(&format!("HTTP {status}")), "{reason}");
                assert!(reason.contains("invalid_api_key"), "{reason}");
            }
            other => panic!("HTTP {status}: expected Rejected, got {other:?}"),
        }
        assert_no_secrets(&error);
    }
}

#[tokio::test]
async fn other_signed_url_failures_are_unavailable() {
    let cases = [
        ResponseTemplate::new(500),
        ResponseTemplate::new(429),
        ResponseTemplate::new(400),
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_json(
            json!({"signed_url": "https://example.com/?conversation_signature=sig-abc123"}),
        ),
        ResponseTemplate::new(301).insert_header("location", "http://127.0.0.1:9/elsewhere"),
    ];
    for response in cases {
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/convai/conversation/get-signed-url"))
            .respond_with(response)
            .mount(&api)
            .await;
        let error = connect_error(&client_for(&api)).await;
        assert!(
            matches!(error, VoiceAgentError::Unavailable(_)),
            "{error:?}"
        );
        assert_no_secrets(&error);
    }
}

#[tokio::test]
async fn a_slow_signed_url_answer_times_out_as_unavailable() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"signed_url": "ws://127.0.0.1:9/"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&api)
        .await;
    let client = client(&api.uri(), Duration::from_millis(200), WAIT);
    let started = std::time::Instant::now();
    let error = connect_error(&client).await;
    assert!(
        matches!(error, VoiceAgentError::Unavailable(_)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unreachable_conversation_socket_is_unavailable() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let error = connect_error(&client_for(&api)).await;
    assert!(
        matches!(error, VoiceAgentError::Unavailable(_)),
        "{error:?}"
    );
    assert_no_secrets(&error);
}

#[tokio::test]
async fn a_conversation_socket_that_never_upgrades_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts the TCP connection and never answers the upgrade.
    let silent = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(WAIT).await;
        drop(stream);
    });
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let client = client(&api.uri(), WAIT, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let error = connect_error(&client).await;
    match &error {
        VoiceAgentError::Unavailable(cause) => {
            assert!(cause.to_string().contains("longer than"), "{cause}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_no_secrets(&error);
    silent.abort();
}

#[tokio::test]
async fn a_refused_upgrade_is_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let refused = tokio_tungstenite::accept_hdr_async(stream, |_: &Request, _: Response| {
            let mut response = ErrorResponse::new(Some("signature expired".to_owned()));
            *response.status_mut() = StatusCode::FORBIDDEN;
            Err(response)
        })
        .await;
        assert!(refused.is_err());
    });
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    let error = connect_error(&client_for(&api)).await;
    match &error {
        VoiceAgentError::Rejected(reason) => assert!(reason.contains("403"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_no_secrets(&error);
    server.await.expect("server");
}

fn conversation(status: &str, analysis: serde_json::Value) -> serde_json::Value {
    json!({
        "agent_id": "agent_01",
        "conversation_id": "conv_77",
        "status": status,
        "has_audio": false,
        "has_user_audio": false,
        "has_response_audio": false,
        "transcript": [
            {"role": "agent", "message": "Hello, this is Ana.", "time_in_call_secs": 0},
            {"role": "user", "message": "Not now, thanks.", "time_in_call_secs": 3}
        ],
        "metadata": {"start_time_unix_secs": 1_739_537_297, "call_duration_secs": 42},
        "analysis": analysis,
        "conversation_initiation_client_data": {"dynamic_variables": {"outcall_call_id": "call_9"}}
    })
}

fn analysis() -> serde_json::Value {
    json!({
        "evaluation_criteria_results": {},
        "data_collection_results": {"call_outcome": {"data_collection_id": "call_outcome", "value": "not_interested"}},
        "call_successful": "failure",
        "transcript_summary": "The callee declined."
    })
}

async fn fetch(
    api: &MockServer,
) -> Result<Option<outcall_domain::analysis::PostCallReport>, VoiceAgentError> {
    let conversation = ConversationId::parse("conv_77").expect("id");
    tokio::time::timeout(WAIT, client_for(api).fetch_report(&conversation))
        .await
        .expect("fetch hung")
}

async fn mount_conversation(api: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/v1/convai/conversations/conv_77"))
        .and(header("xi-api-key", KEY))
        .respond_with(response)
        .expect(1)
        .mount(api)
        .await;
}

#[tokio::test]
async fn an_analysed_conversation_is_fetched_as_a_report_stamped_with_its_end() {
    let api = MockServer::start().await;
    mount_conversation(
        &api,
        ResponseTemplate::new(200).set_body_json(conversation("done", analysis())),
    )
    .await;
    let report = fetch(&api).await.expect("fetch").expect("a report");
    assert_eq!(report.conversation_id.as_str(), "conv_77");
    assert_eq!(report.call_id.as_ref().map(|c| c.as_str()), Some("call_9"));
    assert_eq!(report.event_at.timestamp(), 1_739_537_297 + 42);
    assert_eq!(report.summary.as_deref(), Some("The callee declined."));
    assert_eq!(report.call_successful.as_deref(), Some("failure"));
    assert_eq!(report.duration_secs, Some(42));
    assert_eq!(report.transcript.len(), 2);
    assert_eq!(
        report
            .data_collection
            .get("call_outcome")
            .map(String::as_str),
        Some("not_interested")
    );
}

#[tokio::test]
async fn a_conversation_without_a_report_yet_is_none() {
    for body in [
        conversation("processing", analysis()),
        conversation("done", serde_json::Value::Null),
        conversation("failed", analysis()),
    ] {
        let api = MockServer::start().await;
        mount_conversation(&api, ResponseTemplate::new(200).set_body_json(body)).await;
        assert!(fetch(&api).await.expect("fetch").is_none());
    }
    let api = MockServer::start().await;
    mount_conversation(&api, ResponseTemplate::new(404)).await;
    assert!(
        fetch(&api).await.expect("fetch").is_none(),
        "unknown conversation"
    );
}

#[tokio::test]
async fn fetch_failures_map_to_rejected_or_unavailable() {
    for status in [401_u16, 403] {
        let api = MockServer::start().await;
        mount_conversation(&api, ResponseTemplate::new(status)).await;
        let error = fetch(&api).await.expect_err("fails");
        assert!(
            matches!(error, VoiceAgentError::Rejected(_)),
            "HTTP {status}: {error:?}"
        );
    }
    for response in [
        ResponseTemplate::new(500),
        ResponseTemplate::new(422),
        ResponseTemplate::new(200).set_body_string("{"),
        ResponseTemplate::new(200)
            .set_body_json(json!({"conversation_id": "conv_77", "status": "done", "analysis": {}})),
    ] {
        let api = MockServer::start().await;
        mount_conversation(&api, response).await;
        let error = fetch(&api).await.expect_err("fails");
        assert!(
            matches!(error, VoiceAgentError::Unavailable(_)),
            "{error:?}"
        );
        assert_no_secrets(&error);
    }
}

#[tokio::test]
async fn the_client_debug_output_never_shows_the_key() {
    let shown = format!("{:?}", client("http://127.0.0.1:1", WAIT, WAIT));
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn a_wss_signed_url_is_dialled_over_tls() {
    // A TCP server that is no TLS server: the handshake must fail as an error, never panic
    // for want of a crypto provider.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        drop(stream);
    });
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/convai/conversation/get-signed-url"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "signed_url": format!("wss://{addr}/v1/convai/conversation?conversation_signature={SIGNATURE}")
        })))
        .mount(&api)
        .await;
    let error = connect_error(&client_for(&api)).await;
    assert!(
        matches!(error, VoiceAgentError::Unavailable(_)),
        "{error:?}"
    );
    assert_no_secrets(&error);
    server.await.expect("server");
}

#[tokio::test]
async fn operations_are_timed_and_failures_counted_by_kind() {
    // A recorder of this test's own (the test runs on one thread).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let (addr, _server) = ws_server(|_socket| async {}).await;
    let api = MockServer::start().await;
    mount_signed_url(&api, addr).await;
    drop(connect(&client_for(&api)).await);
    let refusing = MockServer::start().await;
    mount_conversation(&refusing, ResponseTemplate::new(401)).await;
    fetch(&refusing).await.expect_err("refused");

    let text = metrics.render();
    for line in [
        r#"provider_request_duration_seconds_count{provider="elevenlabs",operation="get_signed_url"} 1"#,
        r#"provider_request_duration_seconds_count{provider="elevenlabs",operation="open_conversation"} 1"#,
        r#"provider_request_duration_seconds_count{provider="elevenlabs",operation="get_conversation"} 1"#,
        r#"provider_request_errors_total{provider="elevenlabs",operation="get_conversation",kind="rejected"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        !text.contains(r#"operation="get_signed_url",kind="#),
        "a success is no error:\n{text}"
    );
}
